"""Segmentation heads on cell-stack features: NAS-ASDet adaptive fusion and DeepLabv3 ASPP.

Both take backbone features and return logits at the input size (bilinear upsampling,
``align_corners=False``). They know nothing of cells; :mod:`zoo.families.cellnet` wires them to
:class:`~zoo.families.cellnet.CellStack`. Modules used only in training are named ``auxiliary``
so that :func:`zoo.profile` counts them separately.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def upsample_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of ``x`` to ``size`` (a no-op when the size already matches)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class ConvBNReLU(nn.Sequential):
    """Conv -> BN -> ReLU (the DeepLab ordering, unlike the cells' ReLU -> conv -> BN)."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int = 1, dilation: int = 1):
        padding = dilation * (kernel_size // 2)
        super().__init__(
            nn.Conv2d(C_in, C_out, kernel_size, padding=padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(C_out),
            nn.ReLU(inplace=True),
        )


class ImagePooling(nn.Module):
    """ASPP's image-level branch: global average pool, 1x1 conv + BN + ReLU, upsample back."""

    def __init__(self, C_in: int, C_out: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = ConvBNReLU(C_in, C_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample_to(self.conv(self.pool(x)), x.shape[-2:])


class ASPP(nn.Module):
    """Atrous Spatial Pyramid Pooling as DeepLabv3 (Chen et al. 2017, section 3.3) builds it: a 1x1
    conv, one 3x3 atrous conv per rate and image pooling, each ``channels`` wide with BN; concatenated
    and projected by a 1x1 conv + BN + ReLU. RENAS (seed 001, section 5.4) uses it unchanged."""

    def __init__(self, C_in: int, channels: int, rates: Sequence[int]):
        super().__init__()
        self.branches = nn.ModuleList(
            [ConvBNReLU(C_in, channels, 1)]
            + [ConvBNReLU(C_in, channels, 3, dilation=rate) for rate in rates]
            + [ImagePooling(C_in, channels)]
        )
        self.project = ConvBNReLU(channels * len(self.branches), channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))


class DeepLabV3Head(nn.Module):
    """ASPP, a 1x1 classifier, and bilinear upsampling of the logits to the input size."""

    def __init__(self, C_in: int, num_classes: int, channels: int, rates: Sequence[int]):
        super().__init__()
        self.aspp = ASPP(C_in, channels, rates)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, feature: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        return upsample_to(self.classifier(self.aspp(feature)), size)


class ImportanceGate(nn.Module):
    """Learned per-channel importance of the fused map (NAS-ASDet, seed 003, eqs. 7-9):
    ``V = avg_pooling(F)``, ``V' = ReLU(FC(V))``, ``V_f = sigmoid(V')``, ``F_enhance = V_f x F``.

    One fully connected layer, as eq. 7 writes it (not an SE bottleneck). Read literally, sigmoid
    after ReLU puts every weight in [0.5, 1): a channel can be halved, never switched off.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, channels)

    def weights(self, fused: torch.Tensor) -> torch.Tensor:
        """``V_f``: one weight per sample and channel, shape (N, C)."""
        return self.weights_of_pooled(self.pool(fused).flatten(1))

    def weights_of_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        """``V_f`` from ``V`` = the channel means of the fused map, shape (N, C)."""
        return torch.sigmoid(F.relu(self.fc(pooled)))

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        return fused * self.weights(fused)[:, :, None, None]


class AdaptiveFusionHead(nn.Module):
    """NAS-ASDet's network-level head (seed 003, section 3.2.2, eqs. 5-10, and eq. 16).

    Every level Fea_i is resized to Fea_1 (eq. 5), the levels are concatenated (eq. 6) and
    weighted by :class:`ImportanceGate` (eqs. 7-9); a 1x1 conv predicts and the logits are upsampled
    to the input size (eq. 10: ``upsample^2``, since Fea_1 is at half the input). The paper gives
    no classifier; a bilinear resize commutes with a 1x1 conv, so predicting before upsampling
    gives the same logits at a quarter of the cost.

    With ``deep_supervision``, training-mode calls also return one prediction per level
    ("the branch loss of the i-th feature map", eq. 16): a 1x1 conv on Fea_i, upsampled to the
    input size. Those classifiers are the ``auxiliary`` modules.

    Computed in an order that gives the same logits without the fused map (issue 19: at 256 px the
    literal order spent 85 % of the cell net's ONNX Runtime time resizing, concatenating, pooling
    and gating a map of every level's channels at Fea_1's resolution, 130 MB per image):

    - the gate's input ``V`` is the channel means of each level at its own resolution. A bilinear
      resize (``align_corners=False``) by an integer factor gives every source pixel the same total
      weight, so these means equal those of the resized levels whenever the level sides divide
      Fea_1's, which every input of a multiple of the net's divisor gives (training crops,
      :func:`zoo.training.trainer.evaluate`, the ONNX graphs); elsewhere they differ at the borders;
    - the 1x1 classifier, the gate (a per-channel scale) and the resize are all linear per channel
      and commute, so each level is gated and classified at its own resolution (``num_classes``
      channels), and only the logits are resized and summed.
    """

    def __init__(self, level_channels: Sequence[int], num_classes: int, deep_supervision: bool = True):
        super().__init__()
        fused = sum(level_channels)
        self.gate = ImportanceGate(fused)
        self.classifier = nn.Conv2d(fused, num_classes, 1)
        self.auxiliary = (
            nn.ModuleList(nn.Conv2d(C, num_classes, 1) for C in level_channels) if deep_supervision else None
        )

    def forward(self, levels: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor | tuple[torch.Tensor, ...]:
        level1 = levels[0].shape[-2:]
        weights = self.gate.weights_of_pooled(torch.cat([level.mean(dim=(2, 3)) for level in levels], dim=1))
        logits, start = None, 0
        for level in levels:
            end = start + level.shape[1]
            gated = level * weights[:, start:end, None, None]
            part = upsample_to(F.conv2d(gated, self.classifier.weight[:, start:end]), level1)
            logits = part if logits is None else logits + part
            start = end
        logits = upsample_to(logits + self.classifier.bias[None, :, None, None], size)
        if self.auxiliary is None or not self.training:
            return logits
        branches = [upsample_to(branch(level), size) for branch, level in zip(self.auxiliary, levels, strict=True)]
        return (logits, *branches)
