"""One table per model across runtimes (issue 30; Ultralytics' ``benchmark`` mode, for segmentation).

For each runtime the **deploy graph** (uint8 frames in, probabilities and mask out) runs as a line
would run it: ``onnx-fp32`` and ``onnx-int8`` on ONNX Runtime (int8: :func:`serving.quantize.quantize`,
QDQ), ``openvino-f32``, ``openvino-bf16`` (only where the CPU runs bf16 natively; the row says so
where it does not) and ``openvino-int8`` (NNCF, calibrated on the same train images) on OpenVINO's
CPU plugin, ``torch`` (PyTorch eager, the reference every IoU change is measured against) and
``torch-compile`` (``torch.compile`` of the same module; its compile time is reported). Per runtime:
status, file size, p50/p99 at batch 1 and images/s at batch 8 on frames of ``size`` (all runtimes
timed in interleaved rounds, :func:`serving.timing.interleaved_stats`), IoU and Dice on the folder's
test split, the IoU change against ``torch`` and the share of mask pixels that agree with it.
``busy_core=True`` times with a CPU-bound process on one core beside it (a line-side box also runs
acquisition and I/O). ``pick(result, tolerance)`` names the fastest runtime whose IoU is at most
``tolerance`` below torch's.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasseg.serving.export import DeployGraph, export
from nasseg.serving.runtime import OnnxSegmenter
from nasseg.serving.timing import interleaved_stats
from nasseg.zoo.errors import NassegError
from nasseg.zoo.training.metrics import ConfusionMatrix

RUNTIME_CHOICES = ("onnx-fp32", "onnx-int8", "openvino-f32", "openvino-bf16", "openvino-int8", "torch",
                   "torch-compile")  # fmt: skip
REFERENCE = "torch"
THROUGHPUT_BATCH = 8


class RuntimeTableError(NassegError):
    """The runtime table cannot be made as asked (unknown runtime, data without a test split, ...)."""


def cpu_flags() -> dict[str, bool]:
    """The CPU features that decide which runtime and precision are fast here (from /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    return {"avx2": "avx2" in flags, "avx512": "avx512f" in flags,
            "vnni": bool({"avx512_vnni", "avx_vnni"} & flags), "bf16": "avx512_bf16" in flags,
            "amx": bool({"amx_bf16", "amx_tile"} & flags)}  # fmt: skip


def parse_runtimes(text: str) -> list[str]:
    names = list(RUNTIME_CHOICES) if text.strip() == "all" else [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in RUNTIME_CHOICES]
    if unknown or not names:
        raise RuntimeTableError(f"--runtimes: {', '.join(unknown) or 'none given'}; choose from "
                                f"{', '.join(RUNTIME_CHOICES)} or all")  # fmt: skip
    return names


@contextlib.contextmanager
def busy_core(on: bool) -> Iterator[None]:
    """A CPU-bound process beside the timing while ``on`` (stopped after)."""
    if not on:
        yield
        return
    process = multiprocessing.get_context("spawn").Process(target=_spin, daemon=True)
    process.start()
    try:
        time.sleep(0.5)
        yield
    finally:
        process.terminate()
        process.join(5)


def _spin() -> None:  # pragma: no cover - runs in the child
    """Keep one core busy until the parent is gone (a killed benchmark leaves no spinner behind)."""
    parent = os.getppid()
    while os.getppid() == parent:
        for _ in range(1_000_000):
            pass


Predictor = tuple[Callable[[np.ndarray], np.ndarray], int | None, str]


def _predictors(net: torch.nn.Module, runtimes: list[str], folder: Path, calib_dir: Path | None, threads: int,
                notes: list[str], frame_size: tuple[int, int]) -> dict[str, Predictor]:  # fmt: skip
    """Runtime -> (uint8 frames (N, H, W, C) -> masks (N, H, W), file bytes, status); a runtime that cannot
    run here is left out with its reason in ``notes``. ``onnx-int8`` quantises the node groups that
    gain at ``frame_size`` (:mod:`serving.int8_select`)."""
    from nasseg.serving.quantize import int8_path, quantize

    onnx_file = folder / f"{net.genotype.name}.onnx"
    export(net, onnx_file)
    out: dict[str, tuple[Callable[[np.ndarray], np.ndarray], int | None, str]] = {}
    for runtime in runtimes:
        try:
            if runtime in ("torch", "torch-compile"):
                deploy = DeployGraph(net, getattr(net, "divisor", 1)).eval()
                if runtime == "torch-compile":
                    torch._dynamo.reset()  # earlier models' graphs would fill dynamo's recompile limit: eager fallback
                module = torch.compile(deploy, dynamic=False) if runtime == "torch-compile" else deploy

                def run(frames: np.ndarray, module: Any = module) -> np.ndarray:
                    with torch.inference_mode():
                        return module(torch.from_numpy(np.ascontiguousarray(frames)))[1].numpy()

                out[runtime] = (run, None, "ok")
                continue
            if runtime == "onnx-fp32":
                path = onnx_file
            elif runtime == "onnx-int8":
                path = quantize(onnx_file, int8_path(onnx_file), calib_dir, size=frame_size, threads=threads).path
            else:
                from nasseg.serving.openvino_runtime import bf16_supported, export_openvino

                precision = runtime.split("-", 1)[1]
                if precision == "bf16" and not bf16_supported():
                    notes.append(f"{runtime}: not run, this CPU has no native bf16 (no AVX-512 BF16 or AMX)")
                    continue
                path = export_openvino(onnx_file, folder / f"{net.genotype.name}-{precision}.xml", precision, calib_dir)
            engine = "openvino" if runtime.startswith("openvino") else "onnx"
            segmenter = OnnxSegmenter(path, "cpu", threads, runtime=engine)
            size = path.stat().st_size + (path.with_suffix(".bin").stat().st_size if path.suffix == ".xml" else 0)
            out[runtime] = (lambda frames, s=segmenter: s.predict_frames(frames)[0], size, "ok")
        except NassegError as exc:
            notes.append(f"{runtime}: not run ({exc})")
    return out


def runtime_table(model: str | Path, data: str | Path, runtimes: list[str] | None = None, threads: int = 2,
                  size: tuple[int, int] = (256, 256), repeats: int = 30, busy: bool = False,
                  calib_dir: Path | None = None, max_images: int | None = None,
                  work_dir: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """The table of :mod:`this module <serving.runtime_table>` for ``model`` (trained weights) on ``data``."""
    from nasseg.serving.quantize import scoring_folder
    from nasseg.serving.resolve import load_for_export

    runtimes = runtimes or list(RUNTIME_CHOICES)
    if REFERENCE not in runtimes:
        runtimes = [REFERENCE, *runtimes]
    net, weights = load_for_export(model, "auto", allow_random=False)
    net = net.eval()
    folder = scoring_folder(data)
    samples = folder.splits["test"][:max_images] if max_images else folder.splits["test"]
    if not samples:
        raise RuntimeTableError(f"{data}: the test split has no images")
    task, notes, started = net.genotype.task, [], time.perf_counter()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory(prefix="nasseg-runtimes-") as tmp:
            predictors = _predictors(net, runtimes, Path(work_dir or tmp), calib_dir, threads, notes, size)
            scores = _score(predictors, samples, task, folder)
            frame = np.random.default_rng(0).integers(0, 256, (1, *size, task.in_channels), dtype=np.uint8)
            batch = np.repeat(frame, THROUGHPUT_BATCH, 0)
            compile_s = {}
            for name, (run, _, _) in predictors.items():  # first calls: torch.compile compiles here
                start = time.perf_counter()
                run(frame), run(batch)
                compile_s[name] = time.perf_counter() - start
            with busy_core(busy):
                single = interleaved_stats({n: (lambda r=r: r(frame)) for n, (r, _, _) in predictors.items()},
                                           3, repeats, 3)  # fmt: skip
                many = interleaved_stats({n: (lambda r=r: r(batch)) for n, (r, _, _) in predictors.items()},
                                         1, max(3, repeats // 5), 1)  # fmt: skip
    finally:
        torch.set_num_threads(previous)
    rows = []
    for name in runtimes:
        if name not in predictors:
            rows.append({"runtime": name, "status": next((n.split(": ", 1)[1] for n in notes
                                                         if n.startswith(name + ":")), "not run")})  # fmt: skip
            continue
        score, reference = scores[name], scores[REFERENCE]
        row = {"runtime": name, "status": "ok", "size_mb": round(predictors[name][1] / 2**20, 3)
               if predictors[name][1] else None, "p50_ms": single[name]["p50_ms"], "p99_ms": single[name]["p99_ms"],
               "images_per_s": round(THROUGHPUT_BATCH * 1e3 / many[name]["p50_ms"], 2), "iou": score["iou"],
               "dice": score["dice"], "iou_change": score["iou"] - reference["iou"],
               "mask_agreement": score["agreement"]}  # fmt: skip
        if name == "torch-compile":
            row["compile_s"] = round(compile_s[name], 1)
        rows.append(row)
    return {"model": net.genotype.name, "arch_hash": net.genotype.arch_hash, "weights": weights,
            "data": str(folder.root), "test_images": len(samples), "size": list(size), "threads": threads,
            "condition": "busy-core" if busy else "idle", "reference": REFERENCE, "rows": rows, "notes": notes,
            "cpu_flags": cpu_flags(), "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip


def _score(predictors: dict[str, Any], samples: list[Any], task: Any, folder: Any) -> dict[str, dict[str, float]]:
    """IoU and Dice on the samples per runtime, and the share of mask pixels equal to the reference's."""
    matrices = {name: ConfusionMatrix(folder.num_classes) for name in predictors}
    equal = dict.fromkeys(predictors, 0)
    total = 0
    for sample in samples:
        image, target = _load_pair_uint8(sample, task, folder)
        masks = {name: run(image[None])[0] for name, (run, _, _) in predictors.items()}
        for name, mask in masks.items():
            matrices[name].update(torch.from_numpy(mask.astype(np.int64)), torch.from_numpy(target.astype(np.int64)))
            equal[name] += int((mask == masks[REFERENCE]).sum())
        total += target.size
    out = {}
    for name, matrix in matrices.items():
        metrics = matrix.compute(folder.classes)
        out[name] = {"iou": float(metrics["iou"]), "dice": float(metrics["dice"]), "agreement": equal[name] / total}
    return out


def _load_pair_uint8(sample: Any, task: Any, folder: Any) -> tuple[np.ndarray, np.ndarray]:
    from nasseg.serving.quantize import load_pair

    image, target = load_pair(sample, task.in_channels, folder.num_classes)
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8), target


def pick(result: dict[str, Any], tolerance: float) -> dict[str, Any] | None:
    """The fastest runtime (batch-1 p50) whose IoU is at most ``tolerance`` below the reference's."""
    fine = [r for r in result["rows"] if r.get("status") == "ok" and r["iou_change"] >= -tolerance]
    return min(fine, key=lambda r: r["p50_ms"]) if fine else None


__all__ = ["RUNTIME_CHOICES", "busy_core", "cpu_flags", "parse_runtimes", "pick", "runtime_table"]
