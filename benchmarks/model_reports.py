"""Params, MACs, peak activation memory and CPU latency of every registered model.

Writes ``benchmarks/results/model_reports.json``. MACs follow DESIGN.md's convention (conv,
transposed conv, linear and matmul multiply-accumulates counted exactly; FLOPs = 2 x MACs;
elementwise work in its own column). Latency: median wall time of ``--repeats`` no-grad forward
passes at batch 1 after ``--warmup`` passes, with ``torch.set_num_threads(--threads)``.

    python benchmarks/model_reports.py [--models 'smp-*'] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from nasseg import zoo
from nasseg.zoo.profiling import CONVENTION

RESULTS = Path(__file__).parent / "results" / "model_reports.json"


def measure(name: str, repeats: int, warmup: int) -> dict:
    model = zoo.create_model(name).eval()
    task = model.genotype.task
    shape = (1, task.in_channels, *task.input_size)
    report = zoo.profile(model, shape)
    x = torch.randn(shape)
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            start = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return {
        "model": name,
        "arch_hash": model.genotype.arch_hash,
        "input": list(shape),
        "params_total": report.params_total,
        "params_without_auxiliary": report.params_total - report.params_auxiliary,
        "macs": report.macs,
        "gmacs": round(report.macs / 1e9, 4),
        "flops": report.flops,
        "elementwise_ops": report.elementwise_ops,
        "peak_activation_mib": round(report.peak_activation_bytes / 2**20, 2),
        "param_mib": round(report.param_bytes / 2**20, 2),
        "cpu_latency_ms_median": round(1000 * statistics.median(times), 2),
        "cpu_latency_ms_min": round(1000 * min(times), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="*")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in zoo.list_models(args.models):
        rows.append(measure(name, args.repeats, args.warmup))
        row = rows[-1]
        print(
            f"{name:28s} params {row['params_total']:>11,}  GMACs {row['gmacs']:>8.3f}  "
            f"peak {row['peak_activation_mib']:>8.2f} MiB  cpu {row['cpu_latency_ms_median']:>8.1f} ms",
            flush=True,
        )
    result = {
        "convention": CONVENTION,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "threads": args.threads,
            "torch": torch.__version__,
        },
        "models": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
