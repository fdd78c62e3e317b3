"""The one cell implementation: a DAG of edges over two preprocessed inputs.

:class:`DagCell` holds everything a cell is (preprocessing of the two inputs, the node loop,
concatenation, the optional residual of NAS-ASDet eq. 3); subclasses say only what an edge is.
:class:`Cell` is the final-net cell (one op per edge, from a genotype); its supernet twin
:class:`zoo.supernet.MixedCell` puts a mixed op on every edge of the full DAG.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import nn

from nasseg.zoo.genotype import Cell as CellGenotype
from nasseg.zoo.ops import FactorizedReduce, Identity, ReLUConvBN, create_op, shape_adapter


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Drop whole samples of an edge's output with probability ``drop_prob`` (DARTS/NASNet)."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class DagCell(nn.Module, ABC):
    """Shared wiring of every cell: subclasses fill ``self.edges[node][i]`` and ``run_edge``.

    Args:
        node_inputs: for node k (index k - 2), the input index of each of its edges.
        concat: the states concatenated into the output (``multiplier = len(concat)``).
        C_pp, C_p: channels of the previous-previous and previous cell outputs.
        C: channels of every node.
        reduction: edges from inputs 0 and 1 run at stride 2.
        reduction_prev: input 0 is at twice the resolution of input 1 (factorized reduce).
        residual: add input 1, shape-matched, to the output (NAS-ASDet eq. 3).
    """

    def __init__(
        self,
        node_inputs: Sequence[Sequence[int]],
        concat: Sequence[int],
        C_pp: int,
        C_p: int,
        C: int,
        reduction: bool,
        reduction_prev: bool,
        residual: bool = False,
        affine: bool = True,
    ):
        super().__init__()
        self.reduction = reduction
        self.node_inputs = [list(inputs) for inputs in node_inputs]
        self.concat = list(concat)
        self.multiplier = len(self.concat)
        self.C = C
        self.C_out = C * self.multiplier
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(C_pp, C, affine)
        else:
            self.preprocess0 = ReLUConvBN(C_pp, C, 1, 1, 0, affine)
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0, affine)
        self.residual = shape_adapter(C_p, self.C_out, self.edge_stride(0), affine) if residual else None

    def edge_stride(self, source: int) -> int:
        """Edges that read a cell input run at stride 2 in a reduction cell."""
        return 2 if self.reduction and source < 2 else 1

    @abstractmethod
    def run_edge(self, node: int, index: int, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """Output of edge ``index`` of node ``node`` (0-based) on ``x``."""

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, **kwargs) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node, inputs in enumerate(self.node_inputs):
            total = self.run_edge(node, 0, states[inputs[0]], **kwargs)
            for index in range(1, len(inputs)):
                total = total + self.run_edge(node, index, states[inputs[index]], **kwargs)
            states.append(total)
        out = torch.cat([states[i] for i in self.concat], dim=1)
        if self.residual is not None:
            out = out + self.residual(s1)
        return out


class Cell(DagCell):
    """A final-net cell built from a genotype cell: one op from the op table per edge."""

    def __init__(
        self,
        genotype: CellGenotype,
        C_pp: int,
        C_p: int,
        C: int,
        reduction: bool,
        reduction_prev: bool,
        affine: bool = True,
    ):
        super().__init__(
            [[source for _, source in edges] for edges in genotype.nodes],
            genotype.output_nodes(),
            C_pp,
            C_p,
            C,
            reduction,
            reduction_prev,
            genotype.residual,
            affine,
        )
        self.edges = nn.ModuleList(
            nn.ModuleList(create_op(op, C, C, self.edge_stride(source), affine) for op, source in edges)
            for edges in genotype.nodes
        )

    def run_edge(self, node: int, index: int, x: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        op = self.edges[node][index]
        y = op(x)
        if self.training and drop_prob > 0.0 and not isinstance(op, Identity):
            y = drop_path(y, drop_prob)
        return y
