"""``cellnet``: stacked DARTS-style cells (DARTS, RENAS, NAS-ASDet final nets).

The layout is DARTS' ``NetworkCIFAR`` / ``NetworkImageNet`` (itself NASNet's): a stem, ``layers``
cells with the channel count doubled at each reduction (by default at 1/3 and 2/3 of the depth),
each cell reading the outputs of the two cells before it. RENAS genotypes have no ``reduce`` cell:
the normal cell runs at stride 2 where a reduction is due (seed 001, section 3.1). The auxiliary
head (DARTS, weight 0.4 in training) sits after the last reduction cell and runs only in training
mode; it is counted separately in reports.

Three heads share one :class:`CellStack` (the head modules live in :mod:`zoo.heads`):

- ``classifier``: global pooling and a linear layer (DARTS, RENAS on CIFAR/ImageNet).
- ``fusion`` (NAS-ASDet, seed 003, section 3.2.2): the last cell output at each resolution is a
  level Fea_i ("The last layer features of each level {Fea_1, ..., Fea_5}"); the levels are
  fused with learned channel importance. The paper's net ("4 normal cells and 4 reduction
  cells", 4.1.5; alternating normal, reduction, ..., eq. 4) with ``stem="stride2"`` and
  ``reduction_layers=[1, 3, 5, 7]`` gives Fea_1..Fea_4 = the normal cells 0, 2, 4, 6 at 1/2 ..
  1/16 and Fea_5 = the last reduction cell at 1/32, matching eq. 5's factors n in {1, 2, 4, 8, 16}
  and eq. 10's final ``upsample^2``. The stem and the width are not in the text (Figure 2 only):
  the stride-2 stem is read off eq. 10, its width (``stem_multiplier``) is DARTS'.
- ``aspp`` (RENAS, seed 001, section 5.4): the stack as a DeepLabv3 backbone at output stride 16
  (or 8); reduction positions past it keep their cell and channel doubling but run at stride 1
  (``CellNetArch.cell_strides``). The striding is removed without dilating those cells (the op
  table has no dilation argument), so they see a smaller receptive field than DeepLabv3's
  dilated ResNet blocks; only the ASPP is atrous.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from nasseg.zoo.cells import Cell, DagCell
from nasseg.zoo.genotype import ASPPHead, CellNetArch, FusionHead, Genotype
from nasseg.zoo.genotype import Cell as CellGenotype
from nasseg.zoo.heads import AdaptiveFusionHead, DeepLabV3Head

#: Builds one cell: ``(genotype cell, C_pp, C_p, C, reduction, reduction_prev) -> DagCell``. The default
#: is :class:`zoo.cells.Cell`; supernets pass a factory of mixed-op cells (``zoo.supernet.MixedCell``).
CellFactory = Callable[[CellGenotype, int, int, int, bool, bool], DagCell]


class CellStack(nn.Module):
    """Stem and cells. ``forward`` returns the last cell output and the outputs of every cell.

    ``channels[i]`` and ``strides[i]`` are the channel count and the output stride (relative to
    the input) of cell ``i``; reduction positions double the channels, and run at stride 2 unless
    :meth:`CellNetArch.cell_strides` says otherwise (past an ASPP output stride).
    """

    def __init__(self, arch: CellNetArch, in_channels: int, cell_factory: CellFactory | None = None):
        super().__init__()
        make_cell = cell_factory or Cell
        C = arch.init_channels
        if arch.stem in ("cifar", "stride2"):
            C_stem = arch.stem_multiplier * C
            stride = 1 if arch.stem == "cifar" else 2
            self.stem0 = nn.Sequential(
                nn.Conv2d(in_channels, C_stem, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(C_stem)
            )
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
        self.strides = arch.output_strides()
        self.cells = nn.ModuleList()
        self.channels: list[int] = []
        C_curr = C
        for i, stride in enumerate(arch.cell_strides()):
            reduction_position = i in self.reductions
            if reduction_position:
                C_curr *= 2
            genotype = arch.reduce if reduction_position and arch.reduce is not None else arch.normal
            cell = make_cell(genotype, C_pp, C_p, C_curr, stride == 2, reduction_prev)
            self.cells.append(cell)
            reduction_prev = stride == 2
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


class _CellNet(nn.Module):
    """A cell stack and a head; forwards ``drop_path_prob`` (set by training loops) to the stack."""

    def __init__(self, genotype: Genotype, cell_factory: CellFactory | None = None):
        super().__init__()
        self.stack = CellStack(genotype.arch, genotype.task.in_channels, cell_factory)

    @property
    def drop_path_prob(self) -> float:
        return self.stack.drop_path_prob

    @drop_path_prob.setter
    def drop_path_prob(self, value: float) -> None:
        self.stack.drop_path_prob = value


class CellClassifier(_CellNet):
    """Cell stack + global pooling + linear classifier; in training also the auxiliary logits."""

    def __init__(self, genotype: Genotype):
        super().__init__(genotype)
        arch: CellNetArch = genotype.arch
        self.aux_position = self.stack.reductions[-1] if self.stack.reductions else arch.layers - 1
        self.auxiliary = None
        if arch.head.auxiliary:
            stride = 3 if arch.stem == "cifar" else 2
            self.auxiliary = AuxiliaryHead(self.stack.channels[self.aux_position], genotype.task.num_classes, stride)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(self.stack.channels[-1], genotype.task.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        last, outputs = self.stack(x)
        logits = self.classifier(self.global_pooling(last).flatten(1))
        if self.auxiliary is not None and self.training:
            return logits, self.auxiliary(outputs[self.aux_position])
        return logits


class CellFusionNet(_CellNet):
    """NAS-ASDet detection net: cell stack + adaptive multi-scale fusion (seed 003, section 3.2.2).

    Returns logits at the input size; in training with deep supervision, the tuple
    ``(main, branch_1, ..., branch_n)``, one branch per level, all at the input size.
    """

    def __init__(self, genotype: Genotype, cell_factory: CellFactory | None = None):
        super().__init__(genotype, cell_factory)
        head: FusionHead = genotype.arch.head
        strides = self.stack.strides
        #: Index of the cell that gives each level: the last cell at each resolution.
        self.level_cells = [i for i in range(len(strides)) if i == len(strides) - 1 or strides[i + 1] != strides[i]]
        channels = [self.stack.channels[i] for i in self.level_cells]
        self.head = AdaptiveFusionHead(channels, genotype.task.num_classes, head.deep_supervision)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        _, outputs = self.stack(x)
        return self.head([outputs[i] for i in self.level_cells], x.shape[-2:])


class CellDeepLab(_CellNet):
    """DeepLabv3 with the cell stack as backbone (RENAS, seed 001, section 5.4): ASPP on the last
    cell output (at ``output_stride``), 1x1 classifier, bilinear upsampling to the input size."""

    def __init__(self, genotype: Genotype):
        super().__init__(genotype)
        head: ASPPHead = genotype.arch.head
        self.head = DeepLabV3Head(self.stack.channels[-1], genotype.task.num_classes, head.channels, head.rates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last, _ = self.stack(x)
        return self.head(last, x.shape[-2:])


_NETS: dict[str, type[_CellNet]] = {"classifier": CellClassifier, "fusion": CellFusionNet, "aspp": CellDeepLab}


def build(genotype: Genotype) -> nn.Module:
    """Build a ``cellnet`` genotype: a classifier, a NAS-ASDet fusion net or a DeepLabv3 net."""
    return _NETS[genotype.arch.head.type](genotype)


def divisor(genotype: Genotype) -> int:
    """Classifiers pool globally and the factorized reduce takes odd sizes: any size builds (1).
    Segmentation heads give logits at the input size: 2 ** (stride-2 steps, stem included)."""
    if genotype.arch.head.type == "classifier":
        return 1
    return genotype.arch.output_strides()[-1]
