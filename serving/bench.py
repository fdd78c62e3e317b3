"""Latency benchmark of a zoo net: ONNX Runtime fp32 and int8 against PyTorch eager.

What is timed, so that like is compared with like: the ``raw`` graph (float NCHW in, logits out,
the net alone) on ONNX Runtime against the same net in PyTorch eager (``torch.inference_mode``) on
the same float input. The deploy graph's extras (uint8 decode, padding, sigmoid, mask) are left
out of both. For each size, thread count and runtime: ``warmup`` untimed runs, then ``repeats``
timed runs at batch 1 (p50 / p90 / p99 / mean) and a few at ``throughput_batch`` (images/s).
Achieved GFLOP/s = 2 x MACs (:mod:`zoo.profiling`'s convention) / p50 at batch 1, set against the
fp32 rate of a 1024 x 1024 ``torch.mm`` measured in the same run at the same thread count.
Threads: ``open_session(threads=...)`` (intra-op; one inter-op thread) and ``torch.set_num_threads``.
Each size and batch is timed on a session opened for that input shape (:meth:`OnnxSession.specialise`),
as ``nasseg serve`` runs a line's frames.
int8 is the graph :func:`serving.quantize.quantize` makes (QDQ, per-channel; only the node groups
measured faster in int8 at the first size, :mod:`serving.int8_select`), calibrated on the
given folder or on the bundled synth-defects set. ``device="cuda"``: the CUDA execution provider
with inputs and outputs bound on the GPU (IO binding), torch on CUDA, both synchronised; int8 is
skipped there (its QDQ kernels are CPU kernels).
"""

from __future__ import annotations

import gc
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from nasseg import zoo
from nasseg.serving.export import RawGraph, export
from nasseg.serving.quantize import int8_path, quantize
from nasseg.serving.runtime import OnnxSession, default_threads, open_session
from nasseg.serving.timing import cpu_model, interleaved_stats, latency_stats
from nasseg.zoo.errors import NassegError
from nasseg.zoo.genotype import Genotype
from nasseg.zoo.profiling import CONVENTION

RUNTIMES = ("onnx-fp32", "onnx-int8", "torch")
DEVICES = ("cpu", "cuda")
WEIGHTS = ("auto", "trained", "random")
MATMUL_N = 1024
BENCH_CALIB_COUNT = 16


class BenchError(NassegError):
    """A benchmark asked for something it cannot do (bad size, thread count, runtime, device)."""


def parse_list(text: str, what: str) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]`` (empty items refused)."""
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise BenchError(f"{what} must be a comma-separated list, got {text!r}")
    return items


def parse_threads(text: str) -> list[int]:
    """``"1,2"`` -> ``[1, 2]``; every count must be an integer >= 1."""
    try:
        threads = [int(item) for item in parse_list(text, "threads")]
    except ValueError:
        raise BenchError(f"threads must be comma-separated integers >= 1, got {text!r}") from None
    _check_threads(threads)
    return threads


def _check_threads(threads: Sequence[int]) -> None:
    if not threads or any(not isinstance(t, int) or t < 1 for t in threads):
        raise BenchError(f"thread counts must be integers >= 1, got {list(threads)}")


def _check_arguments(sizes: Sequence[tuple[int, int]], threads: Sequence[int], runtimes: Sequence[str], warmup: int,
                     repeats: int, throughput_batch: int, weights: str, device: str) -> None:  # fmt: skip
    if not sizes or any(len(s) != 2 or min(s) < 1 for s in sizes):
        raise BenchError(f"sizes must be (height, width) pairs of positive integers, got {list(sizes)}")
    _check_threads(threads)
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if not runtimes or unknown:
        raise BenchError(f"unknown runtime {', '.join(map(repr, unknown)) or '(none given)'}; known: "
                         f"{', '.join(RUNTIMES)}")  # fmt: skip
    if warmup < 0 or repeats < 1 or throughput_batch < 1:
        raise BenchError(f"need warmup >= 0, repeats >= 1 and throughput batch >= 1, got warmup={warmup}, "
                         f"repeats={repeats}, batch={throughput_batch}")  # fmt: skip
    if weights not in WEIGHTS:
        raise BenchError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    if device not in DEVICES:
        raise BenchError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise BenchError("device 'cuda' asked for, but torch sees no CUDA GPU")


def load_model(model: str | Path | Genotype | nn.Module, weights: str = "auto") -> tuple[nn.Module, str]:
    """The net to benchmark and a note on its weights (a module is taken as it is, moved to the CPU;
    ``auto``: the genotype's trained weights where they are found, random ones otherwise)."""
    if isinstance(model, nn.Module):
        if getattr(model, "genotype", None) is None:
            raise BenchError("bench needs a zoo net (a module with .genotype); build it with zoo.create_model")
        return model.cpu(), "weights as given"
    genotype = zoo.resolve_genotype(model)
    trained = weights == "trained"
    if weights == "auto" and genotype.weights is not None:
        try:
            zoo.weights.find_weights(genotype)
            trained = True
        except zoo.WeightsError:
            trained = False
    net = zoo.create_model(genotype, pretrained=trained)
    return net, "trained weights" if trained else "random weights"


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (``getrusage``), MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / 2**20 if sys.platform == "darwin" else peak / 2**10, 1)


def matmul_gflops(threads: int, device: str = "cpu", n: int = MATMUL_N, repeats: int = 10) -> float:
    """fp32 GFLOP/s of an ``n x n`` ``torch.mm`` (2 n^3 FLOPs) at ``threads`` threads, median of ``repeats``."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = (torch.randn(n, n, device=device) for _ in range(2))
        sync = torch.cuda.synchronize if device == "cuda" else None
        stats = latency_stats(lambda: torch.mm(a, b), warmup=3, repeats=repeats, sync=sync)
    finally:
        torch.set_num_threads(previous)
    return round(2 * n**3 / (stats["p50_ms"] / 1e3) / 1e9, 2)


def system_info(device: str = "cpu") -> dict[str, Any]:
    """CPU model, cores, load and library versions (and the GPU on ``cuda``)."""
    info = {"cpu": cpu_model(), "cores": os.cpu_count(), "usable_cores": default_threads(),
            "machine": platform.machine(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "onnxruntime": ort.__version__, "onnx": onnx.__version__,
            "numpy": np.__version__, "nasseg": zoo.__version__, "ort_providers": ort.get_available_providers(),
            "load_average": _load_average()}  # fmt: skip
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages (None where the OS has none)."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def _load_note(result: dict[str, Any]) -> list[str]:
    """A warning sentence when other work shared the CPU during the run."""
    start, end, cores = result["system"]["load_average"], result["load_average_end"], result["system"]["usable_cores"]
    if result["device"] == "cuda" or start is None or end is None or max(start[0], end[0]) <= 0.5 * cores:
        return []
    return [f"The CPU was busy: 1-minute load average {start[0]:.1f} at the start and {end[0]:.1f} at the end on "
            f"{cores} usable cores (this process's own work counts too); where other processes share the CPU, "
            "latencies are noisy, and the runtimes' interleaved rounds keep their ratios fairer than their absolute "
            "figures."]  # fmt: skip


def _onnx_runner(session: OnnxSession, x: torch.Tensor, device: str) -> Callable[[], object]:
    """A call that runs the session on ``x``: numpy in and out on CPU; IO binding on the GPU, so
    neither side pays host-device copies."""
    if device != "cuda":
        feed = {session.input_names[0]: np.ascontiguousarray(x.numpy())}
        return lambda: session.session.run(None, feed)
    binding = session.session.io_binding()
    binding.bind_input(session.input_names[0], "cuda", x.device.index or 0, np.float32, tuple(x.shape), x.data_ptr())
    binding.bind_output(session.output_names[0], "cuda", x.device.index or 0)
    return lambda: session.session.run_with_iobinding(binding)


def _torch_runner(net: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.inference_mode():
            return net(x)

    return run


def _runner(runner: nn.Module | OnnxSession, x: torch.Tensor, device: str) -> Callable[[], object]:
    """A call that runs ``runner`` (a torch net or an ONNX session) on ``x``."""
    return _onnx_runner(runner, x, device) if isinstance(runner, OnnxSession) else _torch_runner(runner, x)


def _ratios(rows: list[dict[str, Any]], matmul: dict[str, float]) -> None:
    """Add ``vs_torch_p50`` (ORT rows), ``int8_over_fp32_p50`` (int8 rows) and ``matmul_fraction``."""
    by_key = {(r["runtime"], r["threads"], r["height"], r["width"]): r for r in rows}
    for row in rows:
        key = (row["threads"], row["height"], row["width"])
        torch_row, fp32_row = by_key.get(("torch", *key)), by_key.get(("onnx-fp32", *key))
        if row["runtime"] != "torch" and torch_row:
            row["vs_torch_p50"] = round(row["batch1"]["p50_ms"] / torch_row["batch1"]["p50_ms"], 4)
        if row["runtime"] == "onnx-int8" and fp32_row:
            row["int8_over_fp32_p50"] = round(row["batch1"]["p50_ms"] / fp32_row["batch1"]["p50_ms"], 4)
        rate = matmul.get(str(row["threads"])) or matmul.get("cuda")
        if rate:
            row["matmul_fraction"] = round(row["gflops_per_s"] / rate, 4)


def _notes(rows: list[dict[str, Any]], device: str) -> list[str]:
    notes = []
    for row in rows:
        where = f"at {row['threads']} thread{'s' * (row['threads'] != 1)}, {row['height']}x{row['width']}"
        if device == "cuda":
            where = f"at {row['height']}x{row['width']} on the GPU"
        if "int8_over_fp32_p50" in row:
            ratio = row["int8_over_fp32_p50"]
            speed = f"{ratio:.2f}x slower" if ratio > 1 else f"{1 / ratio:.2f}x faster"
            notes.append(f"int8 is {speed} than fp32 {where} on this CPU (p50 batch 1).")
        if row["runtime"] == "onnx-fp32" and "vs_torch_p50" in row:
            ratio = row["vs_torch_p50"]
            speed = f"{1 / ratio:.2f}x faster" if ratio < 1 else f"{ratio:.2f}x slower"
            notes.append(f"ONNX Runtime fp32 is {speed} than PyTorch eager {where} (p50 latency ratio {ratio:.2f}).")
    return notes


def bench_model(model: str | Path | Genotype, *, sizes: Sequence[tuple[int, int]] = ((256, 256),),
                threads: Sequence[int] = (1, 2), runtimes: Sequence[str] = ("onnx-fp32", "onnx-int8", "torch"),
                warmup: int = 3, repeats: int = 30, throughput_batch: int = 8, calib_dir: Path | None = None,
                work_dir: Path | None = None, weights: str = "auto", device: str = "cpu",
                progress: Callable[[str], None] | None = None) -> dict:  # fmt: skip
    """Benchmark ``model`` (a name, genotype file or :class:`Genotype`; a built zoo net is taken too,
    moved to the CPU) and return a JSON-ready dict (see the module docstring for what is timed and how). The ONNX files
    go to ``work_dir`` (kept; their paths are in ``"paths"``) or to a temporary folder."""
    sizes = [(int(h), int(w)) for h, w in sizes]
    threads, runtimes = list(threads), list(dict.fromkeys(runtimes))
    _check_arguments(sizes, threads, runtimes, warmup, repeats, throughput_batch, weights, device)
    say = progress or (lambda _message: None)
    start = time.perf_counter()
    net, weights_note = load_model(model, weights)
    genotype, channels = net.genotype, net.genotype.task.in_channels
    for size in sizes:
        zoo.check_input_size(net, size)
    net = net.eval()
    notes = [f"Timed: the raw graph (float NCHW {channels}-channel input, logits out) on ONNX Runtime against "
             "PyTorch eager on the same input; the deploy graph's decode, padding and mask are not timed."]  # fmt: skip
    if device == "cuda":
        notes.append("CUDA: ONNX Runtime's CUDA provider with IO binding (no host copies), torch on CUDA, both "
                     "synchronised; thread counts only set the CPU side, so one is used.")  # fmt: skip
        threads = threads[:1]
    say(f"profiling {genotype.name}")
    macs = {f"{h}x{w}": zoo.profile(net, (1, channels, h, w)).macs for h, w in sizes}
    result: dict[str, Any] = {"model": genotype.name, "arch_hash": genotype.arch_hash, "family": genotype.family,
                              "in_channels": channels, "weights": weights_note, "device": device, "graph": "raw",
                              "macs": macs, "convention": CONVENTION, "warmup": warmup, "repeats": repeats,
                              "system": system_info(device)}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="nasseg-bench-") as tmp:
        folder = Path(work_dir) if work_dir is not None else Path(tmp)
        files: dict[str, Path] = {}
        if any(r.startswith("onnx") for r in runtimes):
            say(f"exporting the raw graph of {genotype.name}")
            exported = export(net, folder / f"{genotype.name}.raw.onnx", graph="raw")
            files["onnx-fp32"] = exported.path
            if not exported.metadata.dynamic_hw and any(s != tuple(genotype.task.input_size) for s in sizes):
                raise BenchError(f"model {genotype.name!r}: its ONNX graph has a fixed size "
                                 f"{genotype.task.input_size}; bench it at that size only")  # fmt: skip
        if "onnx-int8" in runtimes and device == "cuda":
            runtimes.remove("onnx-int8")
            notes.append("int8 skipped on CUDA: the QDQ int8 graph targets ONNX Runtime's CPU kernels.")
        if "onnx-int8" in runtimes:
            source = "the bundled synth-defects set" if calib_dir is None else str(calib_dir)
            say(f"quantising to int8 (calibrating on {BENCH_CALIB_COUNT} images of {source})")
            quantized = quantize(files["onnx-fp32"], int8_path(files["onnx-fp32"]), calib_dir,
                                 count=BENCH_CALIB_COUNT, size=sizes[0], threads=max(threads))  # fmt: skip
            files["onnx-int8"] = quantized.path
            result["int8"] = quantized.quantization
            if calib_dir is None:
                notes.append("int8 was calibrated on the bundled synth-defects set (no calibration folder given).")
        result["files"] = {key: path.stat().st_size for key, path in files.items()}
        if work_dir is not None:
            result["paths"] = {key: str(path) for key, path in files.items()}
        say("timing a 1024x1024 fp32 matmul")
        result["matmul"] = {"n": MATMUL_N, "op": "torch.mm fp32", "flops": 2 * MATMUL_N**3}
        result["matmul_gflops_per_s"] = (
            {"cuda": matmul_gflops(1, "cuda")} if device == "cuda" else {str(t): matmul_gflops(t) for t in threads}
        )
        result["rows"] = _time_rows(net, files, sizes, threads, runtimes, warmup, repeats, throughput_batch, device,
                                    macs, say)  # fmt: skip
    _ratios(result["rows"], result["matmul_gflops_per_s"])
    result["load_average_end"] = _load_average()
    result["notes"] = notes + _notes(result["rows"], device) + _load_note(result)
    result["peak_rss_mib"] = peak_rss_mib()
    result["peak_rss_what"] = (
        "peak resident memory of the whole benchmarking process (getrusage ru_maxrss): every "
        "runtime together, ONNX Runtime's memory arenas of the throughput batch included"
    )
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def _time_rows(net: nn.Module, files: dict[str, Path], sizes: list[tuple[int, int]], threads: list[int],
               runtimes: list[str], warmup: int, repeats: int, batch: int, device: str, macs: dict[str, int],
               say: Callable[[str], None]) -> list[dict[str, Any]]:  # fmt: skip
    """One row per (threads, size, runtime), thread count by thread count (each count's sessions are
    closed before the next count's open, so their memory arenas do not pile up)."""
    rows: list[dict[str, Any]] = []
    torch_net = RawGraph(net).eval().to(device)
    previous = torch.get_num_threads()
    generator = torch.Generator().manual_seed(0)
    try:
        for count in threads:
            torch.set_num_threads(count)
            runners: dict[str, nn.Module | OnnxSession] = {
                r: torch_net if r == "torch" else open_session(files[r], device=device, threads=count) for r in runtimes
            }
            for height, width in sizes:
                say(f"{', '.join(runtimes)}: {count} thread{'s' * (count != 1)}, {height}x{width}")
                rows += _time_size(runners, count, net.genotype.task.in_channels, (height, width), warmup, repeats,
                                   batch, device, macs, generator)  # fmt: skip
            del runners
            gc.collect()
    finally:
        torch.set_num_threads(previous)
        if device == "cuda":
            torch_net.to("cpu")  # the caller's net goes back where it was
    return rows


def _time_size(runners: dict[str, nn.Module | OnnxSession], count: int, net_channels: int, size: tuple[int, int],
               warmup: int, repeats: int, batch: int, device: str, macs: dict[str, int],
               generator: torch.Generator) -> list[dict[str, Any]]:  # fmt: skip
    """The rows of one thread count and size: the runtimes timed in interleaved rounds
    (:func:`serving.timing.interleaved_stats`) at batch 1, then at ``batch`` for throughput."""
    (height, width), channels = size, net_channels
    sync = torch.cuda.synchronize if device == "cuda" else None
    stats = {}
    plan = ((1, warmup, repeats, 3), (batch, min(warmup, 1), max(3, repeats // 5), 1))
    for n, n_warmup, n_repeats, rounds in plan:
        x = torch.randn(n, channels, height, width, generator=generator).to(device)
        fitted = {r: runner.specialise(tuple(x.shape)) if isinstance(runner, OnnxSession) else runner
                  for r, runner in runners.items()}  # fmt: skip
        calls = {r: _runner(runner, x, device) for r, runner in fitted.items()}
        stats[n] = interleaved_stats(calls, n_warmup, n_repeats, rounds, sync=sync)
    rows = []
    for runtime, runner in runners.items():
        single, many = stats[1][runtime], stats[batch][runtime]
        provider = runner.provider if isinstance(runner, OnnxSession) else f"torch eager ({device})"
        rows.append({"runtime": runtime, "threads": count, "height": height, "width": width, "batch1": single,
                     "provider": provider,
                     "throughput": {"batch": batch, "images_per_s": round(batch * 1e3 / many["p50_ms"], 3),
                                    "p50_ms": many["p50_ms"], "repeats": many["repeats"]},
                     "gflops_per_s": round(2 * macs[f"{height}x{width}"] / single["p50_ms"] / 1e6, 3),
                     "peak_rss_mib": peak_rss_mib()})  # fmt: skip
    return rows
