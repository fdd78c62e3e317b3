"""``cellnet``: stacked DARTS-style cells (DARTS, RENAS, NAS-ASDet final nets).

The layout is DARTS' ``NetworkCIFAR`` / ``NetworkImageNet`` (itself NASNet's): a stem, ``layers``
cells with the channel count doubled at each reduction (by default at 1/3 and 2/3 of the depth),
each cell reading the outputs of the two cells before it. RENAS genotypes have no ``reduce`` cell:
the normal cell runs at stride 2 where a reduction is due (seed 001, section 3.1). The auxiliary
head (DARTS, weight 0.4 in training) sits after the last reduction cell and runs only in training
mode; it is counted separately in reports.

This module builds the ``classifier`` head; the segmentation heads (``aspp``, ``fusion``) reuse
:class:`CellStack` and are built by the segmentation families.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.cells import Cell
from zoo.errors import BuildError
from zoo.genotype import CellNetArch, Genotype


class CellStack(nn.Module):
    """Stem and cells. ``forward`` returns the last cell output and the outputs of every cell."""

    def __init__(self, arch: CellNetArch, in_channels: int):
        super().__init__()
        C = arch.init_channels
        if arch.stem == "cifar":
            C_stem = arch.stem_multiplier * C
            self.stem0 = nn.Sequential(nn.Conv2d(in_channels, C_stem, 3, padding=1, bias=False), nn.BatchNorm2d(C_stem))
            self.stem1 = None
            C_pp, C_p, reduction_prev = C_stem, C_stem, False
        else:
            self.stem0 = nn.Sequential(
                nn.Conv2d(in_channels, C // 2, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(C // 2),
                nn.ReLU(inplace=True),
                nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(C),
            )
            self.stem1 = nn.Sequential(
                nn.ReLU(inplace=False), nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C)
            )
            C_pp, C_p, reduction_prev = C, C, True
        self.reductions = arch.reductions()
        self.cells = nn.ModuleList()
        self.channels: list[int] = []
        C_curr = C
        for i in range(arch.layers):
            reduction = i in self.reductions
            if reduction:
                C_curr *= 2
            genotype = arch.reduce if reduction and arch.reduce is not None else arch.normal
            cell = Cell(genotype, C_pp, C_p, C_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            C_pp, C_p = C_p, cell.C_out
            self.channels.append(cell.C_out)
        self.drop_path_prob = 0.0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        s0 = self.stem0(x)
        s1 = s0 if self.stem1 is None else self.stem1(s0)
        outputs = []
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, drop_prob=self.drop_path_prob)
            outputs.append(s1)
        return s1, outputs


class AuxiliaryHead(nn.Module):
    """DARTS' auxiliary classifier (CIFAR: 5x5 pool stride 3; ImageNet: stride 2), then 1x1 and 2x2
    convs; an adaptive pool makes it take feature maps larger than DARTS' 8x8 / 14x14."""

    def __init__(self, C: int, num_classes: int, stride: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AvgPool2d(5, stride=stride, padding=0, count_include_pad=False),
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class CellClassifier(nn.Module):
    """Cell stack + global pooling + linear classifier; in training also the auxiliary logits."""

    def __init__(self, genotype: Genotype):
        super().__init__()
        arch: CellNetArch = genotype.arch
        self.stack = CellStack(arch, genotype.task.in_channels)
        self.aux_position = self.stack.reductions[-1] if self.stack.reductions else arch.layers - 1
        self.auxiliary = None
        if arch.head.auxiliary:
            stride = 3 if arch.stem == "cifar" else 2
            self.auxiliary = AuxiliaryHead(self.stack.channels[self.aux_position], genotype.task.num_classes, stride)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(self.stack.channels[-1], genotype.task.num_classes)

    @property
    def drop_path_prob(self) -> float:
        return self.stack.drop_path_prob

    @drop_path_prob.setter
    def drop_path_prob(self, value: float) -> None:
        self.stack.drop_path_prob = value

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        last, outputs = self.stack(x)
        logits = self.classifier(self.global_pooling(last).flatten(1))
        if self.auxiliary is not None and self.training:
            return logits, self.auxiliary(outputs[self.aux_position])
        return logits


def build(genotype: Genotype) -> nn.Module:
    """Build a ``cellnet`` genotype."""
    head = genotype.arch.head.type
    if head == "classifier":
        return CellClassifier(genotype)
    raise BuildError(f"genotype {genotype.name!r}: cellnet head {head!r} has no builder in this version yet")


def divisor(genotype: Genotype) -> int:
    """Classifiers pool globally and the factorized reduce takes odd sizes: any size builds."""
    return 1
