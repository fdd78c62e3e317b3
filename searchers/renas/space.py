"""The RENAS search space (seed 001, section 3): one cell type of ``B`` blocks, stacked ``N`` times.

A block takes two inputs ``{i1, i2}`` from the two previous cells and the earlier blocks of its cell,
applies two ops ``{o1, o2}`` from :data:`zoo.ops.RENAS_OPS` and adds the results (3.1). In the zoo's
cell representation (:class:`zoo.genotype.Cell`, DARTS convention) a block is a node with two edges
``[(o1, i1), (o2, i2)]``; input 0 is the previous-previous cell ``O_B^{c-2}``, input 1 the previous
cell ``O_B^{c-1}`` and input ``k >= 2`` block ``k - 2`` of the same cell. Unused block outputs are
concatenated (``concat="loose"``, NASNet). There is no reduction cell: the same cell runs at stride
2 where the net reduces (3.2, "We use only one cell type and reduce the feature map size using cells
with stride 2"), which the ``cellnet`` family does when ``reduce`` is absent.

The network (3.3, Fig. 2a) is the NASNet layout: ``N`` cells, a reduction, ``N`` cells, a reduction,
``N`` cells (``layers = 3N + 2``), ``F`` filters in the first cell; ``B``, ``N`` and ``F`` are fixed
while searching (paper: B=5, F=24, N=2, section 4.3). The segmentation task puts the DeepLabv3 ASPP
head on the stack (5.4, output stride 16, with the ImageNet stem of Fig. 2a: stride 8, then one
reduction; the second reduction runs at stride 1); the classification proxy uses the CIFAR stem and
the classifier head (the paper's search setting).

A cell is written as a list of ``B`` blocks ``(i1, i2, o1, o2)``; the controller reads the
``5B``-token string ``i1 i2 o1 o2 A`` per block (4.2).

Departure (an option): ``output_stride=None`` (default) picks DeepLabv3's 16 only where the
features stay at least 8 x 8, else 8, and scales the atrous rates (6, 12, 18 at DeepLabv3's 33 x 33
features) to the feature size. At 64 px, output stride 16 leaves 4 x 4 features that rates of 6+
never see past the centre tap: every child then predicts one constant (issue 14).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from nasseg.searchers.base import SearchError
from nasseg.zoo.genotype import Genotype
from nasseg.zoo.ops import RENAS_OPS

#: The parts of a block a mutation can change, in the order of the paper's block string.
PARTS = ("i1", "i2", "o1", "o2")

Block = tuple[int, int, str, str]
CellSpec = tuple[Block, ...]


@dataclass(frozen=True)
class Mutation:
    """One mutation action (Algorithm 2, ``m^(b)``): block ``block`` (0-based) gets ``value`` in ``part``."""

    block: int
    part: str
    value: int | str

    def to_list(self) -> list[Any]:
        return [self.block, self.part, self.value]

    @classmethod
    def from_list(cls, data: Sequence[Any]) -> Mutation:
        return cls(int(data[0]), str(data[1]), data[2] if data[1] in ("o1", "o2") else int(data[2]))


def aspp_rates(feature_side: int) -> list[int]:
    """DeepLabv3's atrous rates (6, 12, 18 on 33 x 33 features at 513 px) scaled to ``feature_side``,
    distinct and at least 1, 2, 3."""
    rates: list[int] = []
    for rate in (6, 12, 18):
        scaled = max(round(rate * feature_side / 33), (rates[-1] + 1) if rates else 1)
        rates.append(min(scaled, rate))
    return rates


class RenasSpace:
    """Genotypes of the RENAS space on the ``cellnet`` family (see the module docstring).

    Args:
        task: the genotype ``task`` (``kind`` ``segmentation`` -> ASPP head, ``classification`` ->
            classifier head).
        blocks: ``#B``; ``cells``: ``#N`` (cells between reductions); ``init_channels``: ``#F``.
        aspp_channels: width of the ASPP branches (DeepLabv3: 256).
        stem: the stem (default: ``imagenet`` for segmentation, ``cifar`` for classification).
        output_stride: the ASPP head's (8 or 16; default: 16 where the features stay >= 8 x 8, else 8).
    """

    name = "renas"

    def __init__(self, task: dict[str, Any], blocks: int = 5, cells: int = 2, init_channels: int = 24,
                 ops: Sequence[str] = RENAS_OPS, aspp_channels: int = 256,
                 stem: Literal["cifar", "imagenet", "stride2"] | None = None,
                 output_stride: int | None = None) -> None:  # fmt: skip
        if blocks < 1 or cells < 1 or init_channels < 2:
            raise SearchError(f"renas space: blocks, cells >= 1 and init_channels >= 2 needed, got "
                              f"{blocks}, {cells}, {init_channels}")  # fmt: skip
        self.task = dict(task)
        self.kind = self.task.get("kind", "segmentation")
        if self.kind not in ("segmentation", "classification"):
            raise SearchError(f"renas space: task kind {self.kind!r} is neither segmentation nor classification")
        self.blocks = blocks
        self.cells = cells
        self.init_channels = init_channels
        self.ops = tuple(ops)
        self.aspp_channels = aspp_channels
        self.stem = stem or ("imagenet" if self.kind == "segmentation" else "cifar")
        side = min(self.task.get("input_size") or [256, 256])
        if output_stride not in (None, 8, 16):
            raise SearchError(f"renas space: output stride must be 8 or 16, got {output_stride}")
        self.output_stride = output_stride or (16 if side // 16 >= 8 else 8)
        self.rates = aspp_rates(side // self.output_stride)

    # -- the block string ------------------------------------------------------------------------

    def num_inputs(self, block: int) -> int:
        """Input choices of block ``block`` (0-based): the two previous cells and the earlier blocks."""
        return block + 2

    def choices(self, block: int, part: str) -> list[int] | list[str]:
        """What ``part`` of ``block`` may be."""
        return list(range(self.num_inputs(block))) if part in ("i1", "i2") else list(self.ops)

    def sample_cell(self, rng: random.Random) -> CellSpec:
        """A uniformly random cell: every input and op drawn uniformly."""
        return tuple(
            (rng.randrange(self.num_inputs(b)), rng.randrange(self.num_inputs(b)), rng.choice(self.ops),
             rng.choice(self.ops))
            for b in range(self.blocks)
        )  # fmt: skip

    def sample(self, rng: random.Random) -> Genotype:
        return self.genotype(self.sample_cell(rng))

    @staticmethod
    def mutate(cell: CellSpec, mutations: Sequence[Mutation]) -> CellSpec:
        """``cell`` with every mutation applied (a block's other parts are kept)."""
        blocks = [list(block) for block in cell]
        for m in mutations:
            blocks[m.block][PARTS.index(m.part)] = m.value
        return tuple(tuple(block) for block in blocks)  # type: ignore[return-value]

    # -- genotypes -------------------------------------------------------------------------------

    @property
    def layers(self) -> int:
        """``3N + 2`` cells: N normal, reduction, N normal, reduction, N normal (NASNet, Fig. 2a)."""
        return 3 * self.cells + 2

    def reduction_layers(self) -> list[int]:
        return [self.cells, 2 * self.cells + 1]

    def arch(self, cell: CellSpec) -> dict[str, Any]:
        """The ``cellnet`` arch of ``cell`` in this space."""
        nodes = [[[o1, i1], [o2, i2]] for i1, i2, o1, o2 in cell]
        if self.kind == "segmentation":
            head: dict[str, Any] = {"type": "aspp", "output_stride": self.output_stride, "rates": self.rates,
                                    "channels": self.aspp_channels}  # fmt: skip
        else:
            head = {"type": "classifier", "auxiliary": False}
        return {"normal": {"nodes": nodes, "concat": "loose", "residual": False}, "reduce": None,
                "init_channels": self.init_channels, "layers": self.layers, "stem": self.stem,
                "reduction_layers": self.reduction_layers(), "head": head}  # fmt: skip

    def genotype(self, cell: CellSpec, name: str = "renas-search") -> Genotype:
        """The genotype of ``cell`` (validated: a bad cell raises ``GenotypeError``)."""
        if len(cell) != self.blocks:
            raise SearchError(f"renas space: a cell has {self.blocks} blocks, got {len(cell)}")
        return Genotype.from_dict({"schema": "nasseg.genotype/1", "name": name, "family": "cellnet",
                                   "task": self.task, "arch": self.arch(cell),
                                   "provenance": {"searcher": "renas"}}, source="renas space")  # fmt: skip

    def cell(self, genotype: Genotype) -> CellSpec:
        """The block list of a genotype of this space (``SearchError`` when it is not one)."""
        nodes = genotype.arch.normal.nodes
        if genotype.family != "cellnet" or len(nodes) != self.blocks or any(len(edges) != 2 for edges in nodes):
            raise SearchError(f"genotype {genotype.name!r} is not a cell of the renas space ({self.blocks} blocks "
                              "of two edges)")  # fmt: skip
        return tuple((int(a[1]), int(b[1]), str(a[0]), str(b[0])) for a, b in nodes)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "blocks": self.blocks, "cells": self.cells, "init_channels": self.init_channels,
                "ops": list(self.ops), "stem": self.stem, "kind": self.kind,
                "aspp_channels": self.aspp_channels, "output_stride": self.output_stride,
                "rates": self.rates}  # fmt: skip
