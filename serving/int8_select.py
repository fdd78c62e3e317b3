"""Quantise only what gains: int8 node groups chosen by measured latency (issue 30).

Why: ONNX Runtime's int8 lost to fp32 on every searched cell net on this CPU (asdet 24.6 -> 33.9 ms
at 256 x 256). A profile of asdet says where: fp32 convolutions run in the blocked NCHWc layout
(21.7 ms of Conv), while int8 ``QLinearConv`` runs NHWC with a transpose on each side and a
quantise / dequantise pair around every float op between them (51.6 ms of QLinearConv, plus
Q/DQ and transposes). Depthwise and narrow (< 16 channel) convolutions lose most; wide pointwise
ones gain by themselves but lose their gain to the layout changes when float ops sit between them,
as in a DARTS cell. So which nodes gain depends on the net and the CPU, and is measured:

1. The graph's quantisable nodes are put in groups: convolutions by kind (dense k x k, pointwise
   1 x 1, depthwise) and width (narrow: fewer than :data:`NARROW_CHANNELS` channels in or out),
   transposed convolutions, matrix products, and the other quantisable op types together
   (element-wise, pooling, concat, resize: they only gain in chains with int8 convolutions).
2. Each group is quantised alone (ranges from one calibration, cached) and timed against the fp32
   graph in interleaved rounds at batch 1 (:func:`serving.timing.interleaved_stats`).
3. The groups whose graph took at most ``1 - margin`` of fp32's time are quantised together; that
   union, the best single group and fp32 are timed once more, and the fastest wins. Where fp32
   wins, no node is quantised: the "int8" file then keeps every op float and its record says so.

``select="all"`` keeps the former behaviour (every quantisable op but the output head).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from nasseg.serving.runtime import open_session
from nasseg.serving.timing import interleaved_stats

#: A convolution with fewer channels than this (in or out) counts as narrow.
NARROW_CHANNELS = 16
#: A group is kept where its graph takes at most (1 - MARGIN) of fp32's time.
MARGIN = 0.03
SELECT_CHOICES = ("auto", "all")
CONV_TYPES = frozenset({"Conv", "ConvTranspose"})
PRODUCT_TYPES = frozenset({"MatMul", "Gemm"})


@dataclass(frozen=True)
class NodeGroup:
    """Quantisable nodes of one kind, tried in int8 together."""

    name: str
    nodes: tuple[str, ...]


@dataclass
class Selection:
    """What was measured and chosen: per group its int8 p50 against fp32's, and the chosen nodes."""

    nodes: list[str]
    groups: list[dict[str, Any]]
    fp32_ms: float
    int8_ms: float
    size: tuple[int, int]
    chosen: list[str] = field(default_factory=list)

    def to_record(self) -> dict[str, Any]:
        """JSON-ready, for the int8 file's ``nasseg.quantization`` record."""
        return {"mode": "auto", "chosen_groups": self.chosen, "quantized_nodes": len(self.nodes),
                "timed_at": list(self.size), "fp32_p50_ms": round(self.fp32_ms, 4),
                "int8_p50_ms": round(self.int8_ms, 4), "groups": self.groups}  # fmt: skip

    def sentence(self) -> str:
        """One line: which groups went int8 and what that measured, or that none gained."""
        if not self.nodes:
            return (f"no node group ran faster in int8 on this CPU (fp32 p50 {self.fp32_ms:.2f} ms at "
                    f"{self.size[0]}x{self.size[1]}); every op is kept float")  # fmt: skip
        return (f"int8 for {', '.join(self.chosen)} ({len(self.nodes)} nodes): p50 {self.int8_ms:.2f} ms against "
                f"fp32 {self.fp32_ms:.2f} ms at {self.size[0]}x{self.size[1]}")  # fmt: skip


def _conv_kind(node: onnx.NodeProto, weights: dict[str, onnx.TensorProto]) -> str:
    """``conv-dense``, ``conv-pointwise`` or ``conv-depthwise``, with ``-narrow`` where it is."""
    if node.op_type == "ConvTranspose":
        return "conv-transpose"
    group = next((int(a.i) for a in node.attribute if a.name == "group"), 1)
    weight = weights.get(node.input[1]) if len(node.input) > 1 else None
    dims = list(weight.dims) if weight is not None else []
    if group > 1:
        kind = "conv-depthwise"
    elif len(dims) == 4 and dims[2] * dims[3] == 1:
        kind = "conv-pointwise"
    else:
        kind = "conv-dense"
    narrow = len(dims) >= 2 and min(dims[0], dims[1] * group) < NARROW_CHANNELS
    return f"{kind}-narrow" if narrow else kind


def node_groups(model: onnx.ModelProto, op_types: Sequence[str]) -> list[NodeGroup]:
    """The quantisable nodes of ``model`` (those of ``op_types``) in groups, in a fixed order."""
    weights = {t.name: t for t in model.graph.initializer}
    groups: dict[str, list[str]] = {}
    quantisable = set(op_types)
    for node in model.graph.node:
        if node.op_type not in quantisable or not node.name:
            continue
        if node.op_type in CONV_TYPES:
            key = _conv_kind(node, weights)
        elif node.op_type in PRODUCT_TYPES:
            key = "matmul"
        else:
            key = "other-ops"
        groups.setdefault(key, []).append(node.name)
    return [NodeGroup(key, tuple(nodes)) for key, nodes in sorted(groups.items())]


def time_graphs(paths: dict[str, Path], feed: np.ndarray, threads: int, repeats: int) -> dict[str, float]:
    """p50 ms of each graph on ``feed``, at batch 1, timed in interleaved rounds."""
    sessions = {name: open_session(path, device="cpu", threads=threads) for name, path in paths.items()}
    stats = interleaved_stats({name: (lambda s=s: s.run(feed)) for name, s in sessions.items()},
                              warmup=2, repeats=repeats, rounds=3)  # fmt: skip
    return {name: stats[name]["p50_ms"] for name in paths}


def select_nodes(fp32_graph: Path, groups: Sequence[NodeGroup], quantize_nodes: Callable[[list[str], Path], None],
                 feed: np.ndarray, size: tuple[int, int], work: Path, threads: int = 2, repeats: int = 15,
                 margin: float = MARGIN, timer: Callable[..., dict[str, float]] | None = None,
                 ) -> Selection:  # fmt: skip
    """Measure each group alone in int8 against ``fp32_graph`` (the exported graph a user would run
    otherwise) on ``feed`` (one input of ``size``),
    then the union of those that gain; ``quantize_nodes(nodes, out)`` writes a graph with only
    ``nodes`` quantised; ``timer(paths, feed, threads, repeats)`` gives p50 ms per name (default:
    ONNX Runtime sessions in interleaved rounds). See the module docstring for the procedure."""
    _timed = timer or time_graphs
    if not groups:
        fp32 = _timed({"fp32": fp32_graph}, feed, threads, repeats)["fp32"]
        return Selection([], [], fp32, fp32, size)
    paths = {"fp32": fp32_graph}
    for group in groups:
        paths[group.name] = work / f"group-{group.name}.onnx"
        quantize_nodes(list(group.nodes), paths[group.name])
    alone = _timed(paths, feed, threads, repeats)
    fp32 = alone["fp32"]
    gaining = [g for g in groups if alone[g.name] <= (1 - margin) * fp32]
    rows = [{"group": g.name, "nodes": len(g.nodes), "int8_alone_ms": alone[g.name], "fp32_ms": fp32,
             "ratio": round(alone[g.name] / fp32, 4), "gains": g in gaining} for g in groups]  # fmt: skip
    if not gaining:
        return Selection([], rows, fp32, fp32, size)
    best = min(gaining, key=lambda g: alone[g.name])
    candidates = {"fp32": fp32_graph, best.name: paths[best.name]}
    if len(gaining) > 1:
        candidates["union"] = work / "union.onnx"
        quantize_nodes([n for g in gaining for n in g.nodes], candidates["union"])
    final = _timed(candidates, feed, threads, repeats)
    winner = min(final, key=final.get)
    if winner == "fp32" or final[winner] > (1 - margin) * final["fp32"]:
        return Selection([], rows, final["fp32"], final["fp32"], size)
    chosen = list(gaining) if winner == "union" else [best]
    return Selection([n for g in chosen for n in g.nodes], rows, final["fp32"], final[winner], size,
                     [g.name for g in chosen])  # fmt: skip
