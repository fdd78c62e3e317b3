"""Time the units of nets on ONNX Runtime and write a latency table (:mod:`zoo.latency` reads it).

Each unique unit (a configuration and its input shapes) is built for real from the traced one
(random weights; BatchNorm statistics 0 and 1), exported alone (the TorchScript exporter: fixed
shapes, a tenth of a second per unit), optionally quantised (the same QDQ recipe as
:func:`serving.quantize.quantize`, calibrated on random inputs), and timed in its own session
with the options ``nasseg serve`` uses (sequential, all graph optimisations, ``threads`` intra-op
threads). A unit's time is its median minus the runtime's per-call overhead (a one-op graph timed
the same way); the overhead is counted once per net. A unit that does not export alone (a block
taking non-tensor arguments) is left out; the predictor estimates it.
"""

from __future__ import annotations

import copy
import io
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationDataReader
from torch import nn

from serving.export import _quiet
from serving.quantize import activation_choice, quantize_graph
from serving.timing import cpu_model, latency_stats
from zoo.latency import RUNTIMES, TABLE_SCHEMA, UnitCall
from zoo.versions import library_versions


class _Twice(nn.Module):
    """A shape-keeping unit applied twice (its second run is timed as it would run inside a net)."""

    def __init__(self, unit: nn.Module) -> None:
        super().__init__()
        self.unit = unit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unit(self.unit(x))


class _RandomReader(CalibrationDataReader):
    """A few random inputs, for the int8 calibration of one unit."""

    def __init__(self, names: Sequence[str], shapes: Sequence[Sequence[int]], count: int = 4) -> None:
        rng = np.random.default_rng(0)
        self.feeds = [{n: rng.standard_normal(s).astype(np.float32) for n, s in zip(names, shapes, strict=True)}
                      for _ in range(count)]  # fmt: skip
        self.batches = iter(self.feeds)

    def __len__(self) -> int:
        return len(self.feeds)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.batches = iter(self.feeds[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def materialise(module: nn.Module) -> nn.Module:
    """A CPU copy of a (``meta``) unit with random weights and unit BatchNorm statistics."""
    unit = copy.deepcopy(module).to_empty(device="cpu").eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in unit.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
        for sub in unit.modules():
            if isinstance(sub, nn.modules.batchnorm._BatchNorm) and sub.running_mean is not None:
                sub.running_mean.zero_()
                sub.running_var.fill_(1.0)
                sub.num_batches_tracked.zero_()
    return unit


def _session(model: bytes, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def unit_graph(module: nn.Module, inputs: Sequence[Sequence[int]], runtime: str = "onnx-fp32") -> bytes:
    """The ONNX graph of one unit at fixed input shapes (int8 QDQ for ``onnx-int8``)."""
    examples = tuple(torch.randn(*shape) for shape in inputs)
    names = [f"x{i}" for i in range(len(examples))]
    buffer = io.BytesIO()
    with _quiet(), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, examples, buffer, dynamo=False, opset_version=18, input_names=names,
                          do_constant_folding=True)  # fmt: skip
    graph = buffer.getvalue()
    if runtime == "onnx-fp32":
        return graph
    activation_type, reduce_range = activation_choice()
    with tempfile.TemporaryDirectory(prefix="nasseg-lat-") as tmp:
        source, out = Path(tmp) / "unit.onnx", Path(tmp) / "unit-int8.onnx"
        source.write_bytes(graph)
        quantize_graph(source, out, _RandomReader(names, inputs), activation_type, reduce_range)
        return out.read_bytes()


def time_graph(graph: bytes, inputs: Sequence[Sequence[int]], threads: int, repeats: int = 20) -> float:
    """Median milliseconds of one run of ``graph`` on random inputs of ``inputs`` shapes. Inputs and
    outputs stay in ONNX Runtime's memory (IO binding): a unit alone then pays no copy of its output
    into Python that it would not pay inside a net."""
    session = _session(graph, threads)
    rng = np.random.default_rng(0)
    binding = session.io_binding()
    for arg, shape in zip(session.get_inputs(), inputs, strict=True):
        binding.bind_ortvalue_input(arg.name, ort.OrtValue.ortvalue_from_numpy(
            rng.standard_normal(shape).astype(np.float32)))  # fmt: skip
    for arg in session.get_outputs():
        binding.bind_output(arg.name, "cpu")
    return latency_stats(lambda: session.run_with_iobinding(binding), warmup=3, repeats=repeats)["p50_ms"]


def unit_ms(unit: nn.Module, call: UnitCall, runtime: str, threads: int, repeats: int) -> float:
    """A unit's time as a net runs it. A unit alone converts its input into ONNX Runtime's blocked
    layout and its output back, which a net does once for a run of convolutions, not per unit (in
    ``autosegnet-synth-defects`` the units alone summed to twice the net). A unit that keeps its
    shape is therefore timed once and applied twice, and its time is the difference; any other
    unit is timed alone."""
    once = time_graph(unit_graph(unit, call.inputs, runtime), call.inputs, threads, repeats)
    if len(call.inputs) != 1 or call.outputs != call.inputs:
        return once
    twice = time_graph(unit_graph(_Twice(unit), call.inputs, runtime), call.inputs, threads, repeats)
    return min(once, max(twice - once, 0.0))


def call_overhead_ms(threads: int, repeats: int = 50) -> float:
    """The runtime's per-call cost: a one-ReLU graph on a 1 x 8 x 8 x 8 input."""
    return time_graph(unit_graph(nn.ReLU(), [(1, 8, 8, 8)]), [(1, 8, 8, 8)], threads, repeats)


def build_table(calls: Iterable[UnitCall], *, runtime: str = "onnx-fp32", threads: int = 2, repeats: int = 20,
                size: Sequence[int] | None = None, sources: dict[str, Any] | None = None,
                progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Time every unique unit of ``calls`` (traced with ``keep_modules=True``); the table's JSON."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    start = time.perf_counter()
    unique: dict[str, UnitCall] = {}
    for call in calls:
        if call.module is not None:
            unique.setdefault(call.key, call)
    overhead = call_overhead_ms(threads)
    units, failed = {}, {}
    for index, (key, call) in enumerate(unique.items()):
        if isinstance(call.module, nn.Identity):  # ONNX Runtime removes identities from a graph: no work
            units[key] = {"kind": call.kind, "inputs": [list(s) for s in call.inputs], "macs": 0,
                          "elements": call.elements, "ms": 0.0}  # fmt: skip
            if progress is not None:
                progress(index + 1, len(unique))
            continue
        try:
            ms = unit_ms(materialise(call.module), call, runtime, threads, repeats) - overhead
        except Exception as exc:  # a block that does not export or run alone: the predictor estimates it
            failed[call.kind] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160] if str(exc) else ''}"
        else:
            units[key] = {"kind": call.kind, "inputs": [list(s) for s in call.inputs], "macs": call.macs,
                          "elements": call.elements, "ms": round(max(ms, 0.0), 5)}  # fmt: skip
        if progress is not None:
            progress(index + 1, len(unique))
    return {"schema": TABLE_SCHEMA, "runtime": runtime, "threads": threads, "machine": cpu_model(),
            "size": list(size) if size is not None else None, "call_overhead_ms": round(overhead, 5),
            "repeats": repeats, "seconds": round(time.perf_counter() - start, 1), "sources": sources or {},
            "not_timed": failed, "library_versions": library_versions(), "units": units}  # fmt: skip


def measure_genotype_ms(genotype: Any, size: Sequence[int], threads: int = 2, runtime: str = "onnx-fp32",
                        repeats: int = 30) -> float:  # fmt: skip
    """Measured p50 (ms) of ``genotype``'s whole net (random weights; the ``raw`` graph, what the
    table's units add up to) on a 1 x C x H x W input of ``size``, timed like the table's units."""
    import zoo
    from serving.export import export

    model = zoo.build_model(genotype).eval()
    shape = (1, genotype.task.in_channels, int(size[0]), int(size[1]))
    with tempfile.TemporaryDirectory(prefix="nasseg-lat-") as tmp:
        path = Path(tmp) / "net.onnx"
        export(model, path, graph="raw")
        if runtime == "onnx-int8":
            from serving.quantize import quantize

            path = quantize(path, Path(tmp) / "net-int8.onnx", size=(int(size[0]), int(size[1]))).path
        graph = path.read_bytes()
    return time_graph(graph, [shape], threads, repeats)


def calibrate(data: dict[str, Any], genotypes: Sequence[Any], size: Sequence[int],
              progress: Callable[[int, int], None] | None = None) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Per family: the median of measured / summed latency over whole ``genotypes`` nets, timed like
    the units (a unit alone pays layout changes and misses fusions a whole graph makes; the
    factor corrects the sum's scale, it cannot change the order of nets of one family)."""
    from zoo.latency import LatencyTable

    table = LatencyTable(data)
    ratios: dict[str, list[float]] = {}
    for index, genotype in enumerate(genotypes):
        predicted = table.predict(genotype, size, calibrated=False).predicted_ms
        measured = measure_genotype_ms(genotype, size, int(data["threads"]), str(data["runtime"]))
        ratios.setdefault(genotype.family, []).append(measured / predicted)
        if progress is not None:
            progress(index + 1, len(genotypes))
    return {family: {"scale": round(float(np.median(values)), 4), "nets": len(values),
                     "ratios": [round(v, 4) for v in values]} for family, values in ratios.items()}  # fmt: skip
