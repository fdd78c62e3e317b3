"""RENAS against plain EA against random sampling at the same number of evaluations (seed 001, Fig. 4).

For each mode (``controller`` = RENAS, ``random`` = plain EA, ``sample`` = random sampling) and each
seed, one search on ``synth-defects`` at a small fidelity: a population of P trained from scratch,
then E children (one per step). Recorded per step: the population's mean and best fitness
(validation IoU) against the number of evaluations; plotted (mean over seeds, +-1 std shaded) to
``results/renas.png`` and written to ``results/renas.json``. One more RENAS run per seed with
``--no-inherit`` (children trained from scratch at the initial fidelity instead of inheriting and
fine-tuning for one pass) gives the wall time parameter inheritance saves per child and what it
does to the children's fitness. Optionally (``--final-epochs``) each run's final population is
retrained from scratch, as the paper scores the populations of Fig. 4.

    python benchmarks/renas.py                      # the default scale (about 10-15 min on 2 busy cores)
    python benchmarks/renas.py --seeds 1 --steps 4  # a smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from nasseg.searchers.configs import RenasConfig, make_searcher
from nasseg.searchers.renas.report import plot_population, population_stats
from nasseg.zoo.data.synthetic import make_dataset
from nasseg.zoo.versions import library_versions

RESULTS = Path(__file__).parent / "results"
MODES = ("controller", "random", "sample")


def run_one(
    data: Path, out: Path, args: argparse.Namespace, mode: str, seed: int, inherit: bool = True
) -> dict[str, Any]:
    """One search; its population curve, child timings and (optionally) final retraining scores."""
    config = RenasConfig(data=data, seed=seed, image_size=args.image_size, epochs=args.epochs,
                         batch_size=args.batch_size, max_images=args.max_images, max_val_images=args.max_val_images,
                         max_steps=args.max_steps, min_steps=20, final_epochs=args.final_epochs,
                         final_val_images=args.max_val_images, blocks=5, cells=args.cells, filters=args.filters,
                         aspp_channels=args.aspp_channels, population=args.population, sample=args.sample,
                         steps=args.steps, mutation=mode, inherit=inherit, fitness=args.fitness,
                         entropy_weight=None, workers=1)  # fmt: skip (its rows ran one child at a time)
    searcher = make_searcher(config, out)
    strategy = searcher.strategy
    start = time.perf_counter()
    result = searcher.run()
    children = [r for r in result.history if r.extra.get("kind") == "child" and r.ok]
    finals = [r.fitness for r in result.history if r.extra.get("kind") == "final" and r.ok]
    return {
        "mode": mode, "seed": seed, "inherit": inherit, "seconds": time.perf_counter() - start,
        "curve": strategy.curve, "evaluations": len(result.history),
        "failed": sum(1 for r in result.history if not r.ok),
        "init_seconds": statistics.mean(r.seconds for r in result.history if r.extra.get("kind") == "init"),
        "child_seconds": statistics.mean(r.seconds for r in children) if children else None,
        "child_fitness": statistics.mean(r.fitness for r in children) if children else None,
        "final_population_retrained": {"mean": statistics.mean(finals), "best": max(finals)} if finals else None,
        "controller_log": strategy.controller_log,
    }  # fmt: skip


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per mode: the population curves averaged over seeds and the last point's mean/best +- std."""
    out: dict[str, Any] = {}
    for mode in MODES:
        group = [r for r in runs if r["mode"] == mode and r["inherit"]]
        if not group:
            continue
        stats = population_stats([r["curve"] for r in group])
        finals = [r["final_population_retrained"] for r in group if r["final_population_retrained"]]
        out[mode] = {
            "curve": {k: [round(v, 4) for v in values] for k, values in stats.items()},
            "last_mean": round(stats["mean"][-1], 4), "last_mean_std": round(stats["mean_std"][-1], 4),
            "last_best": round(stats["best"][-1], 4), "last_best_std": round(stats["best_std"][-1], 4),
            "area_mean": round(statistics.mean(stats["mean"]), 4),
            "child_seconds": round(statistics.mean(r["child_seconds"] for r in group), 2),
            "search_seconds": round(statistics.mean(r["seconds"] for r in group), 1),
            "final_retrained_mean": round(statistics.mean(f["mean"] for f in finals), 4) if finals else None,
            "final_retrained_best": round(statistics.mean(f["best"] for f in finals), 4) if finals else None,
        }  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--population", type=int, default=6)
    parser.add_argument("--sample", type=int, default=2)
    parser.add_argument("--steps", type=int, default=12, help="evolution steps (children) per run")
    parser.add_argument("--images", type=int, default=48, help="synth-defects images generated")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2, help="from-scratch epochs (initial population, sampling)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-images", type=int, default=16)
    parser.add_argument("--max-val-images", type=int, default=6)
    parser.add_argument("--max-steps", type=int, default=4)
    parser.add_argument("--filters", type=int, default=8)
    parser.add_argument("--cells", type=int, default=1)
    parser.add_argument("--aspp-channels", type=int, default=32)
    parser.add_argument("--fitness", default="soft_dice", help="validation metric (iou is 0 at this fidelity)")
    parser.add_argument("--final-epochs", type=int, default=0, help="retrain each final population (0: skip)")
    parser.add_argument("--scratch-seeds", type=int, default=1, help="seeds of the no-inheritance comparison")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "renas.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "synth-defects"
        make_dataset("synth-defects", data, n=args.images, size=args.image_size, seed=0)
        runs = []
        for seed in range(args.seeds):
            for mode in MODES:
                runs.append(run_one(data, Path(tmp) / f"{mode}-{seed}", args, mode, seed))
                print(f"{mode:10s} seed {seed}: last mean {runs[-1]['curve'][-1]['mean']:.4f} best "
                      f"{runs[-1]['curve'][-1]['best']:.4f} ({runs[-1]['seconds']:.0f} s)", flush=True)  # fmt: skip
        scratch = [run_one(data, Path(tmp) / f"scratch-{s}", args, "controller", s, inherit=False)
                   for s in range(args.scratch_seeds)]  # fmt: skip
    renas = [r for r in runs if r["mode"] == "controller"]
    pairs = [(r, next(x for x in renas if x["seed"] == r["seed"])) for r in scratch]
    inheritance = {
        "child_seconds_inherit": round(statistics.mean(b["child_seconds"] for _, b in pairs), 2),
        "child_seconds_scratch": round(statistics.mean(a["child_seconds"] for a, _ in pairs), 2),
        "child_fitness_inherit": round(statistics.mean(b["child_fitness"] for _, b in pairs), 4),
        "child_fitness_scratch": round(statistics.mean(a["child_fitness"] for a, _ in pairs), 4),
        "search_seconds_inherit": round(statistics.mean(b["seconds"] for _, b in pairs), 1),
        "search_seconds_scratch": round(statistics.mean(a["seconds"] for a, _ in pairs), 1),
        "seeds": len(pairs),
    }  # fmt: skip
    inheritance["child_time_saved"] = round(
        1 - inheritance["child_seconds_inherit"] / inheritance["child_seconds_scratch"], 3
    )
    summary = summarise(runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot = args.out.with_suffix(".png")
    plot_population({m: [r["curve"] for r in runs if r["mode"] == m] for m in MODES}, plot, args.fitness,
                    title=f"RENAS vs EA vs random, synth-defects, {args.seeds} seeds")  # fmt: skip
    scale = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    report = {
        "benchmark": "renas", "dataset": f"synth-defects (generated: n={args.images}, {args.image_size} px, seed 0)",
        "scale": scale, "fitness": f"validation {args.fitness} of the population (P individuals) after each step",
        "evaluations_per_run": 1 * args.population + args.steps, "summary": summary, "inheritance": inheritance,
        "runs": runs + scratch, "plot": plot.name, "seconds": round(time.perf_counter() - start, 1),
        "library_versions": library_versions(), "torch_threads": args.threads,
    }  # fmt: skip
    args.out.write_text(json.dumps(report, indent=1, default=float) + "\n")
    print(json.dumps({"summary": {m: {k: v for k, v in s.items() if k != "curve"} for m, s in summary.items()},
                      "inheritance": inheritance, "seconds": report["seconds"]}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
