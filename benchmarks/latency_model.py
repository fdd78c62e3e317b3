"""Is the latency table a good model of the machine? -> ``results/latency_model.json``.

1. ``nasseg latency table`` as a user runs it (the five spaces, ``--samples`` random nets each,
   seed 0, calibrated on the first 3 of each), at 256 x 256, fp32, 2 threads.
2. ``--nets`` further random architectures of each space (seed 1: not the ones the table traced),
   and the shipped zoo entries: each is predicted from the table and measured as a whole (the raw
   ONNX graph exported by ``nasseg export``, the table's timing on ONNX Runtime, same threads).
3. Per space and over all nets: Spearman and Kendall rank correlations, the mean relative error
   ``|pred - meas| / meas``, and how many units were looked up rather than estimated.

Resumable: every measured net lands in ``WORK/measured.json``; the table is kept in ``WORK``.
Timing wants quiet cores: pause other jobs while it runs (about 15 minutes here).

    python benchmarks/latency_model.py [--nets 12] [--samples 12] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from nasseg import zoo
from nasseg.searchers.space_samples import SPACES, sample_genotypes, space_unit_calls
from nasseg.serving.latency_table import build_table, calibrate, measure_genotype_ms
from nasseg.zoo.io import atomic_write_text
from nasseg.zoo.latency import LatencyTable
from nasseg.zoo.versions import library_versions

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "latency_model.json"
SIZE = (256, 256)
ZOO = (
    "unet-small-synth-defects",
    "ga-unet-synth-defects",
    "renas-synth-defects",
    "asdet-synth-defects",
    "iac-unet-small-synth-defects",
    "autosegnet-synth-defects",
    "smp-unet-resnet18",
    "nas-asdet-darts-v2",
)


def _ranks(values: list[float]) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    return ranks


def spearman(a: list[float], b: list[float]) -> float:
    return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1]) if len(a) > 2 else float("nan")


def kendall(a: list[float], b: list[float]) -> float:
    pairs = [(i, j) for i in range(len(a)) for j in range(i + 1, len(a))]
    score = sum(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) for i, j in pairs)
    return float(score / len(pairs)) if pairs else float("nan")


def agreement(rows: list[dict[str, Any]]) -> dict[str, Any]:
    pred, meas = [r["predicted_ms"] for r in rows], [r["measured_ms"] for r in rows]
    errors = [abs(p - m) / m for p, m in zip(pred, meas, strict=True)]
    return {
        "nets": len(rows),
        "spearman": spearman(pred, meas),
        "kendall": kendall(pred, meas),
        "mean_relative_error": statistics.fmean(errors),
        "median_relative_error": statistics.median(errors),
        "measured_ms_range": [min(meas), max(meas)],
        "units_estimated_share": sum(r["estimated"] for r in rows) / max(sum(r["units"] for r in rows), 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", type=int, default=12, help="validation nets per space")
    parser.add_argument("--samples", type=int, default=12, help="nets per space the table traces")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--spaces", nargs="+", default=list(SPACES), choices=SPACES)
    parser.add_argument("--no-zoo", action="store_true", help="leave the shipped entries out")
    parser.add_argument("--work", default=str(ROOT / "work" / "latency_model"))
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--quick", action="store_true", help="3 nets per space, 3 traced (a smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.nets = args.samples = 3
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    table_path = work / f"table-{args.samples}.json"
    start = time.perf_counter()
    if not table_path.is_file():
        calls = space_unit_calls(args.spaces, args.samples, SIZE, [], seed=0)
        table_data = build_table(calls, threads=args.threads, size=SIZE,
                                 sources={"spaces": args.spaces, "samples": args.samples, "seed": 0})  # fmt: skip
        nets = [g for space in args.spaces for g in sample_genotypes(space, args.samples, SIZE, seed=0)[:3]]
        table_data["calibration"] = calibrate(table_data, nets, SIZE)  # as `nasseg latency table` does
        atomic_write_text(table_path, json.dumps(table_data, indent=1, sort_keys=True) + "\n")
    table = LatencyTable.load(table_path)
    measured_path = work / "measured.json"
    measured: dict[str, Any] = json.loads(measured_path.read_text()) if measured_path.is_file() else {}
    nets = [(space, f"{space}/{i}", g) for space in args.spaces
            for i, g in enumerate(sample_genotypes(space, args.nets, SIZE, seed=1))]  # fmt: skip
    if not args.no_zoo:
        nets += [("zoo", f"zoo/{name}", zoo.resolve_genotype(name)) for name in ZOO]
    rows: dict[str, list[dict[str, Any]]] = {}
    for space, key, genotype in nets:
        if key not in measured or measured[key].get("arch_hash") != genotype.arch_hash:
            prediction = table.predict(genotype, SIZE)
            ms = measure_genotype_ms(genotype, SIZE, args.threads)
            measured[key] = {"arch_hash": genotype.arch_hash, "measured_ms": ms, **prediction.to_dict()}
            atomic_write_text(measured_path, json.dumps(measured, indent=1))
            print(f"{key}: predicted {prediction.predicted_ms:.2f} ms, measured {ms:.2f} ms", file=sys.stderr)
        rows.setdefault(space, []).append(measured[key])
    spaces_only = [r for space, rs in rows.items() if space != "zoo" for r in rs]
    report = {
        "benchmark": "latency_model", "size": list(SIZE), "runtime": table.runtime, "threads": args.threads,
        "machine": table.data.get("machine"), "calibration": table.calibration,
        "table": {"units": len(table.units), "seconds": table.data["seconds"],
                                                         "samples_per_space": args.samples,
                                                         "call_overhead_ms": table.overhead_ms},
        "protocol": "table from seed-0 samples of each space; validation nets are seed-1 samples and the zoo "
                    "entries; measured = the exported raw ONNX graph of the whole net, p50 of 20 runs, same threads",
        "per_space": {space: agreement(rs) for space, rs in rows.items()},
        "all_space_nets": agreement(spaces_only) if spaces_only else None,
        "nets": {key: measured[key] for _, key, _ in nets},
        "minutes_this_run": round((time.perf_counter() - start) / 60, 1), "library_versions": library_versions(),
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.out), json.dumps(report, indent=1) + "\n")
    for space, row in report["per_space"].items():
        print(
            f"{space:12s} n={row['nets']:3d} spearman {row['spearman']:+.3f} kendall {row['kendall']:+.3f} "
            f"mean rel. error {row['mean_relative_error']:.3f} (estimated units {row['units_estimated_share']:.2f})"
        )


if __name__ == "__main__":
    main()
