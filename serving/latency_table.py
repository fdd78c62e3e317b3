"""Time the units of nets on ONNX Runtime and write a latency table (:mod:`zoo.latency` reads it).

Each unique unit (a configuration and its input shapes) is built for real from the traced one
(random weights; BatchNorm statistics 0 and 1), exported alone (the TorchScript exporter: fixed
shapes, a tenth of a second per unit), optionally quantised (the same QDQ recipe as
:func:`serving.quantize.quantize`, calibrated on random inputs), and timed in its own session
with the options ``nasseg serve`` uses (sequential, all graph optimisations, ``threads`` intra-op
threads). A unit runs between 1 x 1 convolutions, as inside a net, and its time is the sum of its
nodes' median kernel times from ONNX Runtime's profiler; the runtime's per-call overhead (a
one-op graph timed whole) is counted once per net. A unit that does not export alone (a block
taking non-tensor arguments) is left out; the predictor estimates it.
"""

from __future__ import annotations

import copy
import io
import json
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

from nasseg.serving.export import _quiet
from nasseg.serving.quantize import activation_choice, quantize_graph
from nasseg.serving.timing import cpu_model, latency_stats
from nasseg.zoo.latency import RUNTIMES, TABLE_SCHEMA, UnitCall
from nasseg.zoo.versions import library_versions


class _Sandwich(nn.Module):
    """A unit between 1 x 1 convolutions: one on each input, one on each output. Inside a net a
    unit's neighbours are convolutions, so ONNX Runtime runs it in its blocked (NCHWc) layout and
    fuses its leading ReLU; alone it would run in plain NCHW and pay the layout changes at both
    ends. The convolutions and the reorders around them are left out of the unit's time. The
    input convolutions' outputs are graph outputs too, so a leading ReLU is not fused into them:
    in a cell a node feeds several ops, and each pays its own ReLU."""

    def __init__(self, unit: nn.Module, inputs: Sequence[Sequence[int]], outputs: Sequence[Sequence[int]]) -> None:
        super().__init__()
        self.unit = unit
        self.pre = nn.ModuleList(nn.Conv2d(shape[1], shape[1], 1) for shape in inputs)
        self.post = nn.ModuleList(nn.Conv2d(shape[1], shape[1], 1) for shape in outputs)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        fed = tuple(conv(x) for conv, x in zip(self.pre, inputs, strict=True))
        out = self.unit(*fed)
        outs = tuple(conv(y) for conv, y in zip(self.post, out if isinstance(out, (tuple, list)) else (out,),
                                                 strict=True))  # fmt: skip
        return outs + fed  # ``fed`` as outputs too: a cell's node feeds several ops, so no fusion into them


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

    def rewind(self) -> None:
        self.batches = iter(self.feeds)

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


def _session(model: bytes, threads: int, options: ort.SessionOptions | None = None) -> ort.InferenceSession:
    options = options or ort.SessionOptions()
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


def _bound_session(graph: bytes, inputs: Sequence[Sequence[int]], threads: int,
                   options: ort.SessionOptions | None = None) -> tuple[ort.InferenceSession, Any]:  # fmt: skip
    import onnx

    from nasseg.serving.runtime import free_dimensions

    options = options or ort.SessionOptions()
    proto = onnx.load_from_string(graph).graph
    weights = {w.name for w in proto.initializer}
    declared = [[d.dim_param or d.dim_value for d in arg.type.tensor_type.shape.dim]
                for arg in proto.input if arg.name not in weights]  # fmt: skip
    for name, value in free_dimensions(declared, inputs).items():  # timed as a line runs it: shapes fixed
        options.add_free_dimension_override_by_name(name, value)
    session = _session(graph, threads, options)
    rng = np.random.default_rng(0)
    binding = session.io_binding()
    for arg, shape in zip(session.get_inputs(), inputs, strict=True):
        binding.bind_ortvalue_input(arg.name, ort.OrtValue.ortvalue_from_numpy(
            rng.standard_normal(shape).astype(np.float32)))  # fmt: skip
    for arg in session.get_outputs():
        binding.bind_output(arg.name, "cpu")
    return session, binding


def time_graph(graph: bytes, inputs: Sequence[Sequence[int]], threads: int, repeats: int = 20) -> float:
    """Median milliseconds of one run of ``graph`` on random inputs of ``inputs`` shapes. Inputs and
    outputs stay in ONNX Runtime's memory (IO binding): a unit alone then pays no copy of its output
    into Python that it would not pay inside a net."""
    session, binding = _bound_session(graph, inputs, threads)
    return latency_stats(lambda: session.run_with_iobinding(binding), warmup=3, repeats=repeats)["p50_ms"]


_BOUNDARY_PASS = {"ReorderInput", "ReorderOutput", "QuantizeLinear", "DequantizeLinear", "Transpose", "Reshape"}
_BOUNDARY_CONV = {"Conv", "FusedConv", "QLinearConv", "ConvInteger", "NhwcFusedConv"}


def _bread_nodes(model: Any) -> set[str]:
    """Names of the nodes of an optimised sandwich graph that are not the unit: from each graph
    input forward (and each output backward) through layout and quantisation nodes up to and
    including the first convolution."""
    producers = {out: node for node in model.graph.node for out in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    bread: set[str] = set()

    def walk(node: Any, forward: bool) -> None:
        if node.name in bread or node.op_type not in _BOUNDARY_PASS | _BOUNDARY_CONV:
            return
        bread.add(node.name)
        if node.op_type in _BOUNDARY_CONV:
            return
        names = node.output if forward else [n for n in node.input if n in producers]
        for name in names:
            for nxt in consumers.get(name, []) if forward else [producers[name]]:
                walk(nxt, forward)

    for arg in model.graph.input:
        for node in consumers.get(arg.name, []):
            walk(node, True)
    for arg in model.graph.output:
        if arg.name in producers:
            walk(producers[arg.name], False)
    return bread


def profile_unit_ms(graph: bytes, inputs: Sequence[Sequence[int]], threads: int, repeats: int = 20) -> float:
    """The kernel time of a :class:`_Sandwich` graph's unit: ONNX Runtime's profiler times each node
    of the optimised graph; the sum of the per-node medians over ``repeats`` runs, less the
    convolutions and layout changes at its ends."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="nasseg-lat-") as tmp:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        options.optimized_model_filepath = str(Path(tmp) / "optimised.onnx")
        session, binding = _bound_session(graph, inputs, threads, options)
        for _ in range(3 + repeats):
            session.run_with_iobinding(binding)
        events = json.loads(Path(session.end_profiling()).read_text())
        bread = _bread_nodes(onnx.load(options.optimized_model_filepath))
    runs: dict[str, list[float]] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            runs.setdefault(event["name"][: -len("_kernel_time")], []).append(event["dur"] / 1000.0)
    return float(sum(np.median(times[-repeats:]) for name, times in runs.items() if name not in bread))


def unit_ms(unit: nn.Module, call: UnitCall, runtime: str, threads: int, repeats: int,
            overhead_ms: float = 0.0) -> float:  # fmt: skip
    """A unit's time as a net runs it: profiled between 1 x 1 convolutions (:class:`_Sandwich`;
    ``autosegnet-synth-defects``' units timed alone summed to 1.4-2x the net: layout changes,
    upsampling and concatenations outside the blocked layout). A unit whose inputs or outputs
    are not all images is timed alone, less the runtime's per-call overhead ``overhead_ms``."""
    outputs = call.outputs or call.inputs
    if all(len(shape) == 4 for shape in (*call.inputs, *outputs)):
        graph = unit_graph(_Sandwich(unit, call.inputs, outputs).eval(), call.inputs, runtime)
        return profile_unit_ms(graph, call.inputs, threads, repeats)
    return time_graph(unit_graph(unit, call.inputs, runtime), call.inputs, threads, repeats) - overhead_ms


def call_overhead_ms(threads: int, repeats: int = 50) -> float:
    """The runtime's per-call cost: a one-ReLU graph on a 1 x 8 x 8 x 8 input."""
    return time_graph(unit_graph(nn.ReLU(), [(1, 8, 8, 8)]), [(1, 8, 8, 8)], threads, repeats)


def build_table(calls: Iterable[UnitCall], *, runtime: str = "onnx-fp32", threads: int = 2, repeats: int = 20,
                size: Sequence[int] | None = None, sources: dict[str, Any] | None = None,
                progress: Callable[[int, int], None] | None = None,
                base: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Time every unique unit of ``calls`` (traced with ``keep_modules=True``); the table's JSON.

    ``base``, a table of this machine at the same runtime, threads and size, is extended: its units
    are kept and not timed again, its per-call overhead is kept, its sources are listed."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    start = time.perf_counter()
    known = dict(base["units"]) if base is not None else {}
    unique: dict[str, UnitCall] = {}
    for call in calls:
        if call.module is not None and call.key not in known:
            unique.setdefault(call.key, call)
    overhead = float(base["call_overhead_ms"]) if base is not None else call_overhead_ms(threads)
    units, failed = known, dict(base.get("not_timed", {})) if base is not None else {}
    for index, (key, call) in enumerate(unique.items()):
        if isinstance(call.module, nn.Identity):  # ONNX Runtime removes identities from a graph: no work
            units[key] = {"kind": call.kind, "inputs": [list(s) for s in call.inputs], "macs": 0,
                          "elements": call.elements, "ms": 0.0}  # fmt: skip
            if progress is not None:
                progress(index + 1, len(unique))
            continue
        try:
            ms = unit_ms(materialise(call.module), call, runtime, threads, repeats, overhead)
        except Exception as exc:  # a block that does not export or run alone: the predictor estimates it
            failed[call.kind] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160] if str(exc) else ''}"
        else:
            units[key] = {"kind": call.kind, "inputs": [list(s) for s in call.inputs], "macs": call.macs,
                          "elements": call.elements, "ms": round(max(ms, 0.0), 5)}  # fmt: skip
        if progress is not None:
            progress(index + 1, len(unique))
    sources = dict(sources or {})
    if base is not None:
        previous = dict(base.get("sources", {}))
        sources["extends"] = [*previous.pop("extends", []), previous]
    return {
        "schema": TABLE_SCHEMA,
        "runtime": runtime,
        "threads": threads,
        "machine": cpu_model(),
        "size": list(size) if size is not None else None,
        "call_overhead_ms": round(overhead, 5),
        "repeats": repeats,
        "seconds": round(time.perf_counter() - start, 1),
        "sources": sources,
        "not_timed": failed,
        "library_versions": library_versions(),
        "units": units,
        **({"calibration": base["calibration"]} if base is not None and base.get("calibration") else {}),
    }


def measure_genotype_ms(genotype: Any, size: Sequence[int], threads: int = 2, runtime: str = "onnx-fp32",
                        repeats: int = 30) -> float:  # fmt: skip
    """Measured p50 (ms) of ``genotype``'s whole net (random weights; the ``raw`` graph, what the
    table's units add up to) on a 1 x C x H x W input of ``size``, timed like the table's units."""
    from nasseg import zoo
    from nasseg.serving.export import export

    model = zoo.build_model(genotype).eval()
    shape = (1, genotype.task.in_channels, int(size[0]), int(size[1]))
    with tempfile.TemporaryDirectory(prefix="nasseg-lat-") as tmp:
        path = Path(tmp) / "net.onnx"
        export(model, path, graph="raw")
        if runtime == "onnx-int8":
            from nasseg.serving.quantize import quantize

            path = quantize(path, Path(tmp) / "net-int8.onnx", size=(int(size[0]), int(size[1])), select="all").path
        graph = path.read_bytes()
    return time_graph(graph, [shape], threads, repeats)


def calibrate(data: dict[str, Any], genotypes: Sequence[Any], size: Sequence[int],
              progress: Callable[[int, int], None] | None = None) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Per family: the median of measured / summed latency over whole ``genotypes`` nets, timed like
    the units (a unit alone pays layout changes and misses fusions a whole graph makes; the
    factor corrects the sum's scale, it cannot change the order of nets of one family)."""
    from nasseg.zoo.latency import LatencyTable

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
