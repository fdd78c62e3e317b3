"""pix2pix's PatchGAN discriminator (Isola et al. 2017, section 3.2.2 and appendix 6.1.2).

Our reading of the "70 x 70" discriminator (pix2pix ``NLayerDiscriminator`` with ``n_layers=3``):
C64-C128-C256-C512 then a 1-channel conv, all 4x4; the first three stride 2, the last two stride
1, padding 1; BatchNorm on every layer but the first and the last; LeakyReLU(0.2). It sees the
input and the (real or generated) output concatenated on channels (a conditional GAN) and returns
one logit per 70 x 70 receptive-field patch. ``width`` (64 in pix2pix) scales every layer, for
small searches on CPU.
"""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN: ``D(x, y)`` -> patch logits of shape (N, 1, H', W')."""

    def __init__(self, in_channels: int, width: int = 64, layers: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        channels = width
        for n in range(1, layers + 1):
            out = width * min(2**n, 8)
            stride = 2 if n < layers else 1
            blocks += [nn.Conv2d(channels, out, 4, stride, 1, bias=False), nn.BatchNorm2d(out), nn.LeakyReLU(0.2)]
            channels = out
        blocks.append(nn.Conv2d(channels, 1, 4, 1, 1))
        self.net = nn.Sequential(*blocks)

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([source, target], dim=1))


def receptive_field(layers: int = 3) -> int:
    """Receptive field in pixels of one output logit (70 for the default 3 layers)."""
    field, jump = 1, 1
    strides = [2] * layers + [1, 1]
    for stride in strides:
        field += 3 * jump
        jump *= stride
    return field
