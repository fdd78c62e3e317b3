"""The supernet twin of :class:`zoo.cells.Cell`: a mixed op on every edge of the full DAG.

Architecture weights are ``nn.Parameter``s in :class:`ArchitectureWeights` (DARTS shares one
alpha per cell type across all cells of that type, so the weights live outside the cells and
are passed to ``forward``). Partial channels follow PC-DARTS (Xu et al. 2020, as the IAC paper
uses it, seed 004 section III): 1/K of the channels go through the mixed op, the rest bypass it
(max-pooled on stride-2 edges), then the channels are shuffled. :func:`derive_cell` turns the
weights into a final genotype cell the way DARTS does (strongest non-``none`` op per edge, the
``k`` strongest edges per node; NAS-ASDet eq. 14 keeps two).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nasseg.zoo.cells import DagCell
from nasseg.zoo.genotype import Cell as CellGenotype
from nasseg.zoo.ops import OPS, create_op

OpChoices = Sequence[str] | Callable[[int, int], Sequence[str]]


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet channel shuffle (PC-DARTS mixes bypassed and processed channels with it)."""
    batch, channels, height, width = x.shape
    x = x.view(batch, groups, channels // groups, height, width).transpose(1, 2)
    return x.reshape(batch, channels, height, width)


class MixedOp(nn.Module):
    """Weighted sum of candidate ops on one edge; ``partial_channels=K`` sends C/K channels through."""

    def __init__(self, C: int, stride: int, op_names: Sequence[str], affine: bool = False, partial_channels: int = 1):
        super().__init__()
        if C % partial_channels:
            raise ValueError(f"MixedOp: {C} channels cannot be split into {partial_channels} parts")
        self.op_names = tuple(op_names)
        self.stride = stride
        self.partial_channels = partial_channels
        width = C // partial_channels
        ops = []
        for name in self.op_names:
            op = create_op(name, width, width, stride, affine)
            if OPS[name].is_pool:  # DARTS: a BN after pools in the supernet
                op = nn.Sequential(op, nn.BatchNorm2d(width, affine=False))
            ops.append(op)
        self.ops = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if self.partial_channels == 1:
            return _weighted_sum(self.ops, x, weights)
        width = x.size(1) // self.partial_channels
        processed = _weighted_sum(self.ops, x[:, :width], weights)
        bypass = x[:, width:]
        if self.stride == 2:
            bypass = F.max_pool2d(bypass, 2, 2, ceil_mode=True)
        return channel_shuffle(torch.cat([processed, bypass], dim=1), self.partial_channels)


def _weighted_sum(ops: nn.ModuleList, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    total = weights[0] * ops[0](x)
    for weight, op in zip(weights[1:], ops[1:], strict=True):
        total = total + weight * op(x)
    return total


class MixedCell(DagCell):
    """Continuous cell: node k takes a mixed op from every earlier state, all nodes concatenated.

    ``ops`` is one op list for every edge or a function ``(node, source) -> op names`` (progressive
    pruning keeps a different subset per edge). ``forward(s0, s1, weights, edge_weights=None)``
    takes one weight vector per edge (in node order, then source order; a 2-D tensor works) and
    optionally one scalar per edge (PC-DARTS edge normalisation).
    """

    def __init__(
        self,
        steps: int,
        C_pp: int,
        C_p: int,
        C: int,
        reduction: bool,
        reduction_prev: bool,
        ops: OpChoices,
        residual: bool = False,
        affine: bool = False,
        partial_channels: int = 1,
    ):
        node_inputs = [list(range(node + 2)) for node in range(steps)]
        super().__init__(
            node_inputs, list(range(2, steps + 2)), C_pp, C_p, C, reduction, reduction_prev, residual, affine
        )
        choose = ops if callable(ops) else (lambda node, source: ops)
        self.edges = nn.ModuleList(
            nn.ModuleList(
                MixedOp(C, self.edge_stride(source), choose(node, source), affine, partial_channels)
                for source in inputs
            )
            for node, inputs in enumerate(node_inputs)
        )
        for inputs, node_edges in zip(node_inputs, self.edges, strict=True):
            for edge in node_edges:  # the derivation keeps 2 of a node's inputs (for expected latency)
                edge.keep_probability = min(1.0, 2 / len(inputs))
        self._offsets = [sum(len(inputs) for inputs in node_inputs[:node]) for node in range(steps)]
        self.num_edges = sum(len(inputs) for inputs in node_inputs)

    def edge_op_names(self) -> list[tuple[str, ...]]:
        """Candidate op names of every edge, in the flat edge order of the weights."""
        return [edge.op_names for node in self.edges for edge in node]

    def run_edge(
        self,
        node: int,
        index: int,
        x: torch.Tensor,
        weights: Sequence[torch.Tensor] | torch.Tensor | None = None,
        edge_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if weights is None:
            raise TypeError("MixedCell.forward needs weights=... (one vector per edge)")
        flat = self._offsets[node] + index
        y = self.edges[node][index](x, weights[flat])
        if edge_weights is not None:
            y = y * edge_weights[flat]
        return y


def full_dag_edges(steps: int) -> int:
    """Number of edges of a full DAG cell with ``steps`` nodes (14 for 4 nodes)."""
    return sum(node + 2 for node in range(steps))


def tan_capped_softmax(beta: torch.Tensor, cap: float = 0.5) -> torch.Tensor:
    """IAC edge normalisation of one node's incoming edges (seed 004, eqs. 6-10).

    Eq. 6: ``psi_hat = softmax(tan(beta))`` (written with the max subtracted, which is how a
    softmax is computed anyway). Eq. 7: if ``max(psi_hat) <= cap`` it is the answer. Eqs. 8-10:
    otherwise the strongest edge gets exactly ``cap`` and the others share ``1 - cap`` in
    proportion to ``psi_hat`` (the paper writes 0.5 for both, with ``cap = 0.5``), so at most two
    edges dominate and the weights still sum to 1.
    """
    t = torch.tan(beta)
    psi = torch.softmax(t - t.max(), dim=-1)
    is_top = F.one_hot(torch.argmax(psi), psi.numel()).to(torch.bool)
    rest = psi.masked_fill(is_top, 0.0)
    capped = torch.where(is_top, torch.full_like(psi, cap), (1.0 - cap) * rest / rest.sum().clamp_min(1e-12))
    return torch.where(psi.max() > cap, capped, psi)


class ArchitectureWeights(nn.Module):
    """Alpha (one row of op logits per edge) per cell type, and optional beta per edge.

    ``init_scale=1e-3`` reproduces DARTS' ``1e-3 * randn``; ``init_scale=None`` initialises to
    ones (the IAC paper). ``op_weights`` is the softmax over ops; ``edge_weights`` the softmax of
    beta over each node's incoming edges (PC-DARTS, ``edge_norm="softmax"``) or the IAC paper's
    tan-rescaled, 0.5-capped normalisation (``edge_norm="tan"``, :func:`tan_capped_softmax`).
    """

    def __init__(
        self,
        cell_types: Sequence[str],
        steps: int,
        num_ops: int,
        edge_normalisation: bool = False,
        init_scale: float | None = 1e-3,
        edge_norm: str = "softmax",
    ):
        super().__init__()
        if edge_norm not in ("softmax", "tan"):
            raise ValueError(f"edge_norm must be 'softmax' or 'tan', got {edge_norm!r}")
        self.steps = steps
        self.edge_norm = edge_norm
        edges = full_dag_edges(steps)

        def init(*shape: int) -> nn.Parameter:
            data = torch.ones(*shape) if init_scale is None else init_scale * torch.randn(*shape)
            return nn.Parameter(data)

        self.alphas = nn.ParameterDict({kind: init(edges, num_ops) for kind in cell_types})
        self.betas = nn.ParameterDict({kind: init(edges) for kind in cell_types}) if edge_normalisation else None

    def op_weights(self, kind: str) -> torch.Tensor:
        """Softmax of alpha over the ops of every edge: shape (edges, ops)."""
        return F.softmax(self.alphas[kind], dim=-1)

    def edge_weights(self, kind: str) -> torch.Tensor | None:
        """Beta normalised over each node's incoming edges (softmax, or IAC's eqs. 6-10), or None
        without edge normalisation."""
        if self.betas is None:
            return None
        beta = self.betas[kind]
        normalise = tan_capped_softmax if self.edge_norm == "tan" else (lambda b: F.softmax(b, dim=-1))
        parts, start = [], 0
        for node in range(self.steps):
            parts.append(normalise(beta[start : start + node + 2]))
            start += node + 2
        return torch.cat(parts)


def derive_cell(
    weights: torch.Tensor | Sequence[Sequence[float]],
    op_names: Sequence[str] | Sequence[Sequence[str]],
    steps: int,
    edge_weights: torch.Tensor | Sequence[float] | None = None,
    k: int = 2,
    exclude: Sequence[str] = ("none",),
    residual: bool = False,
    edge_rank: Sequence[float] | None = None,
) -> CellGenotype:
    """DARTS' discretisation: per edge the strongest op not in ``exclude``; per node the ``k``
    edges whose strongest op weighs most (times the edge weight, if given), strongest first;
    all nodes concatenated. ``edge_rank`` (one score per edge) ranks a node's edges instead
    (perturbation-based selection scores edges apart from their ops)."""
    rows = [list(map(float, row)) for row in weights]
    per_edge_names = (
        [list(op_names)] * len(rows) if op_names and isinstance(op_names[0], str) else [list(n) for n in op_names]
    )
    scale = [1.0] * len(rows) if edge_weights is None else [float(w) for w in edge_weights]
    nodes, start = [], 0
    for node in range(steps):
        candidates = []
        for source in range(node + 2):
            row, names = rows[start + source], per_edge_names[start + source]
            allowed = [j for j, name in enumerate(names) if name not in exclude]
            if not allowed:
                continue
            best = max(allowed, key=lambda j: row[j])
            strength = row[best] * scale[start + source] if edge_rank is None else float(edge_rank[start + source])
            candidates.append((strength, names[best], source))
        start += node + 2
        chosen = sorted(candidates, key=lambda c: -c[0])[:k]
        nodes.append([[name, source] for _, name, source in chosen])
    return CellGenotype(nodes=nodes, concat=list(range(2, steps + 2)), residual=residual)
