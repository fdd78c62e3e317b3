"""A tuned U-Net grid: the hardest hand-designed baseline for the searched nets -> ``unet_grid.json``.

Issue 29 (nnU-Net's lesson: a well-configured plain U-Net beats most searched nets). Plain
pix2pix-style U-Nets of the ``unet`` family (all skips, batch norm, no dropout), base width x
depth: widths 4/8/12/16/24/32 at the first level, doubling per level, 3/4/5 levels (``unet-small`` is
``unet-w16-l4``). Each is trained by the zoo recipe (``zoo_entries.zoo_recipe``: Adam 3e-3,
cosine restarts, flips and rotations, 30 x 30 steps of batch 8 at 64 px) on the zoo data (seed 1,
800 images; test split never seen by any search) with ``--seeds`` training seeds, the epoch chosen
on val. Per net: test IoU mean and std over the seeds, MACs at 256x256, and (``--latency``) the ORT
fp32 p50 at batch 1, 256x256, 2 threads (the raw graph on a fixed-shape session, as the
leaderboard measures).

Resumable: every finished training is a unit in ``WORK/units.json``; trainings resume from their
checkpoints; the results file is rewritten after every unit.

    python benchmarks/unet_grid.py [--data synth-defects synth-membranes] [--seeds 0 1]
    python benchmarks/unet_grid.py --latency          # add the latency column (run on quiet cores)
    python benchmarks/unet_grid.py --scale tiny --work /tmp/grid --out /tmp/grid.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import search_quality as sq  # noqa: E402
import zoo_entries as ze  # noqa: E402

from nasseg import zoo  # noqa: E402
from nasseg.searchers.evaluators import search_task  # noqa: E402
from nasseg.zoo.data.folder import open_folder  # noqa: E402
from nasseg.zoo.genotype import Genotype  # noqa: E402
from nasseg.zoo.io import atomic_write_bytes  # noqa: E402
from nasseg.zoo.training.trainer import Trainer  # noqa: E402
from nasseg.zoo.versions import library_versions  # noqa: E402

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "unet_grid.json"
WIDTHS = (4, 8, 12, 16, 24, 32)
LEVELS = (3, 4, 5)
SIZE_256 = (256, 256)


def grid_names(widths: tuple[int, ...] = WIDTHS, levels: tuple[int, ...] = LEVELS) -> list[str]:
    return [f"unet-w{w}-l{depth}" for w in widths for depth in levels]


def grid_genotype(name: str, data: Path, size: int) -> Genotype:
    """The plain U-Net ``unet-wW-lL`` for the task of ``data`` at ``size`` px."""
    width, depth = (int(part[1:]) for part in name.split("-")[1:])
    channels = [width * 2**level for level in range(depth)]
    base = zoo.get_genotype("unet-small")
    arch = {**base.arch.model_dump(mode="json"), "channels": channels, "skips": [True] * (depth - 1), "dropout": 0.0}
    provenance = {**base.provenance.model_dump(mode="json"),
                  "source": f"plain U-Net of the tuned grid (benchmarks/unet_grid.py): widths {channels}"}  # fmt: skip
    return base.replace(name=name, arch=arch, task=search_task(data, (size, size), 3), provenance=provenance)


def train_one(name: str, data: Path, scale: dict[str, Any], seed: int, device: str, workdir: Path) -> dict[str, Any]:
    """One grid net trained by the zoo recipe with ``seed``; val picks the epoch; test scores."""
    size = scale["size"]
    genotype = grid_genotype(name, data, size)
    torch.manual_seed(seed)
    model = zoo.build_model(genotype)
    config = ze.zoo_recipe(scale["epochs"], scale["steps"], size, seed, device)
    trainer = Trainer(model, open_folder(data), config, workdir)
    fit = trainer.fit(resume=trainer.checkpoint_path.is_file())
    test = sq.scores(model, data, "test", device)
    return {"val_iou": float(fit.best_metrics.get("iou", 0.0)), "best_epoch": fit.best_epoch,
            "test_iou": test["iou"], "test_dice": test["dice"], "widths": genotype.arch.channels}  # fmt: skip


def latency_ms(name: str, data: Path, scale: dict[str, Any], work: Path) -> float:
    """ORT fp32 p50 at batch 1, 256x256, 2 threads (random weights: latency does not depend on them)."""
    from nasseg.serving.bench import bench_model

    model = zoo.build_model(grid_genotype(name, data, scale["size"])).eval()
    bench = bench_model(model, sizes=[SIZE_256], threads=(2,), runtimes=("onnx-fp32",), warmup=3, repeats=20,
                        throughput_batch=1, work_dir=work / "latency" / name)  # fmt: skip
    return float(bench["rows"][0]["batch1"]["p50_ms"])


def macs_256(name: str, data: Path, size: int) -> int:
    model = zoo.build_model(grid_genotype(name, data, size))
    return int(zoo.profile(model, input_size=(1, 3, *SIZE_256)).macs)


def summarise(units: sq.Units, names: list[str], data_names: list[str], seeds: list[int]) -> dict[str, Any]:
    rows: dict[str, list[dict[str, Any]]] = {}
    for data_name in data_names:
        rows[data_name] = []
        for name in names:
            runs = [units.get(f"{data_name}/{name}/s{seed}") for seed in seeds]
            runs = [r for r in runs if r]
            if not runs:
                continue
            ious = [r["test_iou"] for r in runs]
            latency = units.get(f"latency/{name}")
            rows[data_name].append({
                "name": name, "widths": runs[0]["widths"], "seeds": len(runs),
                "test_iou_mean": statistics.fmean(ious),
                "test_iou_std": statistics.stdev(ious) if len(ious) > 1 else 0.0,
                "test_iou_per_seed": ious, "val_iou_mean": statistics.fmean(r["val_iou"] for r in runs),
                "macs_256": (units.get(f"macs/{name}") or {}).get("macs"),
                "p50_ms_2t": latency["p50_ms"] if latency else None,
            })  # fmt: skip
    return rows


def write(units: sq.Units, args: argparse.Namespace, scale: dict[str, Any]) -> dict[str, Any]:
    report = {"benchmark": "unet_grid", "scale": args.scale, "seeds": args.seeds,
              "recipe": ze.recipe_record(scale, scale["size"]),
              "latency": "ORT fp32, batch 1, 256x256, 2 threads, p50 of 20 (fixed-shape session)",
              "rows": summarise(units, grid_names(), args.data, args.seeds),
              "device": ze.device_words(args.device, args.threads), "library_versions": library_versions()}  # fmt: skip
    atomic_write_bytes(Path(args.out), (json.dumps(report, indent=1, sort_keys=True) + "\n").encode())
    return report


def run(args: argparse.Namespace) -> dict[str, Any]:
    scale = ze.SCALES[args.scale]
    work = Path(args.work or ROOT / "work" / f"zoo-{args.scale}")
    torch.set_num_threads(args.threads)
    units = sq.Units(work / "unet_grid_units.json")
    data = ze.prepare_zoo_data(work, scale, set(args.data))
    for data_name in args.data:
        folder = data[data_name]
        for name in grid_names():
            units.once(f"macs/{name}", lambda n=name, f=folder: {"macs": macs_256(n, f, scale["size"])})
            for seed in args.seeds:
                workdir = work / "unet_grid" / data_name / f"{name}-s{seed}"
                key = f"{data_name}/{name}/s{seed}"
                units.once(key, lambda n=name, f=folder, s=seed, w=workdir: train_one(n, f, scale, s, args.device, w))
                write(units, args, scale)
    if args.latency:
        torch.set_num_threads(2)
        for name in grid_names():
            units.once(f"latency/{name}", lambda n=name: {"p50_ms": latency_ms(n, data[args.data[0]], scale, work)})
    return write(units, args, scale)


def add_run_options(parser: argparse.ArgumentParser, out: Path) -> None:
    """The options every zoo-data benchmark shares: device, threads, work folder and results file."""
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", default=None, help="work folder (default benchmarks/work/zoo-SCALE)")
    parser.add_argument("--out", default=str(out))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(ze.SCALES), default="cpu")
    parser.add_argument("--data", nargs="+", default=["synth-defects", "synth-membranes"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--latency", action="store_true", help="also time each net (ORT fp32, 2 threads, 256x256)")
    add_run_options(parser, RESULTS)
    args = parser.parse_args(argv)
    report = run(args)
    for data_name, rows in report["rows"].items():
        for row in rows:
            print(f"{data_name} {row['name']}: test IoU {row['test_iou_mean']:.4f} +- {row['test_iou_std']:.4f} "
                  f"({row['seeds']} seeds)  p50 {row['p50_ms_2t']}", file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main()
