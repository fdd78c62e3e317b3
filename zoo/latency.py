"""Predicted latency of a net on a target runtime, from a table of timed units.

The ProxylessNAS / FBNet recipe (a per-op latency lookup table, summed): a net is cut into
**units** (:func:`iter_units`), each op of the op table and each fixed block of a family (a
stem, a ReLU-conv-BN, a decoder step, a head conv); a unit's key is its configuration (its
``repr``, which names every layer's channels, kernel, stride, dilation and groups) and the shapes
of its inputs. ``nasseg latency table`` times every unit the search spaces use, standalone on ONNX
Runtime on the target machine (:mod:`serving.latency_table`), and writes a table; the predicted
latency of a net is the runtime's per-call overhead plus the sum of its units' times.

The table knows nothing of searchers or runtimes: it is a JSON file of keys and milliseconds, so a
user times it on the line-side box, copies it back, and searches with it. A unit missing from the
table (a shape no sampled architecture had) is estimated from the table by a non-negative
least-squares fit of time on MACs and output elements per unit kind (all units where a kind has
too few), never below a physical floor: the unit's MACs and elements at the fastest rates any
timed unit reached (the table's measured roof) plus the smallest time a timed unit took (its fixed
cost). The prediction says how many units it looked up and estimated, and what share of its time
is estimated: a search that drifts into shapes the table never saw is told so (issue 29: a plain
least-squares fit went to 0 ms for a whole net, 0.002 predicted against 2.59 ms measured).

Shapes are traced on PyTorch's ``meta`` device: building and tracing a net at 256 x 256 allocates
nothing and takes milliseconds, so searchers can predict every candidate.

What a sum of units leaves out: the work a container's ``forward`` does with functional calls
(concatenations, additions, resizes) and the fusions ONNX Runtime makes across unit borders. The
benchmark ``benchmarks/latency_model.py`` measures how much that matters (rank correlation and
relative error against whole nets timed on the same machine).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nasseg.zoo.errors import NassegError
from nasseg.zoo.genotype import Genotype
from nasseg.zoo.modes import evaluating

TABLE_SCHEMA = "nasseg.latency-table/1"
RUNTIMES = ("onnx-fp32", "onnx-int8")
#: Units of one kind needed to fit that kind's own fallback (fewer: the fit over all units).
MIN_FIT_UNITS = 4
_MAC_LEAVES = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


class LatencyTableError(NassegError):
    """A latency table that cannot be read or used."""


# ---------------------------------------------------------------------------------------------
# Units
# ---------------------------------------------------------------------------------------------


def _op_modules() -> tuple[type[nn.Module], ...]:
    from nasseg.zoo import ops

    return (ops.ReLUConvBN, ops.DilConv, ops.SepConv, ops.HybridDilatedConv, ops.Zero, ops.FactorizedReduce,
            ops.ChannelAttention, ops.SpatialAttention, ops.Pool)  # fmt: skip


def is_unit(module: nn.Module) -> bool:
    """An op of the op table, a leaf layer, or a block whose children are all leaf layers."""
    if isinstance(module, _op_modules()):
        return True
    children = list(module.children())
    if not children:
        return True
    if isinstance(module, (nn.ModuleList, nn.ModuleDict)):
        return False
    return all(not list(child.children()) for child in children)


def iter_units(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """``(path, unit)`` of every unit inside ``module``, outermost first (units are not split)."""
    for name, child in module.named_children():
        path = f"{prefix}{name}"
        if is_unit(child):
            yield path, child
        else:
            yield from iter_units(child, path + ".")


_INFERENCE_NO_OPS = re.compile(r"^\s*\([^)]*\): Dropout\d?d?\(.*\)\n", re.MULTILINE)


def unit_signature(module: nn.Module) -> str:
    """A unit's configuration as its ``repr``, less the layers inference skips (dropout): a decoder
    step with dropout runs as the one without (ONNX export drops it), so both share a table row."""
    return _INFERENCE_NO_OPS.sub("", repr(module))


def unit_key(signature: str, inputs: Sequence[Sequence[int]]) -> str:
    """The table key of a unit: a hash of its configuration and its input shapes."""
    text = signature + "|" + ";".join("x".join(map(str, shape)) for shape in inputs)
    return hashlib.sha1(text.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class UnitCall:
    """One call of a unit in a traced forward: what the table is keyed and fitted on."""

    path: str
    kind: str
    signature: str
    inputs: tuple[tuple[int, ...], ...]
    macs: int
    elements: int
    outputs: tuple[tuple[int, ...], ...] = ()
    module: nn.Module | None = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> str:
        return unit_key(self.signature, self.inputs)


def _shapes(values: Any) -> tuple[tuple[int, ...], ...]:
    if isinstance(values, torch.Tensor):
        return (tuple(values.shape),)
    if isinstance(values, (list, tuple)):
        return tuple(shape for value in values for shape in _shapes(value))
    return ()


def _leaf_macs(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.ConvTranspose2d):
        kh, kw = module.kernel_size
        spatial = output.numel() // max(output.shape[1], 1)  # per-output-channel elements, then per input
        return (
            spatial
            * module.out_channels
            * (module.in_channels // module.groups)
            * kh
            * kw
            // (module.stride[0] * module.stride[1])
        )
    return output.numel() * module.in_features


def trace_module(model: nn.Module, example: torch.Tensor, keep_modules: bool = False) -> list[UnitCall]:
    """Every unit call of ``model(example)`` (eval mode, no gradients), with shapes and MACs;
    ``keep_modules`` keeps a reference to each unit (to time it)."""
    units = dict(iter_units(model))
    names = {id(unit): path for path, unit in units.items()}
    calls: list[UnitCall] = []
    stack: list[dict[str, Any]] = []
    handles = []

    def pre(module: nn.Module, args: Any) -> None:
        stack.append({"inputs": _shapes(args), "macs": 0})

    def post(module: nn.Module, args: Any, output: Any) -> None:
        frame = stack.pop()
        outputs = _shapes(output)
        calls.append(UnitCall(names[id(module)], type(module).__name__, unit_signature(module), frame["inputs"],
                              frame["macs"], sum(math.prod(shape) for shape in outputs), outputs,
                              module if keep_modules else None))  # fmt: skip

    def leaf(module: nn.Module, args: Any, output: Any) -> None:
        if stack and isinstance(output, torch.Tensor):
            stack[-1]["macs"] += _leaf_macs(module, output)

    try:
        for unit in units.values():  # MAC hooks first: forward hooks run in order, before ``post`` pops
            handles += [sub.register_forward_hook(leaf) for sub in unit.modules() if isinstance(sub, _MAC_LEAVES)]
        for unit in units.values():
            handles.append(unit.register_forward_pre_hook(pre))
            handles.append(unit.register_forward_hook(post))
        with torch.no_grad(), evaluating(model):
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def trace_genotype(genotype: Genotype, size: Sequence[int] | None = None, keep_modules: bool = False) -> list[UnitCall]:
    """The unit calls of ``genotype``'s net run on frames of ``size`` (default: its input size),
    traced on ``meta``. The net is built as the genotype says (AutoSegNet's depth follows the
    genotype's input size), as ``nasseg export`` builds it, and then run at ``size``."""
    from nasseg.zoo.registry import build_model

    height, width = size if size is not None else genotype.task.input_size
    with torch.device("meta"):
        model = build_model(genotype)
        example = torch.empty(1, genotype.task.in_channels, height, width)
    return trace_module(model, example, keep_modules)


@dataclass(frozen=True)
class EdgeContext:
    """Where a cell edge sits: its input channels and size, its output channels, its stride."""

    c_in: int
    c_out: int
    stride: int
    height: int
    width: int


def edge_contexts(calls: Sequence[UnitCall]) -> set[EdgeContext]:
    """The contexts of every cell-edge op among ``calls`` (units under a cell's ``edges``)."""
    contexts = set()
    for call in calls:
        if ".edges." in f".{call.path}." and call.inputs and call.outputs and len(call.inputs[0]) == 4:
            (_, c_in, height, width), out = call.inputs[0], call.outputs[0]
            stride = 2 if out[2] < height else 1
            contexts.add(EdgeContext(c_in, out[1], stride, height, width))
    return contexts


def edge_op_calls(name: str, context: EdgeContext, keep_modules: bool = False) -> list[UnitCall]:
    """The unit calls of op ``name`` of the op table as a final net's cell edge holds it (affine BN)
    in ``context``."""
    from nasseg.zoo.ops import create_op

    c = context
    with torch.device("meta"):
        op = create_op(name, c.c_in, c.c_out, c.stride, True)
        return trace_module(_Wrap(op), torch.empty(1, c.c_in, c.height, c.width), keep_modules)


# ---------------------------------------------------------------------------------------------
# The table and the prediction
# ---------------------------------------------------------------------------------------------


@dataclass
class Prediction:
    """A predicted latency: the total, and how it was made."""

    predicted_ms: float
    units: int
    looked_up: int
    estimated: int
    overhead_ms: float
    by_kind: dict[str, float] = field(default_factory=dict)
    scale: float = 1.0
    estimated_ms: float = 0.0

    @property
    def estimated_share(self) -> float:
        """The share of the predicted time that comes from estimated (not looked-up) units."""
        return self.estimated_ms / self.predicted_ms if self.predicted_ms > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "predicted_ms": round(self.predicted_ms, 4),
            "units": self.units,
            "looked_up": self.looked_up,
            "estimated": self.estimated,
            "estimated_share": round(self.estimated_share, 4),
            "overhead_ms": round(self.overhead_ms, 4),
            "calibration": round(self.scale, 4),
            "by_kind_ms": {k: round(v, 4) for k, v in sorted(self.by_kind.items(), key=lambda kv: -kv[1])},
        }


def _fit(rows: list[dict[str, Any]]) -> list[float]:
    """Non-negative least squares ``ms ~ a + b * MACs + c * elements`` (a, b, c >= 0: more work is
    never faster, and no unit costs less than nothing)."""
    from scipy.optimize import nnls

    ms = np.array([r["ms"] for r in rows], dtype=float)
    if len(rows) < 2 or ms.std() == 0:
        return [float(ms.mean()), 0.0, 0.0]
    features = np.array([[1.0, r["macs"], r["elements"]] for r in rows], dtype=float)
    scale = np.maximum(np.abs(features).max(axis=0), 1.0)
    coef, _ = nnls(features / scale, ms)
    return [float(c) for c in coef / scale]


def _roof(rows: list[dict[str, Any]]) -> tuple[float, float, float]:
    """The table's measured roof: the fastest MACs/ms and elements/ms of any timed unit, and the
    smallest time a timed unit took (its 1st percentile, a fixed cost per unit)."""
    timed = [r for r in rows if r["ms"] > 0]
    if not timed:
        return math.inf, math.inf, 0.0
    macs_rate = max((r["macs"] / r["ms"] for r in timed if r["macs"] > 0), default=math.inf)
    elements_rate = max((r["elements"] / r["ms"] for r in timed if r["elements"] > 0), default=math.inf)
    return macs_rate, elements_rate, float(np.percentile([r["ms"] for r in timed], 1))


class LatencyTable:
    """Timed units of one runtime on one machine (``nasseg latency table`` writes it)."""

    def __init__(self, data: dict[str, Any], source: str = "<table>") -> None:
        if data.get("schema") != TABLE_SCHEMA:
            raise LatencyTableError(f"{source}: not a latency table (schema {data.get('schema')!r}, "
                                    f"want {TABLE_SCHEMA!r})")  # fmt: skip
        if not isinstance(data.get("units"), dict) or not data["units"]:
            raise LatencyTableError(f"{source}: the table has no timed units")
        self.data = data
        self.source = source
        self.units: dict[str, dict[str, Any]] = data["units"]
        self.overhead_ms = float(data.get("call_overhead_ms", 0.0))
        rows = list(self.units.values())
        self._fit_all = _fit(rows)
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_kind.setdefault(row["kind"], []).append(row)
        self._fits = {kind: _fit(kind_rows) for kind, kind_rows in by_kind.items() if len(kind_rows) >= MIN_FIT_UNITS}
        self._macs_rate, self._elements_rate, self._unit_floor_ms = _roof(rows)
        self.calibration: dict[str, dict[str, Any]] = dict(data.get("calibration") or {})

    def scale(self, family: str | None) -> float:
        """The factor a family's unit sums are multiplied by: measured / summed latency of whole nets of
        that family when the table was made (1 where it was not calibrated)."""
        return float(self.calibration.get(family or "", {}).get("scale", 1.0))

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise LatencyTableError(f"{path}: no such latency table (make one with `nasseg latency table`)") from None
        except (OSError, ValueError) as exc:
            raise LatencyTableError(f"{path}: cannot read the latency table ({exc})") from None
        if not isinstance(data, dict):
            raise LatencyTableError(f"{path}: not a latency table (a JSON object is expected)")
        return cls(data, str(path))

    @property
    def runtime(self) -> str:
        return str(self.data.get("runtime", "?"))

    @property
    def threads(self) -> int:
        return int(self.data.get("threads", 0))

    def floor(self, call: UnitCall) -> float:
        """The least a unit can take on this machine: its MACs or its elements at the table's roof
        (whichever takes longer), plus the smallest time any timed unit took."""
        return self._unit_floor_ms + max(call.macs / self._macs_rate, call.elements / self._elements_rate)

    def estimate(self, call: UnitCall) -> float:
        """A unit's time from the fit of its kind (or of all units), never below :meth:`floor`."""
        a, b, c = self._fits.get(call.kind, self._fit_all)
        return max(a + b * call.macs + c * call.elements, self.floor(call))

    def unit_ms(self, call: UnitCall) -> tuple[float, bool]:
        """``(ms, looked_up)`` of one unit call."""
        row = self.units.get(call.key)
        if row is not None:
            return float(row["ms"]), True
        return self.estimate(call), False

    def predict_calls(self, calls: Sequence[UnitCall], scale: float = 1.0) -> Prediction:
        """The overhead plus ``scale`` times the sum of the units' times."""
        total, hits, by_kind, estimated = 0.0, 0, {}, 0.0
        for call in calls:
            ms, hit = self.unit_ms(call)
            total += ms * scale
            hits += hit
            estimated += 0.0 if hit else ms * scale
            by_kind[call.kind] = by_kind.get(call.kind, 0.0) + ms * scale
        return Prediction(self.overhead_ms + total, len(calls), hits, len(calls) - hits, self.overhead_ms, by_kind,
                          scale, estimated)  # fmt: skip

    def predict(self, genotype: Genotype, size: Sequence[int] | None = None, calibrated: bool = True) -> Prediction:
        """Predicted latency of ``genotype``'s net at ``size`` (default: its input size), batch 1
        (with the family's calibration, unless ``calibrated=False``)."""
        scale = self.scale(genotype.family) if calibrated else 1.0
        return self.predict_calls(trace_genotype(genotype, size), scale)

    def op_ms(self, name: str, context: EdgeContext) -> float:
        """Predicted time of op ``name`` of the op table on a cell edge in ``context``."""
        return sum(self.unit_ms(call)[0] for call in edge_op_calls(name, context))


class _Wrap(nn.Module):
    """A parent for one op, so that :func:`iter_units` finds the op as a unit."""

    def __init__(self, op: nn.Module) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


def latency_factor(ms: float, target_ms: float, weight: float) -> float:
    """MnasNet's soft constraint as a reward factor: ``(ms / target) ** -weight`` above the target,
    1 at or below it (MnasNet's alpha = 0, beta = -weight: a constraint, not a pull to be faster)."""
    if target_ms <= 0:
        raise ValueError(f"latency target must be > 0 ms, got {target_ms}")
    if ms <= target_ms:
        return 1.0
    return (ms / target_ms) ** (-weight)
