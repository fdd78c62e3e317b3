"""The AutoSegNet search space: the decision sequence the controller emits and its genotype.

Seed 000, section III-A: the controller chooses "every operation of each cell", in the order
downsampling layer, bridge layer, upsampling layer, then "whether the skip connection is needed"
(one bit per long skip). A layer has ``cells_per_layer`` cells (genotype nodes) of
``ops_per_cell`` ops (edges) each (section IV-B: "we fix the number of operations for a cell to be
two and the number of cells per layer to be three"). For every op the controller first picks its
input (h[t-1], h[t] or an earlier cell of the layer: "Previous cells might be considered as the
input of the next cell", section III, after Fig. 7) and then the op, ENAS' micro-search order.

The number of long-skip bits is the number of downsampling levels the ``autosegnet`` builder
computes for the search size (:func:`zoo.families.autosegnet.autosegnet_depth`, section IV-B:
"It is not a part of the learning parameters of RNN but is directly computed when the input image
size is given"); bits are bottom level first, as the family reads them. With no downsampling level
(tiny inputs) there is no bit to search and the genotype holds one ``false`` bit (the family
ignores bits beyond the depth).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from nasseg.searchers.base import SearchError
from nasseg.zoo.families.autosegnet import autosegnet_depth
from nasseg.zoo.genotype import AutoSegNetArch, Genotype
from nasseg.zoo.ops import AUTOSEGNET_OPS

LAYERS = ("down", "bridge", "up")


@dataclass(frozen=True)
class Decision:
    """One controller output: ``kind`` (``input``, ``op`` or ``skip``), its choices, where it goes."""

    kind: Literal["input", "op", "skip"]
    choices: int
    layer: str = ""
    node: int = 0
    slot: int = 0


class AutoSegNetSpace:
    """AutoSegNet genotypes at one search size (a :class:`searchers.base.SearchSpace`).

    Args:
        input_size: search image size (H, W); fixes the depth and so the number of skip bits.
        in_channels, num_classes: the genotype task.
        cells_per_layer, ops_per_cell: cells (nodes) per layer, ops (edges) per cell.
        ops: the op set (default the paper's {sep_conv_3x3, sep_conv_5x5, hdc_3x3, skip_connect}).
        stem_channels, min_size, min_ratio: copied into the genotype's arch.
        long_skips: ``searched`` (the paper: one bit per level) or ``all`` (every level keeps its
            long skip, as a U-Net does, and the controller has no skip decision: a departure, issue
            29, where the CPU-scale controller dropped every long skip in 2 of 5 searches, and no
            uniform pick did).
    """

    name = "autosegnet"

    def __init__(
        self,
        input_size: Sequence[int] = (64, 64),
        in_channels: int = 3,
        num_classes: int = 1,
        cells_per_layer: int = 3,
        ops_per_cell: int = 2,
        ops: Sequence[str] = AUTOSEGNET_OPS,
        stem_channels: int = 32,
        min_size: int = 16,
        min_ratio: float = 1 / 32,
        genotype_name: str = "autosegnet-searched",
        long_skips: Literal["searched", "all"] = "searched",
    ) -> None:
        if cells_per_layer < 1 or ops_per_cell < 1:
            raise SearchError(f"autosegnet space: cells per layer and ops per cell must be >= 1, got "
                              f"{cells_per_layer} and {ops_per_cell}")  # fmt: skip
        unknown = [op for op in ops if op not in AUTOSEGNET_OPS]
        if not ops or unknown:
            raise SearchError(f"autosegnet space: ops must come from {', '.join(AUTOSEGNET_OPS)}, got {list(ops)}")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.in_channels, self.num_classes = in_channels, num_classes
        self.cells_per_layer, self.ops_per_cell = cells_per_layer, ops_per_cell
        self.ops = tuple(ops)
        self.stem_channels, self.min_size, self.min_ratio = stem_channels, min_size, min_ratio
        self.genotype_name = genotype_name
        if long_skips not in ("searched", "all"):
            raise SearchError(f"autosegnet space: long_skips must be 'searched' or 'all', got {long_skips!r}")
        self.long_skips = long_skips
        self.depth = autosegnet_depth(self.input_size, min_size, min_ratio)[0]
        self.decisions = self._decisions()

    def _decisions(self) -> list[Decision]:
        decisions = []
        for layer in LAYERS:
            for node in range(self.cells_per_layer):
                for slot in range(self.ops_per_cell):
                    decisions.append(Decision("input", node + 2, layer, node, slot))
                    decisions.append(Decision("op", len(self.ops), layer, node, slot))
        if self.long_skips == "searched":
            decisions += [Decision("skip", 2, "long_skips", level) for level in range(self.depth)]
        return decisions

    @property
    def max_inputs(self) -> int:
        """Most input choices of any op (the last cell reads h[t-1], h[t] or any earlier cell)."""
        return self.cells_per_layer + 1

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "input_size": list(self.input_size), "cells_per_layer": self.cells_per_layer,
                "ops_per_cell": self.ops_per_cell, "ops": list(self.ops), "stem_channels": self.stem_channels,
                "min_size": self.min_size, "min_ratio": self.min_ratio, "depth": self.depth,
                "long_skips": self.long_skips, "decisions": len(self.decisions)}  # fmt: skip

    # -- actions <-> genotype ------------------------------------------------------------------------

    def arch_dict(self, actions: Sequence[int]) -> dict[str, Any]:
        """The ``arch`` of the genotype the action sequence encodes."""
        if len(actions) != len(self.decisions):
            raise SearchError(f"autosegnet space: {len(actions)} actions for {len(self.decisions)} decisions")
        cells: dict[str, list[list[list[Any]]]] = {layer: [[] for _ in range(self.cells_per_layer)] for layer in LAYERS}
        skips: list[bool] = []
        source = 0
        for decision, action in zip(self.decisions, actions, strict=True):
            if not 0 <= action < decision.choices:
                raise SearchError(f"autosegnet space: action {action} out of range for {decision}")
            if decision.kind == "input":
                source = int(action)
            elif decision.kind == "op":
                cells[decision.layer][decision.node].append([self.ops[action], source])
            else:
                skips.append(bool(action))
        if self.long_skips == "all":
            skips = [True] * self.depth
        arch: dict[str, Any] = {layer: {"nodes": nodes, "concat": "loose"} for layer, nodes in cells.items()}
        arch.update(long_skips=skips or [False], stem_channels=self.stem_channels, min_size=self.min_size,
                    min_ratio=self.min_ratio)  # fmt: skip
        return arch

    def arch(self, actions: Sequence[int]) -> AutoSegNetArch:
        """The validated arch of an action sequence."""
        return AutoSegNetArch.model_validate(self.arch_dict(actions))

    def genotype(self, actions: Sequence[int], name: str | None = None) -> Genotype:
        """The ``autosegnet`` genotype of an action sequence, at the search size."""
        task = {"kind": "segmentation", "in_channels": self.in_channels, "num_classes": self.num_classes,
                "input_size": list(self.input_size)}  # fmt: skip
        return Genotype.from_dict({"schema": "nasseg.genotype/1", "name": name or self.genotype_name,
                                   "family": "autosegnet", "task": task, "arch": self.arch_dict(actions)})  # fmt: skip

    def actions(self, genotype: Genotype) -> list[int]:
        """The action sequence of a genotype of this space (inverse of :meth:`genotype`)."""
        arch: AutoSegNetArch = genotype.arch
        actions = []
        for decision in self.decisions:
            if decision.kind == "skip":
                bits = arch.long_skips
                actions.append(int(bool(bits[decision.node])) if decision.node < len(bits) else 0)
                continue
            cell = getattr(arch, decision.layer)
            op, source = cell.nodes[decision.node][decision.slot]
            actions.append(source if decision.kind == "input" else self.ops.index(op))
        return actions

    def sample_actions(self, rng: random.Random) -> list[int]:
        """A uniformly random action sequence."""
        return [rng.randrange(d.choices) for d in self.decisions]

    def sample(self, rng: random.Random) -> Genotype:
        """A uniformly random genotype of the space."""
        return self.genotype(self.sample_actions(rng))
