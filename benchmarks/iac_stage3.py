"""IAC stage III: which learning rate and how many epochs? -> ``results/iac_stage3.json``.

Issue 14 asks for stage III's learning rate and length "set by measurement". For each search seed,
stage I (the base) and stage II (the cell search) run at search_quality's CPU scale; the derived
cell is then implanted into the frozen base and trained by stage III (Adam, constant lr, Dice loss,
no augmentation: the paper's stage I hyper-parameters) once per learning rate for the longest
length. Because the lr is constant, the run passes through every shorter length exactly, so the
length at L epochs is the checkpoint with the best **val** IoU among the first L epochs (or the base,
when the base is better on val: the searcher's ``keep_base``). Test IoU is recorded at every epoch
but never used to choose.

Reported per (lr, length): mean and std over seeds of the val-chosen test IoU, its gain over the
base, and how often the trained implant (not the kept base) was chosen. Resumable: every finished
(seed, lr) run lands in ``WORK/units.json``; a killed trainer resumes from its checkpoint.

Usage::

    python benchmarks/iac_stage3.py                      # 3 seeds x 4 lrs, about 45 min on one core
    python benchmarks/iac_stage3.py --scale tiny --work /tmp/iac3   # smoke test
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import search_quality as sq  # noqa: E402

from nasseg import zoo  # noqa: E402
from nasseg.zoo.data.folder import open_folder  # noqa: E402
from nasseg.zoo.genotype import Genotype  # noqa: E402
from nasseg.zoo.io import atomic_write_bytes  # noqa: E402
from nasseg.zoo.training.trainer import Trainer  # noqa: E402
from nasseg.zoo.versions import library_versions  # noqa: E402

RESULTS = sq.ROOT / "results" / "iac_stage3.json"
LRS = (3e-4, 1e-3, 3e-3, 1e-2)
#: learning rates also tried with flips (the search-quality retrain of implants uses them; the paper none)
FLIP_LRS = (1e-3, 3e-3)
FLIPS = {"flip": True, "rotate": False, "intensity": 0.0}
LENGTHS = {"tiny": (1, 2), "cpu": (8, 16, 32, 48)}


def search_cell(seed: int, data: Path, work: Path, s: dict[str, Any], size: int, device: str) -> dict[str, Any]:
    """Stages I and II of one seed (stage III cut to one epoch: the sweep trains it)."""
    run_dir = work / "runs" / f"iac-s{seed}"
    sq.run_searcher(sq.iac_config({**s, "cell_epochs": 1}, seed, data, size, device), run_dir)
    return {"implant": str(run_dir / "implant.json"), "base_json": str(run_dir / "base.json")}


def stage_three(seed: int, lr: float, epochs: int, pick: dict[str, Any], data: Path, s: dict[str, Any], size: int,
                device: str, workdir: Path, flip: bool = False) -> dict[str, Any]:  # fmt: skip
    """One stage III run at ``lr`` for ``epochs`` (``flip``: with flips): val and test IoU after every epoch."""
    from nasseg.searchers.iac import NO_AUGMENT

    genotype = Genotype.from_json(pick["implant"])
    base_ref = {"model": pick["base_json"], "arch_hash": genotype.arch.base.arch_hash}
    genotype = genotype.replace(arch={**genotype.arch.model_dump(mode="json"), "base": base_ref}, weights=None)
    torch.manual_seed(seed + 2)  # the searcher's stage III seed: fresh cell weights
    model = zoo.create_model(genotype, pretrained=True)
    folder = open_folder(data)
    config = sq.Recipe(epochs=epochs, steps=s["steps"], lr=lr).config(size, seed, device, freeze_base=True)
    config.loss, config.augment = "dice", dict(FLIPS if flip else NO_AUGMENT)
    trainer = Trainer(model, folder, config, workdir)
    tests_path = workdir / "test_per_epoch.json"
    tests: dict[str, float] = json.loads(tests_path.read_text()) if tests_path.is_file() else {}

    def on_step(event: dict[str, Any]) -> None:
        if event.get("end_of_epoch"):
            tests[str(event["epoch"])] = sq.scores(model, data, "test", device)["iou"]
            atomic_write_bytes(tests_path, json.dumps(tests).encode())

    trainer.on_step = on_step
    fit = trainer.fit(resume=trainer.checkpoint_path.is_file())
    base = zoo.create_model(pick["base_json"], pretrained=True)
    return {"val": [r["iou"] for r in fit.history], "test": [tests[str(e + 1)] for e in range(len(fit.history))],
            "base_val": sq.scores(base, data, "val", device)["iou"],
            "base_test": sq.scores(base, data, "test", device)["iou"]}  # fmt: skip


def chosen(run: dict[str, Any], length: int) -> tuple[float, bool]:
    """Test IoU of the val-best of the first ``length`` epochs, or the base's when it is better on val."""
    val = run["val"][:length]
    best = max(range(len(val)), key=val.__getitem__)
    if val[best] < run["base_val"]:
        return run["base_test"], False
    return run["test"][best], True


def arms(lrs: list[float]) -> list[tuple[float, bool]]:
    """(lr, flips) of every stage III run of a seed."""
    return [(lr, False) for lr in lrs] + [(lr, True) for lr in FLIP_LRS]


def arm_key(seed: int, lr: float, flip: bool) -> str:
    return f"s{seed}/lr{lr:g}" + ("/flip" if flip else "")


def summarise(units: sq.Units, seeds: list[int], lrs: list[float], lengths: tuple[int, ...]) -> list[dict[str, Any]]:
    rows = []
    for lr, flip in arms(lrs):
        runs = [r for seed in seeds if (r := units.get(arm_key(seed, lr, flip))) is not None]
        if not runs:
            continue
        for length in lengths:
            picks = [chosen(r, length) for r in runs]
            tests = [t for t, _ in picks]
            gains = [t - r["base_test"] for (t, _), r in zip(picks, runs, strict=True)]
            rows.append({"lr": lr, "flips": flip, "epochs": length, "steps": length * units.get("steps"),
                         "seeds": len(runs),
                         "test_iou_mean": statistics.fmean(tests),
                         "test_iou_std": statistics.stdev(tests) if len(tests) > 1 else 0.0,
                         "gain_over_base_mean": statistics.fmean(gains), "gain_over_base_min": min(gains),
                         "implant_chosen": sum(kept for _, kept in picks)})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=("tiny", "cpu"), default="cpu")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--lrs", nargs="+", type=float, default=list(LRS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", default=None)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    scale = sq.SCALES[args.scale]
    size, s, lengths = scale["size"], scale["iac"], LENGTHS[args.scale]
    work = Path(args.work or sq.ROOT / "work" / f"iac_stage3-{args.scale}")
    work.mkdir(parents=True, exist_ok=True)
    units = sq.Units(work / "units.json")
    units.put("steps", s["steps"])
    data = sq.prepare_data(work, {**scale, "data": {"synth-membranes": scale["data"]["synth-membranes"]}})
    data = data["synth-membranes"]
    start = time.perf_counter()

    def write() -> None:
        report = {"benchmark": "iac_stage3", "scale": args.scale, "image_size": size, "data": "synth-membranes",
                  "budget": sq._jsonable(s), "lrs": args.lrs, "lengths": list(lengths), "seeds": args.seeds,
                  "protocol": "per seed: stages I-II of the CPU-scale search; stage III once per lr (Adam, constant, "
                              "Dice, frozen base; no augmentation as the paper, and flips at two lrs); length L = "
                              "the val-best of the first L epochs (or the base if "
                              "better on val); test IoU of that choice",
                  "rows": summarise(units, args.seeds, args.lrs, lengths),
                  "test_images": len(open_folder(data).splits["test"]),
                  "minutes_this_run": round((time.perf_counter() - start) / 60, 1),
                  "device": args.device, "threads": args.threads, "library_versions": library_versions()}  # fmt: skip
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(Path(args.out), (json.dumps(report, indent=1) + "\n").encode())

    for seed in args.seeds:
        pick = units.once(f"s{seed}/search", lambda seed=seed: search_cell(seed, data, work, s, size, args.device))
        for lr, flip in arms(args.lrs):
            folder = work / "stage3" / arm_key(seed, lr, flip).replace("/", "-")
            units.once(
                arm_key(seed, lr, flip),
                lambda seed=seed, lr=lr, p=pick, f=flip, w=folder: stage_three(
                    seed, lr, max(lengths), p, data, s, size, args.device, w, f
                ),
            )
            write()
    write()
    for row in json.loads(Path(args.out).read_text())["rows"]:
        arm = f"lr {row['lr']:g}{' +flips' if row['flips'] else ''}"
        print(
            f"{arm} x {row['epochs']:3d} epochs: test {row['test_iou_mean']:.4f} "
            f"+- {row['test_iou_std']:.4f}, gain {row['gain_over_base_mean']:+.4f} (min "
            f"{row['gain_over_base_min']:+.4f}), implant chosen {row['implant_chosen']}/{row['seeds']}"
        )


if __name__ == "__main__":
    main()
