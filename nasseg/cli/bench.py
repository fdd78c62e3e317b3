"""``nasseg bench``: latency of a zoo net on ONNX Runtime (fp32, int8) and PyTorch eager."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from nasseg.cli import app, console, err_console
from serving.bench import RUNTIMES, bench_model, parse_list, parse_size, parse_threads
from zoo.io import atomic_write_text

_DEFAULT_RUNTIMES = ",".join(RUNTIMES)


def results_table(result: dict[str, Any]) -> Table:
    """One line per runtime, thread count and size."""
    table = Table(title=f"{result['model']} (arch {result['arch_hash']}, {result['weights']}, {result['device']})")
    for column in ("runtime", "threads", "size", "p50 ms", "p90 ms", "p99 ms", "img/s", "GFLOP/s", "of matmul",
                   "vs torch", "int8/fp32"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("runtime", "size") else "right")
    ratio = lambda row, key: f"{row[key]:.2f}" if key in row else ""  # noqa: E731
    for row in result["rows"]:
        b1, tp = row["batch1"], row["throughput"]
        table.add_row(row["runtime"], str(row["threads"]), f"{row['height']}x{row['width']}", f"{b1['p50_ms']:.2f}",
                      f"{b1['p90_ms']:.2f}", f"{b1['p99_ms']:.2f}", f"{tp['images_per_s']:.1f} @{tp['batch']}",
                      f"{row['gflops_per_s']:.1f}", ratio(row, "matmul_fraction"), ratio(row, "vs_torch_p50"),
                      ratio(row, "int8_over_fp32_p50"))  # fmt: skip
    return table


@app.command("bench")
def bench_command(
    name: Annotated[str, typer.Argument(help="Registered model name or genotype .json.")],
    size: Annotated[list[str] | None, typer.Option("--size", help="HEIGHTxWIDTH; repeat for several.")] = None,
    threads: Annotated[str, typer.Option(help="Thread counts, comma-separated.")] = "1,2",
    runtimes: Annotated[str, typer.Option(help="Comma-separated subset of " + _DEFAULT_RUNTIMES + ".")] = (
        _DEFAULT_RUNTIMES
    ),
    repeats: Annotated[int, typer.Option(help="Timed runs at batch 1.")] = 30,
    warmup: Annotated[int, typer.Option(help="Untimed runs first.")] = 3,
    batch: Annotated[int, typer.Option("--batch", help="Batch of the throughput runs.")] = 8,
    calib: Annotated[Path | None, typer.Option(help="Calibration folder for int8 (default: bundled set).")] = None,
    weights: Annotated[str, typer.Option(help="auto (trained where available), trained or random.")] = "auto",
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    json_out: Annotated[Path | None, typer.Option("--json-out", help="Write the results as JSON here.")] = None,
    work_dir: Annotated[Path | None, typer.Option(help="Keep the ONNX files here.")] = None,
) -> None:
    """Latency p50/p90/p99 at batch 1, throughput, GFLOP/s: ONNX Runtime fp32/int8 vs PyTorch eager."""
    sizes = [parse_size(s) for s in size or ["256x256"]]
    thread_counts = parse_threads(threads)
    runtime_list = parse_list(runtimes, "runtimes")
    with err_console.status(f"benchmarking {name} ...", spinner="dots") as status:
        result = bench_model(name, sizes=sizes, threads=thread_counts, runtimes=runtime_list, warmup=warmup,
                             repeats=repeats, throughput_batch=batch, calib_dir=calib, work_dir=work_dir,
                             weights=weights, device=device,
                             progress=lambda message: status.update(f"bench {name}: {message} ..."))  # fmt: skip
    console.print(results_table(result))
    system = result["system"]
    files = ", ".join(f"{key} {value / 2**20:.2f} MiB" for key, value in result["files"].items())
    matmul = ", ".join(f"{key}: {value:.1f}" for key, value in result["matmul_gflops_per_s"].items())
    for line in [f"{system['cpu']}, {system['usable_cores']} usable cores; torch {system['torch']}, onnxruntime "
                 f"{system['onnxruntime']}", f"files: {files or 'none'}; fp32 matmul GFLOP/s by threads: {matmul}; "
                 f"peak RSS {result['peak_rss_mib']:.0f} MiB", *result["notes"]]:  # fmt: skip
        console.print(line, highlight=False)
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(result, indent=2) + "\n")
        console.print(f"wrote {json_out}", highlight=False)
