"""``unet``: the pix2pix U-Net generator, parametrised by encoder widths and skip bits.

The U-Net translator GA (seed 002, section 3.1) searches the channel width of every encoder
level and whether each of the L - 1 inner levels keeps its skip connection; the decoder mirrors
the encoder. Layers follow pix2pix's ``UnetSkipConnectionBlock`` (Isola et al. 2017): 4x4
stride-2 convs; encoder LeakyReLU(0.2)-conv-norm (no norm on the outermost and innermost level);
decoder ReLU-transposed conv-norm, dropout on the ``dropout_layers`` blocks just outside the
innermost one; bias only where there is no batch norm. With ``channels = [64, 128, 256, 512,
512, 512, 512, 512]`` and every skip on, this is pix2pix ``unet_256``. A level without its skip
feeds the decoder only the upsampled features (the concatenation is dropped, and so are the
input channels it would have added). Translation nets end in tanh; segmentation nets output
logits.
"""

from __future__ import annotations

import torch
from torch import nn

from nasseg.zoo.genotype import Genotype, UNetArch


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    return nn.Identity()


class UNetGenerator(nn.Module):
    """Encoder ``downs[i]`` and decoder ``ups[i]`` per level i (0 = outermost)."""

    def __init__(self, arch: UNetArch, in_channels: int, out_channels: int, tanh: bool):
        super().__init__()
        widths, levels = arch.channels, len(arch.channels)
        self.skips = [False, *arch.skips]  # the outermost level never concatenates
        use_bias = arch.norm != "batch"
        k, s = arch.kernel, arch.stride
        downs, ups = [], []
        for i in range(levels):
            c_in = in_channels if i == 0 else widths[i - 1]
            conv = nn.Conv2d(c_in, widths[i], k, s, 1, bias=use_bias)
            if i == 0:
                downs.append(nn.Sequential(conv))
            elif i == levels - 1:
                downs.append(nn.Sequential(nn.LeakyReLU(0.2), conv))
            else:
                downs.append(nn.Sequential(nn.LeakyReLU(0.2), conv, _norm(arch.norm, widths[i])))
        first_dropout = levels - 1 - arch.dropout_layers
        for i in range(levels):
            up_in = widths[i] if i == levels - 1 else widths[i] * (2 if self.skips[i + 1] else 1)
            if i == 0:
                layers = [nn.ReLU(), nn.ConvTranspose2d(up_in, out_channels, k, s, 1)]
                if tanh:
                    layers.append(nn.Tanh())
            else:
                layers = [
                    nn.ReLU(),
                    nn.ConvTranspose2d(up_in, widths[i - 1], k, s, 1, bias=use_bias),
                    _norm(arch.norm, widths[i - 1]),
                ]
                if arch.dropout > 0 and first_dropout <= i < levels - 1:
                    layers.append(nn.Dropout(arch.dropout))
            ups.append(nn.Sequential(*layers))
        self.downs = nn.ModuleList(downs)
        self.ups = nn.ModuleList(ups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inputs = []
        for down in self.downs:
            inputs.append(x)
            x = down(x)
        for i in reversed(range(len(self.ups))):
            x = self.ups[i](x)
            if self.skips[i]:
                x = torch.cat([inputs[i], x], dim=1)
        return x


def build(genotype: Genotype) -> nn.Module:
    """Build a ``unet`` genotype (tanh output for translation tasks)."""
    task = genotype.task
    return UNetGenerator(genotype.arch, task.in_channels, task.num_classes, tanh=task.kind == "translation")


def divisor(genotype: Genotype) -> int:
    """Every level halves the size: H and W must be multiples of 2 ** levels."""
    return 2 ** len(genotype.arch.channels)
