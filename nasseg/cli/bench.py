"""``nasseg bench``: latency of a zoo net on ONNX Runtime (fp32, int8) and PyTorch eager."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from nasseg.cli import app, console, err_console
from nasseg.serving.bench import RUNTIMES, BenchError, bench_model, parse_list, parse_threads
from nasseg.zoo.io import atomic_write_text
from nasseg.zoo.sizing import parse_size

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
    runtimes: Annotated[
        str,
        typer.Option(help="Comma-separated subset of " + _DEFAULT_RUNTIMES + "; with --data: all, or of "
                     "onnx-fp32, onnx-int8, openvino-f32, openvino-bf16, openvino-int8, torch, torch-compile."),
    ] = _DEFAULT_RUNTIMES,
    data: Annotated[
        Path | None,
        typer.Option(help="Dataset folder: one table per runtime with IoU/Dice on its test split (deploy graphs)."),
    ] = None,
    busy_core: Annotated[
        bool, typer.Option("--busy-core", help="With --data: time with a CPU-bound process on one core beside.")
    ] = False,
    pick_tolerance: Annotated[
        float | None,
        typer.Option("--pick", min=0, help="With --data: name the fastest runtime within this IoU of torch's."),
    ] = None,
    repeats: Annotated[int, typer.Option(help="Timed runs at batch 1.")] = 30,
    warmup: Annotated[int, typer.Option(help="Untimed runs first.")] = 3,
    batch: Annotated[int, typer.Option("--batch", help="Batch of the throughput runs.")] = 8,
    calib: Annotated[Path | None, typer.Option(help="Calibration folder for int8 (default: bundled set).")] = None,
    weights: Annotated[str, typer.Option(help="auto (trained where available), trained or random.")] = "auto",
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    json_out: Annotated[Path | None, typer.Option("--json-out", help="Write the results as JSON here.")] = None,
    work_dir: Annotated[Path | None, typer.Option(help="Keep the ONNX files here.")] = None,
) -> None:
    """Latency p50/p90/p99 at batch 1, throughput, GFLOP/s: ONNX Runtime fp32/int8 vs PyTorch eager; with
    --data, one table across every runtime with IoU on the test split."""
    if data is not None:
        runtime_table_command(name, data, runtimes, size, threads, repeats, calib, busy_core, pick_tolerance,
                              json_out)  # fmt: skip
        return
    if busy_core or pick_tolerance is not None:
        raise BenchError("--busy-core and --pick make the runtime table: pass --data DIR")
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


def runtime_table_command(name: str, data: Path, runtimes: str, size: list[str] | None, threads: str, repeats: int,
                          calib: Path | None, busy: bool, tolerance: float | None,
                          json_out: Path | None) -> None:  # fmt: skip
    """``nasseg bench NAME --data DIR``: the runtime table of :mod:`serving.runtime_table`."""
    from nasseg.serving.runtime_table import RUNTIME_CHOICES, parse_runtimes, pick, runtime_table

    chosen = parse_runtimes("all" if runtimes == _DEFAULT_RUNTIMES else runtimes)
    counts = parse_threads(threads)
    frame = parse_size((size or ["256x256"])[0])
    with err_console.status(f"runtime table of {name} on {', '.join(chosen)} ...", spinner="dots"):
        result = runtime_table(name, data, chosen, threads=max(counts), size=frame, repeats=repeats, busy=busy,
                               calib_dir=calib or data)  # fmt: skip
    table = Table(title=f"{result['model']} on {result['test_images']} test images of {data}; {frame[0]}x{frame[1]}, "
                        f"{result['threads']} threads, {result['condition']}")  # fmt: skip
    for column in ("runtime", "status", "MB", "p50 ms", "p99 ms", "img/s @8", "IoU", "Dice", "dIoU", "agree"):
        table.add_column(column, justify="left" if column in ("runtime", "status") else "right")
    for row in result["rows"]:
        if row["status"] != "ok":
            table.add_row(row["runtime"], row["status"][:60], *[""] * 8)
            continue
        table.add_row(row["runtime"], "ok", f"{row['size_mb']:.2f}" if row["size_mb"] else "-", f"{row['p50_ms']:.2f}",
                      f"{row['p99_ms']:.2f}", f"{row['images_per_s']:.1f}", f"{row['iou']:.4f}", f"{row['dice']:.4f}",
                      f"{row['iou_change']:+.4f}", f"{row['mask_agreement']:.2%}")  # fmt: skip
    console.print(table)
    flags = ", ".join(k for k, v in result["cpu_flags"].items() if v) or "none of AVX2/AVX-512/VNNI/BF16/AMX"
    console.print(f"IoU change and agreement against {result['reference']} (PyTorch fp32); CPU: {flags}. "
                  f"Runtimes: {', '.join(RUNTIME_CHOICES)}.", highlight=False)  # fmt: skip
    if tolerance is not None:
        best = pick(result, tolerance)
        result["pick"] = {"tolerance": tolerance, "runtime": best["runtime"] if best else None}
        console.print(f"pick (IoU within {tolerance} of torch): " + (f"{best['runtime']} at {best['p50_ms']:.2f} ms"
                      if best else "none"), highlight=False)  # fmt: skip
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(result, indent=2) + "\n")
        console.print(f"wrote {json_out}", highlight=False)
