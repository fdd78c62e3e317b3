"""U-Net GA benchmark (seed 002) -> ``benchmarks/results/unet_ga.json``.

1. GA against random sampling from the same space at the same number of evaluations on
   ``synth-defects`` (a few seeds): best and mean fitness of the final population (random
   search's "population" = its K best candidates; the mean of all its candidates is given too).
2. gamma sweep: MACs, parameters and quality of the best individual (like the paper's Table 1;
   quality = validation IoU / Dice after retraining the best at a higher fidelity).
3. Evaluations per minute, in-process against Ray with 2 workers, on the same search.

The default scale is small (widths S1 = {8, 16, 32, 64}, 32-px images, L = 5, tiny K and T, a
few optimiser steps per candidate) so that it finishes in about 15 minutes on a shared 2-core
CPU; the JSON records the scale. Usage: ``python benchmarks/unet_ga.py [--seeds 0 1] [-K 6] [-T 4]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from nasseg.searchers import Fidelity, SegmentationEvaluator
from nasseg.searchers.base import Proposal
from nasseg.searchers.configs import UNetGAConfig, make_searcher
from nasseg.searchers.unet_ga import UNetGAStrategy
from nasseg.zoo.data.synthetic import make_dataset
from nasseg.zoo.versions import library_versions

RESULTS = Path(__file__).parent / "results" / "unet_ga.json"
_DONE: dict[tuple[int, float], tuple[UNetGAStrategy, Any]] = {}  # GA runs already made, by (seed, gamma)


def ga_config(args: argparse.Namespace, data: Path, seed: int, gamma: float, **settings: Any) -> UNetGAConfig:
    """The GA (or, with ``random_search=True``, its random counterpart) at this benchmark's settings:
    the paper's loss fitness, 20 steps per candidate at least."""
    return UNetGAConfig(data=data, seed=seed, image_size=args.size, widths=tuple(args.widths), layers=args.layers,
                        dropout=args.dropout, epochs=1, batch_size=args.batch_size, max_images=args.max_images,
                        max_val_images=args.max_val_images, max_steps=args.max_steps, min_steps=20,
                        population=args.population, gamma=gamma, flops_size=args.flops_size, fitness="loss",
                        **settings)  # fmt: skip


def run_ga(args: argparse.Namespace, data: Path, out: Path, seed: int, gamma: float, workers: int = 1,
           generations: int | None = None) -> tuple[UNetGAStrategy, Any]:  # fmt: skip
    generations = args.generations if generations is None else generations
    searcher = make_searcher(ga_config(args, data, seed, gamma, generations=generations, workers=workers), out)
    return searcher.strategy, searcher.run()


def run_random(args: argparse.Namespace, data: Path, out: Path, seed: int, gamma: float, total: int) -> Any:
    config = ga_config(args, data, seed, gamma, generations=args.generations, random_search=True, evaluations=total,
                       workers=1)  # fmt: skip
    return make_searcher(config, out).run()


def _stats(values: list[float]) -> dict[str, float]:
    return {"best": max(values), "mean": statistics.fmean(values)}


def ga_vs_random(args: argparse.Namespace, data: Path, work: Path) -> dict[str, Any]:
    rows = []
    for seed in args.seeds:
        strategy, ga = run_ga(args, data, work / f"ga-{seed}", seed, args.gamma)
        _DONE[(seed, args.gamma)] = (strategy, ga)
        evaluations = len(ga.history)
        rnd = run_random(args, data, work / f"random-{seed}", seed, args.gamma, evaluations)
        ga_population = [m["fitness"] for m in strategy.final_population()]
        random_fitness = sorted((r.fitness for r in rnd.history if r.ok), reverse=True)
        rows.append({"seed": seed, "evaluations": evaluations, "random_evaluations": len(rnd.history),
                     "ga_final_population": _stats(ga_population),
                     "random_top_k": _stats(random_fitness[: args.population]),
                     "random_all_mean": statistics.fmean(random_fitness),
                     "ga_best_genotype": {"channels": ga.best.genotype.arch.channels,
                                          "skips": ga.best.genotype.arch.skips},
                     "random_best_genotype": {"channels": rnd.best.genotype.arch.channels,
                                              "skips": rnd.best.genotype.arch.skips},
                     "ga_seconds": round(ga.seconds, 1), "random_seconds": round(rnd.seconds, 1)})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)

    def mean(path: tuple[str, str]) -> float:
        return statistics.fmean(row[path[0]][path[1]] for row in rows)

    summary = {"ga_best": mean(("ga_final_population", "best")), "ga_mean": mean(("ga_final_population", "mean")),
               "random_best": mean(("random_top_k", "best")), "random_top_k_mean": mean(("random_top_k", "mean")),
               "random_all_mean": statistics.fmean(row["random_all_mean"] for row in rows)}  # fmt: skip
    return {"gamma": args.gamma, "per_seed": rows, "mean_over_seeds": summary}


def gamma_sweep(args: argparse.Namespace, data: Path, work: Path) -> list[dict[str, Any]]:
    rows = []
    retrain = Fidelity(epochs=args.retrain_epochs, image_size=(args.size, args.size), batch_size=args.batch_size)
    final = SegmentationEvaluator(data, retrain)  # all training and validation images
    for gamma in args.gammas:
        done = _DONE.get((args.seeds[0], gamma))  # the comparison's run at this gamma is reused
        strategy, ga = done or run_ga(args, data, work / f"gamma-{gamma}", args.seeds[0], gamma)
        best = ga.best
        retrained = final.evaluate(Proposal("final", best.genotype), seed=0, workdir=work / f"gamma-{gamma}-final")
        rows.append({"gamma": gamma, "channels": best.genotype.arch.channels, "skips": best.genotype.arch.skips,
                     "macs_search_size": best.macs, "gflops_at_flops_size": strategy.scorer.flops(best),
                     "params": best.params, "fitness": best.fitness, "search_loss": best.metrics["loss"],
                     "search_iou": best.metrics["iou"], "retrained_iou": retrained.metrics["iou"],
                     "retrained_dice": retrained.metrics["dice"],
                     "retrained_loss": retrained.metrics["loss"]})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return rows


def throughput(args: argparse.Namespace, data: Path, work: Path) -> dict[str, Any]:
    rows = {}
    for name, workers in (("in_process", 1), ("ray_2_workers", 2)):
        start = time.perf_counter()
        _, result = run_ga(
            args,
            data,
            work / f"speed-{name}",
            args.seeds[0],
            args.gamma,
            workers=workers,
            generations=args.speed_generations,
        )
        wall = time.perf_counter() - start
        rows[name] = {"evaluations": len(result.history), "search_seconds": round(result.seconds, 1),
                      "wall_seconds_with_startup": round(wall, 1),
                      "evaluations_per_minute": round(60 * len(result.history) / result.seconds, 2),
                      "best_arch": {"channels": result.best.genotype.arch.channels,
                                    "skips": result.best.genotype.arch.skips}}  # fmt: skip
        print(name, json.dumps(rows[name]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("-K", "--population", type=int, default=5)
    parser.add_argument("-T", "--generations", type=int, default=3)
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--n-images", type=int, default=40)
    parser.add_argument("--max-images", type=int, default=16)
    parser.add_argument("--max-val-images", type=int, default=5)
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--gamma", type=float, default=0.01)
    parser.add_argument("--gammas", type=float, nargs="+", default=[0.1, 0.01, 0.001])
    parser.add_argument("--flops-size", type=int, default=256, help="FLOPs p(q) counted for an image of this side.")
    parser.add_argument("--retrain-epochs", type=int, default=4)
    parser.add_argument("--speed-generations", type=int, default=1, help="T of the throughput search.")
    parser.add_argument("--skip", nargs="*", default=[], choices=["compare", "gamma", "throughput"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    start = time.perf_counter()
    report: dict[str, Any] = {
        "benchmark": "unet_ga",
        "scale": {"note": "small scale for a shared 2-core CPU (~15 min); the paper: S1 = {64..512}, L = 8, "
                          "256 px, K = 32, T = 100, full mini-epochs",
                  "task": "segmentation (L_gen = bce_dice loss on the mini-validation set)",
                  "widths": args.widths, "layers": args.layers, "image_size": args.size, "n_images": args.n_images,
                  "population_K": args.population, "generations_T": args.generations, "seeds": args.seeds,
                  "throughput_generations_T": args.speed_generations,
                  "fidelity": {"epochs": 1, "max_steps_per_epoch": args.max_steps, "batch_size": args.batch_size,
                               "max_images": args.max_images, "max_val_images": args.max_val_images},
                  "dropout": args.dropout,
                  "fitness": "1 / (L_gen + gamma * p), p in GFLOPs (2 x MACs) of one image of flops_size px",
                  "flops_size": args.flops_size, "retrain_epochs_for_quality": args.retrain_epochs},
        "library_versions": library_versions(),
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = make_dataset("synth-defects", work / "data", n=args.n_images, size=args.size, seed=0)
        if "compare" not in args.skip:
            report["ga_vs_random"] = ga_vs_random(args, data, work)
        if "gamma" not in args.skip:
            report["gamma_sweep"] = gamma_sweep(args, data, work)
        if "throughput" not in args.skip:
            report["throughput"] = throughput(args, data, work)
    report["seconds"] = round(time.perf_counter() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out} in {report['seconds']} s")


if __name__ == "__main__":
    main()
