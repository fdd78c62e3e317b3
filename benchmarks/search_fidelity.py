"""What budget per candidate does a search need before its fitness ranks nets as training does?
-> ``results/search_fidelity.json``.

Issue 14 asks, for each searcher that did not beat random sampling, what scale the measurements say
it needs. A search can only beat random sampling if its fitness ranks candidates the way the final
training ranks them, and only by as much as the architectures of its space differ once trained.
Both are measured here, on the spaces and data of ``search_quality.py``'s CPU scale:

- ``--archs`` random architectures of each space (the U-Net GA's, RENAS' cells, NAS-ASDet's cells)
  are each trained from scratch by search quality's one recipe (Adam 3e-3, 16 x 25 steps, batch 8,
  64 px) with ``--seeds`` seeds, recording the validation IoU after every epoch;
- **truth**: an architecture's test IoU at its val-chosen epoch, averaged over seeds;
- **fitness at budget b** (b = 25, 50, 100, 200, 400 steps): its validation IoU after b steps, one
  seed, as a search would see it;
- per budget: the Spearman correlation of fitness and truth (mean over seeds), and the ratio of the
  spread between architectures to the spread between seeds of one architecture (below 1: the
  fitness is mostly seed noise);
- the headroom: the best truth minus the mean truth (what picking the best of the sample gains over
  a random pick), against the seed spread.

Resumable (``WORK/units.json``); about 25 minutes on one core.

    python benchmarks/search_fidelity.py [--archs 8] [--seeds 2] [--spaces unet-ga renas nas-asdet]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import search_quality as sq  # noqa: E402

import zoo  # noqa: E402
from searchers.evaluators import search_task  # noqa: E402
from zoo.data.folder import open_folder  # noqa: E402
from zoo.genotype import Genotype  # noqa: E402
from zoo.io import atomic_write_bytes  # noqa: E402
from zoo.training.trainer import Trainer  # noqa: E402
from zoo.versions import library_versions  # noqa: E402

RESULTS = sq.ROOT / "results" / "search_fidelity.json"
SPACES = ("unet-ga", "renas", "nas-asdet")
BUDGET_EPOCHS = (1, 2, 4, 8, 16)


def sample(space: str, count: int, data: Path, s: dict[str, Any], size: int) -> list[Genotype]:
    """``count`` random architectures of ``space`` as search quality's CPU scale builds it."""
    rng = random.Random(f"fidelity:{space}")
    task = search_task(data, (size, size), 3)
    if space == "unet-ga":
        from searchers.unet_ga import UNetSpace

        draw = UNetSpace(widths=s["widths"], layers=s["layers"], task=task).sample
    elif space == "renas":
        from searchers.renas import RenasSpace

        draw = RenasSpace(task, blocks=s["blocks"], cells=2, init_channels=s["filters"], aspp_channels=32).sample
    else:
        from searchers.differentiable import random_cell
        from searchers.nas_asdet import NasAsdetConfig, supernet_genotype
        from zoo.ops import NAS_ASDET_OPS

        config = NasAsdetConfig(image_size=(size, size), init_channels=s["init_channels"])

        def draw(r: random.Random) -> Genotype:
            cells = random_cell(NAS_ASDET_OPS, r, True), random_cell(NAS_ASDET_OPS, r, True)
            return supernet_genotype(task, config, *cells, name="nas-asdet-random")

    return [draw(rng) for _ in range(count)]


def train_curve(genotype: Genotype, data: Path, recipe: sq.Recipe, size: int, seed: int, workdir: Path) -> dict:
    """Val IoU after every epoch of the recipe, and the test IoU at the val-chosen epoch."""
    torch.manual_seed(seed)
    model = zoo.build_model(genotype)
    trainer = Trainer(model, open_folder(data), recipe.config(size, seed, "cpu"), workdir)
    fit = trainer.fit(resume=trainer.checkpoint_path.is_file())
    test = sq.scores(model, data, "test", "cpu")
    return {"val": [r["iou"] for r in fit.history], "test_iou": test["iou"], "best_epoch": fit.best_epoch}


def spearman(a: list[float], b: list[float]) -> float:
    def ranks(values: list[float]) -> list[float]:
        order = sorted(range(len(values)), key=values.__getitem__)
        out = [0.0] * len(values)
        for rank, index in enumerate(order):
            out[index] = float(rank)
        return out

    ra, rb = ranks(a), ranks(b)
    if statistics.pstdev(ra) == 0 or statistics.pstdev(rb) == 0:
        return float("nan")
    return statistics.correlation(ra, rb)


def summarise(curves: list[list[dict]], steps: int) -> dict[str, Any]:
    """``curves[arch][seed]``: per budget the rank correlation with the truth and the spread ratio."""
    truth = [statistics.fmean(run["test_iou"] for run in runs) for runs in curves]
    seed_spread = statistics.fmean(statistics.stdev(run["test_iou"] for run in runs) for runs in curves)
    budgets = []
    for epochs in BUDGET_EPOCHS:
        if any(len(run["val"]) < epochs for runs in curves for run in runs):
            continue
        per_seed = [[runs[s]["val"][epochs - 1] for runs in curves] for s in range(len(curves[0]))]
        between = statistics.fmean(statistics.stdev(values) for values in per_seed)
        within = statistics.fmean(statistics.stdev(runs[s]["val"][epochs - 1] for s in range(len(runs)))
                                  for runs in curves)  # fmt: skip
        budgets.append({"steps": epochs * steps, "spearman_with_truth": statistics.fmean(
            spearman(values, truth) for values in per_seed), "between_arch_std": between, "seed_std": within,
            "spread_ratio": between / within if within > 0 else float("inf")})  # fmt: skip
    return {"archs": len(curves), "seeds": len(curves[0]), "truth_mean": statistics.fmean(truth),
            "truth_best": max(truth), "headroom_best_minus_mean": max(truth) - statistics.fmean(truth),
            "truth_between_arch_std": statistics.stdev(truth), "truth_seed_std": seed_spread,
            "budgets": budgets}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--spaces", nargs="+", choices=SPACES, default=list(SPACES))
    parser.add_argument("--scale", choices=("tiny", "cpu"), default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", default=None)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    scale = sq.SCALES[args.scale]
    size, recipe = scale["size"], scale["recipe"]
    work = Path(args.work or sq.ROOT / "work" / f"search_fidelity-{args.scale}")
    work.mkdir(parents=True, exist_ok=True)
    units = sq.Units(work / "units.json")
    data = sq.prepare_data(work, {**scale, "data": {"synth-defects": scale["data"]["synth-defects"]}})["synth-defects"]
    start = time.perf_counter()
    report: dict[str, Any] = {"benchmark": "search_fidelity", "scale": args.scale, "data": "synth-defects",
                              "image_size": size, "recipe": sq._jsonable(vars(recipe)), "spaces": {},
                              "search_budgets_steps": {"unet-ga": scale["unet-ga"]["steps"],
                                                       "renas": scale["renas"]["steps"]},
                              "library_versions": library_versions()}  # fmt: skip
    for space in args.spaces:
        curves = []
        for index, genotype in enumerate(sample(space, args.archs, data, scale[space], size)):
            folder = work / "train" / f"{space}-a{index}"
            runs = [
                units.once(
                    f"{space}/a{index}/s{seed}",
                    lambda g=genotype, seed=seed, f=folder: train_curve(
                        g, data, recipe, size, seed, f.with_name(f"{f.name}-s{seed}")
                    ),
                )
                for seed in range(args.seeds)
            ]
            curves.append(runs)
        report["spaces"][space] = summarise(curves, recipe.steps)
        report["minutes_this_run"] = round((time.perf_counter() - start) / 60, 1)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(Path(args.out), (json.dumps(report, indent=1) + "\n").encode())
        row = report["spaces"][space]
        print(f"{space}: headroom {row['headroom_best_minus_mean']:.4f} (seed std {row['truth_seed_std']:.4f}); "
              + ", ".join(f"{b['steps']} steps: rho {b['spearman_with_truth']:+.2f} ratio {b['spread_ratio']:.2f}"
                          for b in row["budgets"]))  # fmt: skip


if __name__ == "__main__":
    main()
