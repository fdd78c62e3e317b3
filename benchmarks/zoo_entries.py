"""Zoo entries: searched picks and hand-designed baselines trained by one recipe -> ``genotypes/`` + results.

Issue 15, DESIGN.md "Zoo entries". For every entry of :data:`ENTRIES` (searcher x data set):

1. **The pick.** Where ``benchmarks/search_quality.py`` has searched that searcher on that data set
   (its CPU scale, 3 seeds), the pick is the seed whose retrained pick scored best on **val**
   (the search-quality test split is not used to choose). Otherwise the searcher runs here once
   (seed 0) with the same CPU-scale settings on the same search data.
2. **Training to convergence** by :data:`ZOO_RECIPE`, the same for every entry and every
   baseline, on the zoo data set: the same generator with another seed (seed 1, 800 images), so
   its test split (120 images) is one that no search saw. The epoch is chosen on val.
   IAC: the base (``iac-base-unet-small``) is trained by the recipe first; the implant's cells are
   then trained on the frozen base by the recipe; if the base alone is better on val, the
   implant is reset to the base (the searcher's keep-base rule) and says so in its provenance.
3. **Shipping.** The weights are written next to the genotype as safetensors bound to the arch
   hash (float16 storage when float32 would pass :data:`MAX_FILE_BYTES`; loading casts back), and
   the test metrics are measured on the model *loaded from that file*, so they are what a user
   gets from ``create_model(NAME, pretrained=True)``.

Baselines (:data:`BASELINES`) are trained the same way; they are shipped only where the file fits
(``unet-small``), the others get figures only. The pix2pix U-Net is trained at its own 256 px
input (it has 8 stride-2 levels), on the same images upscaled, with the same steps and batch.

Resumable: each finished unit (search, training) is stored in ``WORK/units.json``; training runs
resume from their checkpoints. Results: ``benchmarks/results/zoo_entries.json``.

Usage::

    python benchmarks/zoo_entries.py                       # all entries and baselines (about 1 h here)
    python benchmarks/zoo_entries.py --only asdet-synth-defects unet-small-synth-defects
    python benchmarks/zoo_entries.py --scale tiny --work /tmp/zoo --genotypes /tmp/zoo/genotypes
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import search_quality as sq  # noqa: E402

from nasseg import zoo  # noqa: E402
from nasseg.searchers.evaluators import search_task  # noqa: E402
from nasseg.zoo.data.folder import open_folder  # noqa: E402
from nasseg.zoo.data.synthetic import make_dataset  # noqa: E402
from nasseg.zoo.genotype import Genotype  # noqa: E402
from nasseg.zoo.io import atomic_write_bytes  # noqa: E402
from nasseg.zoo.training.trainer import TrainConfig, Trainer  # noqa: E402
from nasseg.zoo.versions import library_versions  # noqa: E402
from nasseg.zoo.weights import save_weights  # noqa: E402

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "zoo_entries.json"
GENOTYPES = ROOT.parent / "genotypes"
MAX_FILE_BYTES = 5 * 1024 * 1024

# entry name -> (searcher, data set)
ENTRIES: dict[str, tuple[str, str]] = {
    "ga-unet-synth-defects": ("unet-ga", "synth-defects"),
    "renas-synth-defects": ("renas", "synth-defects"),
    "asdet-synth-defects": ("nas-asdet", "synth-defects"),
    "asdet-pt-synth-defects": ("nas-asdet", "synth-defects"),
    "iac-unet-small-synth-defects": ("iac", "synth-defects"),
    "autosegnet-synth-defects": ("autosegnet", "synth-defects"),
    "iac-unet-small-synth-membranes": ("iac", "synth-membranes"),
    "autosegnet-synth-membranes": ("autosegnet", "synth-membranes"),
}
#: entries searched with a latency objective (issue 19): the table, made by ``nasseg latency table`` on
#: this machine (256x256, fp32, 2 threads), and MnasNet's soft constraint at the line's budget
LATENCY_TABLE = ROOT / "results" / "latency_table.json"
LATENCY_ENTRIES: dict[str, dict[str, float]] = {"autosegnet-20ms-synth-defects": {"target_ms": 20.0, "weight": 0.5}}
ENTRIES.update({name: ("autosegnet", "synth-defects") for name in LATENCY_ENTRIES})
#: entries whose pick is a search-quality variant row's (its settings and units), not the searcher's row:
#: NAS-ASDet's default selection is perturbation since issue 29 (row ``nas-asdet-pt``);
#: ``asdet-synth-defects`` stays the paper's alpha-rule pick that the runtime and speed benchmarks measured
ENTRY_ROWS: dict[str, str] = {"asdet-pt-synth-defects": "nas-asdet-pt"}


class BudgetPick(NamedTuple):
    """A pick of ``latency_budgets.py``: its searcher, the row it searched as (the searcher or one
    of that benchmark's ``VARIANTS``), the budget in ms and the data set."""

    searcher: str
    row: str
    budget: float
    data: str

    def unit(self, what: str) -> str:
        """The id of this pick's ``what`` unit (``search``, ``r0``) in latency_budgets' work folder."""
        from latency_budgets import data_key  # it imports this module

        return data_key(self.data, self.row, f"{self.budget:g}", what)


#: picks of ``latency_budgets.py`` that beat the tuned U-Net grid at their budget (issue 29 item 6);
#: the search is that benchmark's (its work folder's units), the training here the same recipe and
#: seed as the better (on val) of its two retrainings
BUDGET_ENTRIES: dict[str, BudgetPick] = {
    "ga-unet-2ms-synth-defects": BudgetPick("unet-ga", "unet-ga", 2.0, "synth-defects"),
    "autosegnet-16ms-synth-defects": BudgetPick("autosegnet", "autosegnet", 16.0, "synth-defects"),
    "ga-unet-2ms-synth-membranes": BudgetPick("unet-ga", "unet-ga-d0", 2.0, "synth-membranes"),
}
ENTRIES.update({name: (pick.searcher, pick.data) for name, pick in BUDGET_ENTRIES.items()})
BASELINES = ("unet-small", "smp-unet-resnet18", "unet-pix2pix-256")
SHIPPED_BASELINES = ("unet-small",)


def zoo_recipe(epochs: int, steps: int, size: int, seed: int, device: str, freeze_base: bool = False) -> TrainConfig:
    """The one zoo recipe: Adam 3e-3, cosine with warm restarts (10, 20 epochs), flips and
    right-angle rotations, batch 8, ``epochs`` x ``steps`` steps; val IoU picks the epoch."""
    return TrainConfig(epochs=epochs, batch_size=8, crop=(size, size), optimizer="adam", lr=3e-3, weight_decay=1e-4,
                       scheduler="cosine", restart_epochs=max(1, epochs // 3), seed=seed, device=device,
                       freeze_base=freeze_base, max_steps_per_epoch=steps, min_steps_per_epoch=steps,
                       augment={"flip": True, "rotate": True, "intensity": 0.1})  # fmt: skip


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {"search_scale": "tiny", "n": 60, "size": 32, "epochs": 3, "steps": 3},
    "cpu": {"search_scale": "cpu", "n": 800, "size": 64, "epochs": 30, "steps": 30},
}


# ---------------------------------------------------------------------------------------------
# Picks
# ---------------------------------------------------------------------------------------------


def best_seed(units: sq.Units, searcher: str, seeds: list[int], retrain_seeds: list[int]) -> int | None:
    """The search seed whose retrained picks have the best mean **val** IoU, or None."""
    scored = {}
    for seed in seeds:
        rows = [units.get(f"{searcher}/search/s{seed}/r{rs}") for rs in retrain_seeds]
        if units.get(f"{searcher}/search/s{seed}/search") and all(rows):
            scored[seed] = statistics.fmean(r["val_iou"] for r in rows)
    return max(scored, key=scored.get) if scored else None


def pick_for(entry: str, scale: dict[str, Any], work: Path, units: sq.Units, device: str,
             sq_work: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """The search that produced ``entry``'s architecture: from search quality (``sq_work``, its work
    folder; the row of :data:`ENTRY_ROWS` where one is named), or run here."""
    searcher, data_name = ENTRIES[entry]
    row = ENTRY_ROWS.get(entry, searcher)
    search_scale = sq.SCALES[scale["search_scale"]]
    sq_work = sq_work or ROOT / "work" / f"search_quality-{scale['search_scale']}"
    settings = search_scale[row]
    if entry in BUDGET_ENTRIES:
        budget_pick = BUDGET_ENTRIES[entry]
        found = sq.Units(work / "latency_budgets_units.json").get(budget_pick.unit("search"))
        if found is None:
            raise SystemExit(f"{entry}: run `python benchmarks/latency_budgets.py --data {data_name} --searchers "
                             f"{budget_pick.row} --budgets {budget_pick.budget:g}` first (its pick is this entry's "
                             "architecture)")  # fmt: skip
        return {**found, "seed": 0, "search_data": str(work / "search" / data_name), "run_dir": found["run_dir"],
                "chosen_by": f"latency_budgets.py: the {budget_pick.row} search at {budget_pick.budget:g} ms "
                             "(seed 0)"}  # fmt: skip
    if entry in LATENCY_ENTRIES:  # its own search, with the latency objective
        from nasseg.searchers.latency import LatencyObjective

        spec = LATENCY_ENTRIES[entry]
        settings = {**settings, "latency": LatencyObjective.from_options(LATENCY_TABLE, spec["target_ms"],
                                                                          spec["weight"], (256, 256))}  # fmt: skip
    elif sq.DATA_OF[row] == data_name and (sq_work / "units.json").is_file():
        sq_units = sq.Units(sq_work / "units.json")
        seed = best_seed(sq_units, row, [0, 1, 2], [0, 1])
        if seed is not None:
            found = sq_units.get(f"{row}/search/s{seed}/search")
            return {**found, "seed": seed, "search_data": str(sq_work / "data" / data_name),
                    "run_dir": str(sq_work / "runs" / f"{row}-search-s{seed}"),
                    "chosen_by": f"best mean val IoU of the retrained picks over search seeds 0-2 (search_quality "
                                 f"row {row})"}  # fmt: skip
    data = sq.prepare_data(work / "search", search_scale)[data_name]
    run_dir = work / "runs" / f"{row}-{data_name}-s0"
    run_dir = work / "runs" / f"{entry}-s0" if entry in LATENCY_ENTRIES else run_dir
    found = units.once(f"search/{entry}", lambda: sq.SEARCH[searcher](
        "search", 0, data, run_dir, settings, search_scale["size"], device, units))  # fmt: skip
    return {**found, "seed": 0, "search_data": str(data), "run_dir": str(run_dir), "chosen_by": "the only seed"}


# ---------------------------------------------------------------------------------------------
# Training and shipping
# ---------------------------------------------------------------------------------------------


def zoo_data_command(data_name: str, scale: dict[str, Any]) -> str:
    """The provenance ``dataset`` of a zoo entry: the name, and the command that makes the data (runnable)."""
    difficulty = " --difficulty medium" if data_name == "synth-defects" else ""
    return (f"{data_name} (nasseg data make {data_name} --out data/{data_name}{difficulty} --n {scale['n']} "
            f"--size {scale['size']} --seed 1)")  # fmt: skip


def budget_training_seed(entry: str, work: Path) -> int:
    """The training seed of ``latency_budgets.py``'s retrainings of ``entry``'s pick with the best
    val IoU (the recipe with that seed is reproduced here, so the shipped weights are that run's)."""
    budget_pick = BUDGET_ENTRIES[entry]
    units = sq.Units(work / "latency_budgets_units.json")
    trained = {seed: units.get(budget_pick.unit(f"r{seed}")) for seed in (0, 1)}
    return max((seed for seed in trained if trained[seed]), key=lambda seed: trained[seed]["val_iou"], default=0)


def sized(genotype: Genotype, size: int, name: str | None = None) -> Genotype:
    task = {**genotype.task.model_dump(), "input_size": [size, size]}
    return genotype.replace(task=task, **({"name": name} if name else {}))


def train(model: torch.nn.Module, data: Path, scale: dict[str, Any], size: int, device: str, workdir: Path,
          freeze_base: bool = False, seed: int = 0) -> dict[str, Any]:  # fmt: skip
    config = zoo_recipe(scale["epochs"], scale["steps"], size, seed, device, freeze_base)
    trainer = Trainer(model, open_folder(data), config, workdir)
    fit = trainer.fit(resume=trainer.checkpoint_path.is_file())
    return {"val_iou": float(fit.best_metrics.get("iou", 0.0)), "best_epoch": fit.best_epoch}


def ship(model: torch.nn.Module, genotype: Genotype, out_dir: Path) -> tuple[Genotype, Path]:
    """Write the weights (float16 if float32 would be too large) and return the genotype naming them."""
    path = out_dir / f"{genotype.name}.safetensors"
    params = sum(t.numel() for t in model.state_dict().values())
    dtype = torch.float16 if params * 4 > MAX_FILE_BYTES * 0.95 else None
    weights = save_weights(model, genotype, path, dtype=dtype)
    return genotype.replace(weights=weights.model_dump(mode="json")), path


def iac_models(pick: dict[str, Any], entry: str, data: Path, scale: dict[str, Any], size: int, device: str,
               work: Path, units: sq.Units) -> tuple[torch.nn.Module, Genotype, dict[str, Any]]:  # fmt: skip
    """Train the base by the recipe, then the pick's cells on the frozen base; keep-base rule on val."""
    data_name = ENTRIES[entry][1]
    implant = Genotype.from_dict(pick["genotype"])
    base_genotype = zoo.get_genotype("iac-base-unet-small").replace(
        name=f"iac-base-unet-small-{data_name}", task={**implant.task.model_dump(), "input_size": [size, size]}
    )
    base_dir = work / "train" / f"iac-base-{data_name}"
    torch.manual_seed(0)
    base = zoo.build_model(base_genotype)
    base_fit = units.once(f"train/iac-base-{data_name}", lambda: train(base, data, scale, size, device, base_dir))
    base.load_state_dict(torch.load(base_dir / "best_state.pt", map_location="cpu", weights_only=True))
    base_json = work / "train" / f"iac-base-{data_name}.json"
    base_json.parent.mkdir(parents=True, exist_ok=True)
    shipped_base = base_genotype.replace(weights=save_weights(base, base_genotype, base_json.with_suffix(
        ".safetensors")).model_dump(mode="json"))  # fmt: skip
    base_json.write_text(shipped_base.to_json())
    local = implant.replace(name=entry, task={**implant.task.model_dump(), "input_size": [size, size]},
                            arch={**implant.arch.model_dump(mode="json"),
                                  "base": {"model": str(base_json), "arch_hash": base_genotype.arch_hash}},
                            weights=None)  # fmt: skip
    torch.manual_seed(0)
    model = zoo.create_model(local, pretrained=True)
    fit = train(model, data, scale, size, device, work / "train" / entry, freeze_base=True)
    base_val = float(base_fit["val_iou"])
    kept_base = fit["val_iou"] < base_val
    if kept_base:
        model.reset_to_base()
        fit = {**fit, "val_iou": base_val}
    shipped = local.replace(
        arch={
            **local.arch.model_dump(mode="json"),
            "base": {"model": "iac-base-unet-small", "arch_hash": base_genotype.arch_hash},
        }
    )
    return model, shipped, {**fit, "kept_base": kept_base, "base_val_iou": base_val}


def recipe_record(scale: dict[str, Any], size: int) -> dict[str, Any]:
    config = zoo_recipe(scale["epochs"], scale["steps"], size, 0, "cpu")
    keys = ("epochs", "batch_size", "crop", "optimizer", "lr", "weight_decay", "scheduler", "restart_epochs",
            "max_steps_per_epoch", "augment", "monitor", "clip_grad_norm")  # fmt: skip
    return {**{k: sq._jsonable(getattr(config, k)) for k in keys}, "seed": 0,
            "data": f"{scale['n']} images at {size} px, seed 1 (70/15/15)", "epoch_chosen_on": "val iou"}  # fmt: skip


def finish(model: torch.nn.Module, genotype: Genotype, data: Path, out_dir: Path, size: int,
           device: str) -> dict[str, Any]:  # fmt: skip
    """Ship the weights, reload them from the file as a user would, score val and test."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shipped, path = ship(model, genotype, out_dir)
    json_path = out_dir / f"{genotype.name}.json"
    atomic_write_bytes(json_path, shipped.to_json().encode())
    loaded = zoo.create_model(json_path, pretrained=True)
    test, val = sq.scores(loaded, data, "test", device), sq.scores(loaded, data, "val", device)
    report = zoo.profile(loaded, input_size=(1, shipped.task.in_channels, 256, 256))  # the shipped net at 256 px
    macs, params = int(report.macs), int(report.params_total - report.params_auxiliary)
    return {"test_iou": test["iou"], "test_dice": test["dice"], "val_iou_shipped": val["iou"], "macs_256": macs,
            "params": params, "file_bytes": path.stat().st_size, "file": str(path.name)}  # fmt: skip


def write_provenance(json_path: Path, provenance: dict[str, Any]) -> None:
    genotype = Genotype.from_json(json_path)
    updated = genotype.replace(provenance={**genotype.provenance.model_dump(mode="json"), **provenance})
    atomic_write_bytes(json_path, updated.to_json().encode())


def device_words(device: str, threads: int) -> str:
    return f"{device} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {threads} torch threads)"


def build_entry(entry: str, scale: dict[str, Any], work: Path, data: dict[str, Path], units: sq.Units,
                args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    searcher, data_name = ENTRIES[entry]
    size = scale["size"]
    pick = pick_for(entry, scale, work, units, args.device)

    def make() -> dict[str, Any]:
        start = time.perf_counter()
        if searcher == "iac":
            model, genotype, fit = iac_models(pick, entry, data[data_name], scale, size, args.device, work, units)
        else:
            genotype = sized(Genotype.from_dict(pick["genotype"]), size, entry)
            genotype = genotype.replace(task={**genotype.task.model_dump(),
                                              **search_task(data[data_name], (size, size))})  # fmt: skip
            seed = budget_training_seed(entry, work) if entry in BUDGET_ENTRIES else 0
            torch.manual_seed(seed)
            model = zoo.build_model(genotype)
            fit = {**train(model, data[data_name], scale, size, args.device, work / "train" / entry, seed=seed),
                   "training_seed": seed}  # fmt: skip
        train_seconds = time.perf_counter() - start
        out = finish(model, genotype, data[data_name], Path(args.genotypes), size, args.device)
        settings = sq._jsonable(sq.SCALES[scale["search_scale"]][ENTRY_ROWS.get(entry, searcher)])
        settings.pop("unit", None)  # a variant row's bookkeeping, not a search setting
        if entry in LATENCY_ENTRIES:
            settings["latency"] = {**LATENCY_ENTRIES[entry], "table": LATENCY_TABLE.name, "size": [256, 256],
                                   "form": "MnasNet soft constraint on the predicted latency"}  # fmt: skip
        if entry in BUDGET_ENTRIES:
            from latency_budgets import SEARCH_OVERRIDES, VARIANTS

            budget_pick = BUDGET_ENTRIES[entry]
            settings.update(sq._jsonable(SEARCH_OVERRIDES.get(searcher, {})))
            settings.update(sq._jsonable(VARIANTS.get(budget_pick.row, (searcher, {}))[1]))
            settings["latency"] = {"target_ms": budget_pick.budget, "weight": 2.0, "table": LATENCY_TABLE.name,
                                   "size": [256, 256],
                                   "form": "MnasNet soft constraint on the predicted latency"}  # fmt: skip
        metrics = {"test_iou": out["test_iou"], "test_dice": out["test_dice"], "val_iou": out["val_iou_shipped"]}
        provenance = {
            "searcher": searcher, "dataset": zoo_data_command(data_name, scale),
            "seed": pick["seed"], "search_seconds": pick.get("seconds"),
            "search_settings": {**settings, "image_size": sq.SCALES[scale["search_scale"]]["size"],
                                "search_data": Path(pick["search_data"]).name + " seed 0", "pick": pick["chosen_by"],
                                **({"kept_base": fit["kept_base"], "base_val_iou": fit["base_val_iou"]}
                                   if searcher == "iac" else {})},
            "device": device_words(args.device, args.threads),
            "train_recipe": {**recipe_record(scale, size), "seed": fit.get("training_seed", 0),
                             **({"seed_chosen_on": "val iou of latency_budgets.py's 2 training seeds"}
                                if entry in BUDGET_ENTRIES else {})},
            "metrics": metrics, "library_versions": library_versions(),
            "created": dt.date.today().isoformat(),
            "source": f"searched by nasseg's {searcher} (benchmarks/zoo_entries.py), trained by the zoo recipe",
        }  # fmt: skip
        write_provenance(Path(args.genotypes) / f"{entry}.json", provenance)
        return {"searcher": searcher, "data": data_name, **fit, **out, "train_seconds": round(train_seconds, 1),
                "search_seconds": pick.get("seconds"), "search_seed": pick["seed"]}  # fmt: skip

    return units.once(f"entry/{entry}", make)


def build_baseline(model_name: str, data_name: str, scale: dict[str, Any], work: Path, data: dict[str, Path],
                   units: sq.Units, args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    """A hand-designed net by the same recipe on the same data (pix2pix at its 256 px input)."""
    size = scale["size"]
    name = f"{model_name}-{data_name}"

    def make() -> dict[str, Any]:
        base = zoo.get_genotype(model_name)
        divisor = zoo.input_divisor(base)
        train_size = max(size, divisor)
        folder = data[data_name] if train_size == size else upscaled(data[data_name], train_size, work)
        genotype = base.replace(name=name, task=search_task(folder, (train_size, train_size), 3))
        torch.manual_seed(0)
        model = zoo.build_model(genotype)
        start = time.perf_counter()
        fit = train(model, folder, scale, train_size, args.device, work / "train" / name)
        train_seconds = time.perf_counter() - start
        ship_dir = Path(args.genotypes) if model_name in SHIPPED_BASELINES else work / "baselines"
        out = finish(model, genotype, folder, ship_dir, train_size, args.device)
        if model_name in SHIPPED_BASELINES:
            write_provenance(ship_dir / f"{name}.json", {
                "dataset": zoo_data_command(data_name, scale),
                "device": device_words(args.device, args.threads), "train_recipe": recipe_record(scale, size),
                "metrics": {"test_iou": out["test_iou"], "test_dice": out["test_dice"]},
                "library_versions": library_versions(), "created": dt.date.today().isoformat(),
                "source": f"hand-designed baseline {model_name}, trained by the zoo recipe (benchmarks/zoo_entries.py)",
            })  # fmt: skip
        return {"model": model_name, "data": data_name, "train_size": train_size, **fit, **out,
                "shipped": model_name in SHIPPED_BASELINES, "train_seconds": round(train_seconds, 1)}  # fmt: skip

    return units.once(f"baseline/{name}", make)


def upscaled(folder: Path, size: int, work: Path) -> Path:
    """The folder's images and masks resized to ``size`` (nearest for masks), for nets with a fixed
    large divisor; the split and file names stay."""
    from PIL import Image

    out = work / "data" / f"{folder.name}-{size}px"
    if (out / "dataset.json").is_file():
        return out
    for path in sorted(folder.glob("*/*/*.png")):
        target = out / path.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        resample = Image.NEAREST if path.parent.name == "masks" else Image.BILINEAR
        Image.open(path).resize((size, size), resample).save(target)
    meta = json.loads((folder / "dataset.json").read_text())
    (out / "dataset.json").write_text(json.dumps({**meta, "size": size, "upscaled_from": meta["size"]}, indent=2))
    return out


def prepare_zoo_data(work: Path, scale: dict[str, Any], names: set[str]) -> dict[str, Path]:
    paths = {}
    for name in sorted(names):
        path = work / "data" / name
        if not (path / "dataset.json").is_file():
            extra = {"difficulty": "medium"} if name == "synth-defects" else {}
            make_dataset(name, path, n=scale["n"], size=scale["size"], seed=1, **extra)
        paths[name] = path
    return paths


def run(args: argparse.Namespace) -> dict[str, Any]:
    scale = SCALES[args.scale]
    work = Path(args.work or ROOT / "work" / f"zoo-{args.scale}")
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    units = sq.Units(work / "units.json")
    wanted = args.only or [*ENTRIES, *(f"{b}-{d}" for b in BASELINES for d in ("synth-defects", "synth-membranes"))]
    data = prepare_zoo_data(work, scale, {"synth-defects", "synth-membranes"})
    for name in wanted:
        if name in ENTRIES:
            build_entry(name, scale, work, data, units, args)
        else:
            model_name, data_name = next((b, name[len(b) + 1 :]) for b in BASELINES if name.startswith(b + "-"))
            build_baseline(model_name, data_name, scale, work, data, units, args)
        write(units, args, scale)
    return write(units, args, scale)


def write(units: sq.Units, args: argparse.Namespace, scale: dict[str, Any]) -> dict[str, Any]:
    """The results file: rows of this work folder's units over the rows already in the file (a fresh
    checkout has no work folder: rows measured before are kept, not dropped)."""
    out = Path(args.out)
    before = json.loads(out.read_text()) if out.is_file() else {}
    report = {
        "benchmark": "zoo_entries", "scale": args.scale, "recipe": recipe_record(scale, scale["size"]),
        "entries": {**before.get("entries", {}),
                    **{k[len("entry/"):]: v for k, v in units.data.items() if k.startswith("entry/")}},
        "baselines": {**before.get("baselines", {}),
                      **{k[len("baseline/"):]: v for k, v in units.data.items() if k.startswith("baseline/")}},
        "device": device_words(args.device, args.threads), "library_versions": library_versions(),
    }  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, (json.dumps(report, indent=1, sort_keys=True) + "\n").encode())
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    parser.add_argument(
        "--only", nargs="+", default=None, help="entry or baseline names (e.g. unet-small-synth-defects)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (two jobs share the 2 cores)")
    parser.add_argument("--work", default=None, help="work folder (default benchmarks/work/zoo-SCALE)")
    parser.add_argument("--genotypes", default=str(GENOTYPES), help="where shipped genotypes and weights go")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    report = run(args)
    for name, row in {**report["entries"], **report["baselines"]}.items():
        print(
            f"{name}: test IoU {row['test_iou']:.4f}  MACs@256 {row['macs_256'] / 1e9:.2f} G  "
            f"params {row['params'] / 1e6:.2f} M  file {row['file_bytes'] / 1e6:.2f} MB",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
