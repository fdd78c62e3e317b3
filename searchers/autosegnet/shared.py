"""ENAS shared weights for AutoSegNet: one network holds every op at every position.

Seed 000, section IV-B: "Like ENAS, weight parameters are shared among all the child models". The
shared network is the family's own :class:`zoo.families.autosegnet.AutoSegNet` (stem, layers per
level, HDC layer, bridge, head: no copy of the final-net wiring), built with :class:`SharedLayer`
in place of :class:`~zoo.families.autosegnet.SearchedLayer`. A shared layer's cell
(:class:`OpBankCell`, a :class:`zoo.cells.DagCell`) keeps, for every cell (node), op slot and
possible input, a :class:`zoo.supernet.MixedOp` used as an *op bank*: its ``ops`` hold one module
per op of the table, and a sampled architecture runs only the one it picked (ENAS keeps separate
weights per node, slot and input index, ``micro_child._enas_cell``). The layer's 1x1 projection
is a bank over every cell's channels, of which the architecture's loose cells take their rows
(ENAS ``_enas_layer`` gathers its final-conv weights the same way), so a sampled child computes
exactly what the final net of its genotype computes, with the shared tensors as weights.

Long skips: the up layers are built with room for the skip channels; a child without a skip at a
level feeds zeros there, which is the final net's convolution without those input channels.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nasseg.searchers.autosegnet.space import LAYERS, AutoSegNetSpace
from nasseg.zoo.cells import DagCell
from nasseg.zoo.families.autosegnet import AutoSegNet, _upsample, long_skip_levels
from nasseg.zoo.genotype import AutoSegNetArch
from nasseg.zoo.genotype import Cell as CellGenotype
from nasseg.zoo.ops import AUTOSEGNET_OPS, ReLUConvBN
from nasseg.zoo.supernet import MixedOp

OpKey = tuple[str, int, int, int, int, str]  # (layer, level, node, slot, source, op)


class OpBankCell(DagCell):
    """A layer cell with an op bank on every (node, slot, input); :meth:`select` picks a child."""

    def __init__(self, steps: int, slots: int, ops: Sequence[str], C_pp: int, C_p: int, C: int,
                 reduction_prev: bool) -> None:  # fmt: skip
        super().__init__([[0] * slots for _ in range(steps)], list(range(2, steps + 2)), C_pp, C_p, C,
                         reduction=False, reduction_prev=reduction_prev, affine=True)  # fmt: skip
        self.steps, self.slots, self.ops = steps, slots, tuple(ops)
        self.edges = nn.ModuleList(
            nn.ModuleList(
                nn.ModuleList(MixedOp(C, 1, self.ops, affine=True) for _source in range(node + 2))
                for _slot in range(slots)
            )
            for node in range(steps)
        )
        self.active: list[list[tuple[int, int]]] = []

    def select(self, cell: CellGenotype) -> None:
        """Run ``cell`` from now on: its inputs, its ops, its loose cells concatenated."""
        if cell.steps != self.steps or any(len(edges) != self.slots for edges in cell.nodes):
            raise ValueError(f"op bank has {self.steps} cells of {self.slots} ops; the genotype cell has "
                             f"{[len(edges) for edges in cell.nodes]}")  # fmt: skip
        self.active = [[(self.ops.index(op), source) for op, source in edges] for edges in cell.nodes]
        self.node_inputs = [[source for _, source in edges] for edges in cell.nodes]
        self.concat = cell.output_nodes()

    def op_module(self, node: int, slot: int, source: int, op: str) -> nn.Module:
        """The shared module of ``op`` reading ``source`` in slot ``slot`` of cell ``node``."""
        return self.edges[node][slot][source].ops[self.ops.index(op)]

    def run_edge(self, node: int, index: int, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        op, source = self.active[node][index]
        return self.edges[node][index][source].ops[op](x)


class SharedLayer(nn.Module):
    """Drop-in for :class:`~zoo.families.autosegnet.SearchedLayer` holding every child's weights.

    Same constructor; ``genotype`` only gives the shape (cells, ops per cell); ``ops`` is the op set.
    """

    def __init__(self, genotype: CellGenotype, C_pp: int, C_p: int, C: int, reduction_prev: bool = False,
                 scale_pp: int = 1, scale_p: int = 1, ops: Sequence[str] = AUTOSEGNET_OPS) -> None:  # fmt: skip
        super().__init__()
        self.resize_pp = _upsample(scale_pp)
        self.resize_p = _upsample(scale_p)
        self.C_p, self.C = C_p, C
        self.cell = OpBankCell(genotype.steps, len(genotype.nodes[0]), ops, C_pp, C_p, C, reduction_prev)
        self.project = ReLUConvBN(C * genotype.steps, C, 1, 1, 0)
        self.C_out = C

    def select(self, cell: CellGenotype) -> None:
        self.cell.select(cell)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, skip: torch.Tensor | None = None,
                drop_prob: float = 0.0) -> torch.Tensor:  # fmt: skip
        s0, s1 = self.resize_pp(s0), self.resize_p(s1)
        if skip is not None:
            s1 = torch.cat([s1, skip], dim=1)
        if s1.size(1) < self.C_p:  # long skip off: zeros where its channels would be
            s1 = torch.cat([s1, s1.new_zeros(s1.size(0), self.C_p - s1.size(1), *s1.shape[2:])], dim=1)
        out = self.cell(s0, s1)
        rows = torch.cat([torch.arange((n - 2) * self.C, (n - 1) * self.C) for n in self.cell.concat])
        relu, conv, bn = self.project
        return bn(F.conv2d(relu(out), conv.weight[:, rows.to(out.device)]))


class SharedAutoSegNet(nn.Module):
    """The shared network of a space: ``forward(x, arch)`` runs the child ``arch`` (an arch or genotype)."""

    def __init__(self, space: AutoSegNetSpace) -> None:
        super().__init__()
        self.space = space
        template = space.arch_dict([0] * len(space.decisions))
        template["long_skips"] = [True] * max(space.depth, 1)  # room for every skip
        arch = AutoSegNetArch.model_validate(template)
        self.net = AutoSegNet(arch, space.in_channels, space.num_classes, space.input_size,
                              layer=partial(SharedLayer, ops=space.ops))  # fmt: skip
        self.divisor = 2**self.net.num_down

    def layers(self) -> Iterator[tuple[str, int, SharedLayer]]:
        """``(layer kind, level, shared layer)`` for every searched layer of the net."""
        for level, layer in enumerate(self.net.down):
            yield "down", level, layer
        yield "bridge", 0, self.net.bridge
        for j, layer in enumerate(self.net.up):
            yield "up", self.net.num_down - 1 - j, layer

    def select(self, arch: AutoSegNetArch) -> None:
        """Make ``arch`` the child that :meth:`forward` runs."""
        for kind, _level, layer in self.layers():
            layer.select(getattr(arch, kind))
        self.net.long_skips = long_skip_levels(arch.long_skips, self.net.num_down)

    def forward(self, x: torch.Tensor, arch: Any = None) -> torch.Tensor:
        if arch is not None:
            self.select(getattr(arch, "arch", arch))
        return self.net(x)

    def modules_used(self, arch: Any) -> dict[OpKey, nn.Module]:
        """The op modules child ``arch`` runs, by position: (layer, level, node, slot, source, op)."""
        arch = getattr(arch, "arch", arch)
        used: dict[OpKey, nn.Module] = {}
        for kind, level, layer in self.layers():
            for node, edges in enumerate(getattr(arch, kind).nodes):
                for slot, (op, source) in enumerate(edges):
                    used[(kind, level, node, slot, source, op)] = layer.cell.op_module(node, slot, source, op)
        return used

    def child_state_dict(self, arch: Any) -> dict[str, torch.Tensor]:
        """The state dict of the final net of ``arch`` (``zoo.build_model`` at the search size) holding
        the shared weights the child uses: the child's net inherits what the search trained."""
        arch = getattr(arch, "arch", arch)
        skips = long_skip_levels(arch.long_skips, self.net.num_down)
        layers = {name: module for name, module in self.net.named_children() if name in LAYERS}
        state = {k: v for k, v in self.net.state_dict().items() if k.split(".")[0] not in layers}
        for kind, level, layer in self.layers():
            prefix = (
                kind if kind == "bridge" else f"{kind}.{level if kind == 'down' else self.net.num_down - 1 - level}"
            )
            cell = getattr(arch, kind)
            for key, value in layer.state_dict().items():
                if key.startswith("cell.edges.") or key.startswith("project.1."):
                    continue
                if key == "cell.preprocess1.1.weight" and kind == "up" and not skips[level]:
                    value = value[:, : value.size(1) - self.net.down[level].C_out]
                state[f"{prefix}.{key}"] = value
            for node, edges in enumerate(cell.nodes):
                for slot, (op, source) in enumerate(edges):
                    module = layer.cell.op_module(node, slot, source, op)
                    for key, value in module.state_dict().items():
                        state[f"{prefix}.cell.edges.{node}.{slot}.{key}"] = value
            rows = torch.cat([torch.arange((n - 2) * layer.C, (n - 1) * layer.C) for n in cell.output_nodes()])
            state[f"{prefix}.project.1.weight"] = layer.project[1].weight[:, rows]
        return state


@contextlib.contextmanager
def batch_statistics(model: nn.Module) -> Iterator[None]:
    """Normalise with each batch's statistics without touching the running ones (BN momentum 0).

    Children are scored this way (as ENAS scores them, in training mode): running statistics mix
    every child the shared weights ever ran, so a child's own batch statistics judge it fairer.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None) for m in norms]
    was_training = model.training
    model.train()
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved, strict=True):
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)
        model.train(was_training)


__all__ = ["LAYERS", "OpBankCell", "SharedAutoSegNet", "SharedLayer", "batch_statistics"]
