"""Search quality: does each searcher find better nets than its random counterpart? -> ``search_quality.json``.

The protocol (issue 14, DESIGN.md "Search quality"):

- every searcher and its random counterpart search the same space with the same budget
  (candidate evaluations for the GA and RENAS; supernet / shared-weight epochs and steps for the
  one-shot searchers), on ``--seeds`` paired search seeds (3 or more);
- each pick is retrained from scratch with ``--retrain-seeds`` seeds (2 or more) by **one** recipe
  (:data:`RECIPES`: Adam, constant lr, the same steps and batch for every pick and every control),
  the checkpoint chosen on the validation split only;
- picks are scored on the **test** split (60 images at the default scales), which no search sees:
  searches read ``train`` and ``val`` only;
- per searcher: mean and std of test IoU for both arms, and the paired difference (searcher minus
  random, averaged over retrain seeds within a search seed) with a 90 % bootstrap interval.

The random counterparts: ``unet-ga --random`` (random sampling, the GA's evaluation count), RENAS
``mutation="sample"`` (random sampling, same evaluations, same final retraining), AutoSegNet
``controller="uniform"`` (the same ENAS loop and shared-weight epochs, children drawn uniformly),
NAS-ASDet and IAC: a uniformly random cell of the same op set (the DARTS papers' "random
architecture" baseline; a one-shot search has no cheaper random search at equal supernet epochs
than training the supernet and ignoring its alphas, which gives the same random cell). IAC's random
cell goes through the same stage III on the same stage I base.

Controls, by the same recipe on the same data: ``unet-small`` and ``smp-unet-resnet18`` (MACs and
params beside IoU); for IAC the stage I base as it is and the base fine-tuned (unfrozen) for the
same steps the implant trains.

Resumable: every finished unit (one search, one retraining) is stored in ``WORK/units.json``
(atomic); a killed run continues where it stopped (searches resume from their run directories),
and ``search_quality.json`` is rewritten after every unit, so partial results are never lost.

Usage::

    python benchmarks/search_quality.py --scale cpu --searchers unet-ga iac   # about an hour each here
    python benchmarks/search_quality.py --scale gpu --device cuda            # when a GPU is lent
    python benchmarks/search_quality.py --scale tiny --work /tmp/sq          # a smoke test (minutes)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from search_quality_report import (  # noqa: F401
    CONTROLS,
    ROWS,
    SEARCHERS,
    VARIANTS,
    _finite,
    _jsonable,
    _mean_std,
    arm_unit,
    difference_interval,
    markdown_table,
    number,
    plot,
    searcher_of,
)
from search_quality_searches import SEARCH, iac_config, run_searcher  # noqa: F401 (benchmarks built on this one use them)

from nasseg import zoo
from nasseg.searchers.evaluators import measure, search_task
from nasseg.zoo.data.folder import open_folder
from nasseg.zoo.data.synthetic import make_dataset
from nasseg.zoo.genotype import Genotype
from nasseg.zoo.io import atomic_write_bytes
from nasseg.zoo.training.trainer import TrainConfig, Trainer, evaluate
from nasseg.zoo.versions import library_versions

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "search_quality.json"


@dataclass(frozen=True)
class Recipe:
    """The one retraining recipe of a scale: ``epochs`` x ``steps`` Adam steps of ``batch`` crops."""

    epochs: int
    steps: int
    batch: int = 8
    lr: float = 3e-3

    def config(self, size: int, seed: int, device: str, freeze_base: bool = False) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch, crop=(size, size), optimizer="adam", lr=self.lr,
                           weight_decay=0.0, scheduler="none", seed=seed, device=device, freeze_base=freeze_base,
                           max_steps_per_epoch=self.steps, min_steps_per_epoch=self.steps,
                           augment={"flip": True, "rotate": False, "intensity": 0.0})  # fmt: skip


# Per scale: data sets (n images at size px; 15 % test), the recipe, and each searcher's budget.
SCALES: dict[str, dict[str, Any]] = {
    "tiny": {
        "size": 32,
        "data": {"synth-defects": {"n": 60, "difficulty": "medium"}, "synth-membranes": {"n": 60}},
        "recipe": Recipe(epochs=2, steps=4),
        "unet-ga": {"widths": (4, 8, 16), "layers": 4, "K": 3, "T": 1, "steps": 4, "images": 16, "val": 6},
        "renas": {"P": 3, "E": 2, "steps": 3, "images": 16, "val": 6, "filters": 8, "blocks": 2, "final_epochs": 1},
        "nas-asdet": {"epochs_per_stage": 2, "warmup": 1, "steps": 3, "init_channels": 4, "images": 16, "val": 6},
        "iac": {
            "base_epochs": 2,
            "warmup": 1,
            "search": 1,
            "cell_epochs": 2,
            "steps": 3,
            "images": 16,
            "val": 6,
            "cell_channels": 8,
        },
        "autosegnet": {"epochs": 2, "warm": 1, "steps": 3, "controller_steps": 3, "images": 16, "val": 6,
                       "rerank_top": 2, "rerank_steps": 3},
    },
    "cpu": {
        "size": 64,
        "data": {"synth-defects": {"n": 400, "difficulty": "medium"}, "synth-membranes": {"n": 400}},
        "recipe": Recipe(epochs=16, steps=25),
        # issue 29: 100 steps per candidate (search_fidelity.json: Spearman 0.90 at 100, 0.65 at 50) and IoU fitness
        "unet-ga": {"widths": (8, 16, 32, 64), "layers": 5, "K": 10, "T": 5, "steps": 100, "images": 160, "val": 40,
                    "fitness": "iou"},
        "renas": {  # issue 29: 200 steps per child (search_fidelity.json: Spearman 0.83 at 200, 0.33 at 50)
            "P": 8,
            "E": 16,
            "steps": 200,
            "images": 160,
            "val": 40,
            "filters": 12,
            "blocks": 5,
            "final_epochs": 3,
        },
        "nas-asdet": {"epochs_per_stage": 4, "warmup": 1, "steps": 15, "init_channels": 8, "images": 160, "val": 40},
        "iac": {
            "base_epochs": 16,
            "warmup": 2,
            "search": 8,
            "cell_epochs": 16,
            "steps": 25,
            "images": 280,
            "val": 60,
            "cell_channels": 8,
        },
        # issue 29: the controller proposes its 4 best children, each trained alone for the GA's 100 steps decides
        "autosegnet": {"epochs": 16, "warm": 4, "steps": 20, "controller_steps": 20, "images": 280, "val": 40,
                       "rerank_top": 4, "rerank_steps": 100},
    },
    "gpu": {
        "size": 128,
        "data": {"synth-defects": {"n": 800, "difficulty": "medium"}, "synth-membranes": {"n": 800}},
        "recipe": Recipe(epochs=30, steps=50, batch=16),
        "unet-ga": {"widths": (8, 16, 32, 64), "layers": 6, "K": 16, "T": 10, "steps": 150, "images": 400, "val": 80},
        "renas": {
            "P": 16,
            "E": 48,
            "steps": 100,
            "images": 400,
            "val": 80,
            "filters": 16,
            "blocks": 5,
            "final_epochs": 5,
        },
        "nas-asdet": {"epochs_per_stage": 10, "warmup": 3, "steps": 40, "init_channels": 12, "images": 400, "val": 80},
        "iac": {
            "base_epochs": 30,
            "warmup": 5,
            "search": 20,
            "cell_epochs": 30,
            "steps": 50,
            "images": 560,
            "val": 120,
            "cell_channels": 16,
        },
        "autosegnet": {"epochs": 40, "warm": 10, "steps": 50, "controller_steps": 40, "images": 560, "val": 80,
                       "rerank_top": 4, "rerank_steps": 150},
    },
}
DATA_OF = {"unet-ga": "synth-defects", "renas": "synth-defects", "nas-asdet": "synth-defects",
           "iac": "synth-membranes", "autosegnet": "synth-membranes"}  # fmt: skip


def _add_variants() -> None:
    """Each variant row searches as its searcher does, on its data, with its settings changed (and
    its own units: ``unit`` names them for a search that reads its search arm's)."""
    for variant, (searcher, changes) in VARIANTS.items():
        for scale in SCALES.values():
            scale[variant] = {**scale[searcher], **changes, "unit": variant}
        DATA_OF[variant] = changes.get("data", DATA_OF[searcher])
        SEARCH[variant] = SEARCH[searcher]


_add_variants()


# -- Storage -----------------------------------------------------------------------------------


class Units:
    """Finished units (searches, retrainings) by id, in one atomically rewritten JSON file.

    ``copy``: a second file kept equal to it (the committed ``results/search_quality_units-SCALE.json``),
    read first, so a run continues from the units of a session whose work folder is gone."""

    def __init__(self, path: Path, copy: Path | None = None) -> None:
        self.path, self.copy = path, copy
        self.data: dict[str, Any] = {}
        for source in (copy, path):
            if source is not None and source.is_file():
                self.data.update(json.loads(source.read_text()))

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def _merge(self) -> None:
        """Add the units another benchmark process sharing the work folder has stored since."""
        if self.path.is_file():
            self.data = {**json.loads(self.path.read_text()), **self.data}

    def put(self, key: str, value: Any) -> Any:
        self._merge()  # merge, then write: another process's units are kept
        self.data[key] = value
        for target in (self.path, self.copy):
            if target is not None:
                atomic_write_bytes(target, json.dumps(self.data, indent=1, sort_keys=True).encode())
        return value

    def fresh(self, key: str) -> Any:
        """The value of ``key``, looking in the file too (another process may have stored it since)."""
        self._merge()
        return self.get(key)

    def once(self, key: str, make: Callable[[], Any]) -> Any:
        """The stored value of ``key``, or ``make()`` stored under it."""
        done = self.get(key)
        if done is not None:
            return done
        print(f"[{time.strftime('%H:%M:%S')}] {key} ...", flush=True)
        start = time.perf_counter()
        value = make()
        value["seconds"] = round(time.perf_counter() - start, 1)
        print(f"[{time.strftime('%H:%M:%S')}] {key}: {_short(value)}", flush=True)
        return self.put(key, value)


def _short(value: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items()
                     if isinstance(v, (int, float, str)) and k != "genotype")  # fmt: skip


# -- Retraining by the one recipe --------------------------------------------------------------


def scores(model: torch.nn.Module, data: Path, split: str, device: str) -> dict[str, float]:
    metrics = evaluate(model, open_folder(data), split, device)
    return {"iou": float(metrics["iou"]), "dice": float(metrics["dice"])}


def retrain(genotype: Genotype, data: Path, recipe: Recipe, size: int, seed: int, device: str, workdir: Path,
            model: torch.nn.Module | None = None, freeze_base: bool = False) -> dict[str, Any]:  # fmt: skip
    """Train ``genotype`` from scratch (or ``model`` as given) by the recipe; val picks the epoch; test scores."""
    genotype = genotype.replace(task={**genotype.task.model_dump(), "input_size": [size, size]})
    torch.manual_seed(seed)
    if model is None:
        model = zoo.build_model(genotype)
    trainer = Trainer(model, open_folder(data), recipe.config(size, seed, device, freeze_base), workdir)
    fit = trainer.fit(resume=trainer.checkpoint_path.is_file())
    test = scores(model, data, "test", device)
    return {"val_iou": float(fit.best_metrics.get("iou", 0.0)), "best_epoch": fit.best_epoch,
            "test_iou": test["iou"], "test_dice": test["dice"]}  # fmt: skip


def cost(genotype: Genotype, size: int) -> dict[str, int]:
    macs, params = measure(genotype.replace(task={**genotype.task.model_dump(), "input_size": [size, size]}),
                           (size, size))  # fmt: skip
    return {"macs": macs, "params": params}


# -- Searches: (searcher, arm, seed) -> the pick's genotype: search_quality_searches.SEARCH ------



# -- Retraining a pick (IAC: the implant's cell on its frozen base) ----------------------------


def retrain_pick(name: str, pick: dict[str, Any], data: Path, recipe: Recipe, size: int, seed: int, device: str,
                 workdir: Path) -> dict[str, Any]:  # fmt: skip
    genotype = Genotype.from_dict(pick["genotype"])
    if searcher_of(name) != "iac":
        return {**retrain(genotype, data, recipe, size, seed, device, workdir), **cost(genotype, size)}
    # The implant's base is the stage I base of its search (base.json beside it): a fresh cell on it, frozen.
    base_json = pick["base_json"]
    base_ref = {"model": base_json, "arch_hash": genotype.arch.base.arch_hash}
    genotype = genotype.replace(arch={**genotype.arch.model_dump(mode="json"), "base": base_ref}, weights=None)
    torch.manual_seed(seed)
    model = zoo.create_model(genotype, pretrained=True)
    out = retrain(genotype, data, recipe, size, seed, device, workdir, model=model, freeze_base=True)
    base = zoo.create_model(base_json, pretrained=True)
    base_val = scores(base, data, "val", device)["iou"]
    if out["val_iou"] < base_val:  # keep_base (the searcher's default): the base is the better candidate on val
        model.reset_to_base()
        test = scores(model, data, "test", device)
        out.update(test_iou=test["iou"], test_dice=test["dice"], val_iou=base_val, kept_base=True)
    else:
        out["kept_base"] = False
    return {**out, **cost(genotype, size)}


def iac_controls(pick: dict[str, Any], data: Path, recipe: Recipe, size: int, seed: int, device: str,
                 workdir: Path) -> dict[str, Any]:  # fmt: skip
    """The base as it is, and the base fine-tuned (unfrozen) for the steps the implant trains."""
    base_json = pick["base_json"]
    base = zoo.create_model(base_json, pretrained=True)
    as_is = scores(base, data, "test", device)
    tuned = retrain(Genotype.from_json(base_json), data, recipe, size, seed, device, workdir, model=base)
    return {"base_test_iou": as_is["iou"], "base_test_dice": as_is["dice"], "finetuned_test_iou": tuned["test_iou"],
            "finetuned_test_dice": tuned["test_dice"], **cost(Genotype.from_json(base_json), size)}  # fmt: skip


# -- Statistics --------------------------------------------------------------------------------


def summarise(name: str, units: Units, seeds: list[int], retrain_seeds: list[int]) -> dict[str, Any] | None:
    rows, per_seed = [], []
    for seed in seeds:
        arms: dict[str, list[dict[str, Any]]] = {}
        for arm in ("search", "random"):
            unit = arm_unit(name, arm)
            arms[arm] = [r for rs in retrain_seeds if (r := units.get(f"{unit}/{arm}/s{seed}/r{rs}")) is not None]
        if not arms["search"] and not arms["random"]:
            continue
        row = {"seed": seed}
        for arm, results in arms.items():
            if results:
                row[f"{arm}_test_iou"] = [r["test_iou"] for r in results]
                row[f"{arm}_test_dice"] = [r["test_dice"] for r in results]
                row[f"{arm}_macs"], row[f"{arm}_params"] = results[0]["macs"], results[0]["params"]
            search = units.get(f"{arm_unit(name, arm)}/{arm}/s{seed}/search") or {}
            row[f"{arm}_search_seconds"] = search.get("seconds")
        if searcher_of(name) == "iac":  # a variant shares its base row's base (and so its controls)
            base_row = arm_unit(name, "random")
            controls = [c for rs in retrain_seeds if (c := units.get(f"{base_row}/controls/s{seed}/r{rs}")) is not None]
            row["kept_base"] = [r.get("kept_base") for r in arms["search"]]
            if controls:
                row["base_test_iou"] = controls[0]["base_test_iou"]
                row["base_finetuned_test_iou"] = [c["finetuned_test_iou"] for c in controls]
        rows.append(row)
        if len(arms["search"]) == len(retrain_seeds) == len(arms["random"]):
            per_seed.append((statistics.fmean(row["search_test_iou"]), statistics.fmean(row["random_test_iou"])))
    if not rows:
        return None
    search_all = [v for row in rows for v in row.get("search_test_iou", [])]
    random_all = [v for row in rows for v in row.get("random_test_iou", [])]
    dice_s = [v for row in rows for v in row.get("search_test_dice", [])]
    dice_r = [v for row in rows for v in row.get("random_test_dice", [])]
    diffs = [a - b for a, b in per_seed]
    minutes = sum((u.get("seconds") or 0) for k, u in units.data.items() if k.startswith(f"{name}/")) / 60
    out = {
        "per_seed": rows,
        "complete_seeds": len(per_seed),
        "searcher_iou_mean": _mean_std(search_all)[0], "searcher_iou_std": _mean_std(search_all)[1],
        "random_iou_mean": _mean_std(random_all)[0], "random_iou_std": _mean_std(random_all)[1],
        "searcher_dice_mean": _mean_std(dice_s)[0], "random_dice_mean": _mean_std(dice_r)[0],
        "difference_per_seed": diffs,
        "difference_mean": statistics.fmean(diffs) if diffs else math.nan,
        "difference_ci90": difference_interval(diffs)[0],
        "difference_ci90_method": difference_interval(diffs)[1],
        "above_random": bool(diffs) and difference_interval(diffs)[0][0] > 0,
        "searcher_macs_mean": _mean_std([row["search_macs"] for row in rows if "search_macs" in row])[0],
        "random_macs_mean": _mean_std([row["random_macs"] for row in rows if "random_macs" in row])[0],
        "minutes": round(minutes, 1),
    }  # fmt: skip
    if searcher_of(name) == "iac":
        base = [row["base_test_iou"] for row in rows if "base_test_iou" in row]
        tuned = [v for row in rows for v in row.get("base_finetuned_test_iou", [])]
        out["base_iou_mean"] = _mean_std(base)[0]
        out["base_finetuned_iou_mean"] = _mean_std(tuned)[0]
        pairs = [(statistics.fmean(r["search_test_iou"]), r["base_test_iou"]) for r in rows
                 if "search_test_iou" in r and "base_test_iou" in r]  # fmt: skip
        out["implant_at_least_base_every_seed"] = all(a >= b - 1e-9 for a, b in pairs) if pairs else None
        tuned_pairs = [(statistics.fmean(r["search_test_iou"]), statistics.fmean(r["base_finetuned_test_iou"]))
                       for r in rows if "search_test_iou" in r and r.get("base_finetuned_test_iou")]  # fmt: skip
        out["implant_minus_finetuned_base"] = [a - b for a, b in tuned_pairs]
    if name == "autosegnet":
        curves = {arm: [(units.get(f"autosegnet/{arm}/s{seed}/search") or {}).get("curves", []) for seed in seeds]
                  for arm in ("search", "random")}  # fmt: skip
        out["mean_sampled_reward"] = {arm: [[round(c["mean_reward"], 4) for c in run] for run in runs]
                                      for arm, runs in curves.items()}  # fmt: skip
        last = {arm: [run[-1]["mean_reward"] for run in runs if run] for arm, runs in curves.items()}
        first = [run[0]["mean_reward"] for run in curves["search"] if run]
        out["final_mean_reward"] = {arm: statistics.fmean(v) if v else None for arm, v in last.items()}
        out["reward_rises"] = bool(
            first and last["search"] and statistics.fmean(last["search"]) > statistics.fmean(first)
        )
    return out


def controls_summary(units: Units, scale: dict[str, Any], retrain_seeds: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for data_name in scale["data"]:
        for model in CONTROLS:
            results = [r for rs in retrain_seeds if (r := units.get(f"control/{data_name}/{model}/r{rs}")) is not None]
            if results:
                ious = [r["test_iou"] for r in results]
                out[f"{data_name}/{model}"] = {
                    "test_iou_mean": statistics.fmean(ious), "test_iou": ious,
                    "test_dice": [r["test_dice"] for r in results], "macs": results[0]["macs"],
                    "params": results[0]["params"], "minutes": round(sum(r["seconds"] for r in results) / 60, 1),
                }  # fmt: skip
    return out


# -- The run -----------------------------------------------------------------------------------


def prepare_data(work: Path, scale: dict[str, Any]) -> dict[str, Path]:
    paths = {}
    for name, spec in scale["data"].items():
        path = work / "data" / name
        if not (path / "dataset.json").is_file():
            extra = {"difficulty": spec["difficulty"]} if "difficulty" in spec else {}
            make_dataset(name, path, n=spec["n"], size=scale["size"], seed=0, **extra)
        paths[name] = path
    return paths


def run(args: argparse.Namespace) -> dict[str, Any]:
    scale = SCALES[args.scale]
    work = Path(args.work or ROOT / "work" / f"search_quality-{args.scale}")
    work.mkdir(parents=True, exist_ok=True)
    # the default work folder is not committed: its units (small JSON) are, beside the results
    units = Units(work / "units.json", RESULTS.parent / f"search_quality_units-{args.scale}.json" if args.work is None
                  else None)  # fmt: skip
    data = prepare_data(work, scale)
    size, recipe = scale["size"], scale["recipe"]
    torch.set_num_threads(args.threads)
    output = Path(args.out)

    def write() -> dict[str, Any]:
        previous = json.loads(output.read_text()) if output.is_file() else {}
        same_scale = previous.get("scale") == args.scale
        searchers = previous.get("searchers", {}) if same_scale else {}
        for kept in searchers.values():  # rows from earlier runs: their interval by today's method
            if kept.get("difference_per_seed"):
                interval, method = difference_interval(kept["difference_per_seed"])
                kept["difference_ci90"], kept["difference_ci90_method"] = interval, method
                kept["above_random"] = kept["difference_ci90"][0] > 0
        for name in args.searchers:  # only the searchers this run was asked for: a job on one searcher
            summary = summarise(name, units, args.seeds, args.retrain_seeds)  # leaves the others' rows
            if summary is not None:
                searchers[name] = {"scale": args.scale, "data": DATA_OF[name], "seeds": args.seeds,
                                   "retrain_seeds": args.retrain_seeds,
                                   "test_images": len(open_folder(data[DATA_OF[name]]).splits["test"]),
                                   "budget": _jsonable(scale[name]), **summary}  # fmt: skip
        report = {
            "benchmark": "search_quality", "scale": args.scale, "image_size": size,
            "recipe": _jsonable(vars(recipe)), "data": _jsonable(scale["data"]),
            "protocol": "paired search seeds; each pick retrained from scratch by one recipe with several seeds; "
                        "epoch chosen on val; test split never seen by a search; 90% Student t interval of the mean "
                        "paired difference (searcher - random) over search seeds (a percentile bootstrap from 10 "
                        "seeds)",
            "searchers": searchers,
            "controls": {**(previous.get("controls", {}) if same_scale else {}),
                         **controls_summary(units, scale, args.retrain_seeds)},
            "device": args.device, "threads": args.threads, "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "library_versions": library_versions(),
        }  # fmt: skip
        output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(output, (json.dumps(_finite(report), indent=1) + "\n").encode())
        return report

    for data_name in sorted({DATA_OF[n] for n in args.searchers}):
        for model in args.controls:
            for rs in args.retrain_seeds:
                genotype = zoo.resolve_genotype(model).replace(task=search_task(data[data_name], (size, size)))
                units.once(f"control/{data_name}/{model}/r{rs}", lambda g=genotype, rs=rs, m=model, d=data_name: {
                    **retrain(g, data[d], recipe, size, rs, args.device, work / "retrain" / f"control-{d}-{m}-r{rs}"),
                    **cost(g, size)})  # fmt: skip
        write()
    for name in args.searchers:
        for seed in args.seeds:
            for arm in ("search", "random"):
                unit = arm_unit(name, arm)  # a shared random arm runs (once) as its searcher's
                run_dir = work / "runs" / f"{unit}-{arm}-s{seed}"
                pick = units.once(f"{unit}/{arm}/s{seed}/search", lambda n=unit, a=arm, s=seed, r=run_dir: SEARCH[n](
                    a, s, data[DATA_OF[n]], r, scale[n], size, args.device, units))  # fmt: skip
                for rs in args.retrain_seeds:
                    workdir = work / "retrain" / f"{unit}-{arm}-s{seed}-r{rs}"
                    units.once(f"{unit}/{arm}/s{seed}/r{rs}", lambda p=pick, rs=rs, w=workdir, n=unit: retrain_pick(
                        n, p, data[DATA_OF[n]], recipe, size, rs, args.device, w))  # fmt: skip
                    write()
            if searcher_of(name) == "iac" and arm_unit(name, "random") == name:  # a row with its own base
                pick = units.get(f"{name}/search/s{seed}/search")
                for rs in args.retrain_seeds:
                    workdir = work / "retrain" / f"{name}-base-finetune-s{seed}-r{rs}"
                    units.once(f"{name}/controls/s{seed}/r{rs}", lambda p=pick, rs=rs, w=workdir, d=DATA_OF[name]:
                               iac_controls(p, data[d], recipe, size, rs, args.device, w))  # fmt: skip
                write()
    return write()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    parser.add_argument("--searchers", nargs="+", choices=ROWS, default=list(SEARCHERS))
    parser.add_argument("--controls", nargs="*", choices=CONTROLS, default=list(CONTROLS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--retrain-seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (two jobs share the 2 cores)")
    parser.add_argument("--work", default=None, help="work folder (default benchmarks/work/search_quality-SCALE)")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--table", action="store_true", help="print the README table of --out and stop")
    parser.add_argument("--plot", action="store_true", help="redraw search_quality.png from --out and stop")
    args = parser.parse_args(argv)
    if args.table or args.plot:
        report = json.loads(Path(args.out).read_text())
        if args.plot:
            plot(report, Path(args.out).with_suffix(".png"))
        if args.table:
            print(markdown_table(report))
        return
    report = run(args)
    plot(report, Path(args.out).with_suffix(".png"))
    for name, row in report["searchers"].items():
        print(f"{name}: searcher {number(row['searcher_iou_mean'], '.4f')} random "
              f"{number(row['random_iou_mean'], '.4f')} diff {number(row['difference_mean'], '+.4f')} "
              f"CI90 {row['difference_ci90']}", file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main()
