"""``autosegnet``: the AutoSegNet encoder-decoder (seed 000, sections III and IV-B).

The net stacks a searched *downsampling layer* (then 2x2 max pooling), a fixed *hybrid dilated
(HDC) layer*, a searched *bridge layer* and searched *upsampling layers* (upsampling first), each
searched layer being one :class:`zoo.cells.Cell` whose nodes are the paper's cells (two ops each)
and whose inputs are h[t-1], h[t], the outputs of the two layers before it. Depth is not in the
genotype: :func:`autosegnet_depth` computes it from the input size. Where each choice comes from:

- Layer kinds and order (section I, Fig. 1 caption): "The searched downsampling layer is followed
  by pooling layers. Upsampling is implemented before the searched upsampling layers. A searched
  bridge layer is added to connect the downsampling part and upsampling part"; softmax after the
  last upsampling layer (left to the loss here: the net returns ``num_classes`` logits).
- Layer cells (section III, after Fig. 7): "each layer contains several cells ... each cell
  includes two operations ... Previous cells might be considered as the input of the next cell
  ... if a cell in a layer is not used as the input of other cells, it will be concatenated to
  become the final output directly" -- a DARTS-convention cell with ``concat = "loose"``.
- Depth (section IV-B): "The final minimum downsampling image size is the maximum value between
  the minimum downsampling image size and size downsampled by the maximum downsampling ratio"
  (defaults 16x16 and 1/32); section III-B: "as the size of the features reaches a specific
  value (for example, 16x16), a hybrid dilated convolution layer will replace the downsampling
  layer"; "encoder and decoder ... symmetric". The depth rule is in :func:`autosegnet_depth`.
- Widths (Fig. 6 caption, the 10-layer example at 512x512x1): layer outputs 256x256x32,
  128x128x64, 64x64x128, 32x32x256 (downsampling), 32x32x256 (HDC), 32x32x512 (bridge), then
  64x64x256, 128x128x128, 256x256x64 (upsampling) and the 512x512x1 output. So downsampling
  level i has ``stem_channels * 2**i`` channels, the HDC layer keeps its input's, the bridge
  doubles them, and upsampling level i mirrors downsampling level i.

Assumptions (the figures are missing from our copy of the paper):

- Every searched layer ends in a 1x1 ReLU-conv-BN projecting the concatenated cells to the
  layer width (ENAS ``final_conv``; otherwise Fig. 6's widths cannot come out of a concatenation
  of three cells). Node width inside a layer = the layer width.
- A stem (3x3 conv + BN, ``stem_channels``) feeds h[t-1] = h[t] of the first layer, as in ENAS
  and DARTS; Fig. 6 shows no stem, but a cell's ReLU preprocessing must not see raw pixels.
- The HDC layer is not searched (Fig. 1 names it apart from the searched layers): one
  ``hdc_3x3`` op of the op table (ReLU, depthwise dilations 1/2/3 summed, pointwise, BN).
- The input of a layer at twice its resolution (h[t-1] of a downsampling layer) goes through the
  cell's factorized reduce (DARTS ``reduction_prev``); inputs at lower resolution (upsampling
  layers) are upsampled bilinearly (x2 for h[t], x4 for h[t-1] after the first up layer).
- A long skip (section III-B: "Inter-cell skip connections (long skip connection) restore full
  spatial resolution"; U-Net "performs feature fusion by stitching in channel dimension",
  section II) concatenates the pre-pooling output of downsampling level i to the upsampled h[t]
  of upsampling level i, the level at the same resolution.
- Long-skip bits map to levels *from the bottom*: ``long_skips[0]`` is the level next to the
  HDC/bridge layers, ``long_skips[1]`` the one above, and so on; bits beyond the depth are
  ignored and missing bits are off. Reason: a larger input adds downsampling levels at the
  high-resolution end while the bottom stays at the same feature size (32x32 at both the
  paper's search size 64 and training size 512), so the bits searched at 64 keep meaning the
  same bottom levels at 512. :func:`long_skip_levels` resolves the bits for a depth.
- Pooling is 2x2 max pooling (Fig. 1 says "pooling"; U-Net's choice).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from nasseg.zoo.cells import Cell
from nasseg.zoo.genotype import AutoSegNetArch, Genotype
from nasseg.zoo.genotype import Cell as CellGenotype
from nasseg.zoo.ops import ReLUConvBN, create_op

__all__ = ["AutoSegNet", "SearchedLayer", "autosegnet_depth", "build", "divisor", "long_skip_levels"]


def autosegnet_depth(input_size: int | Sequence[int], min_size: int = 16, min_ratio: float = 1 / 32) -> tuple[int, int]:
    """``(num_downsampling_layers, num_hdc_layers)`` for an input of ``input_size`` (side or (H, W)).

    Per side, the final minimum size is ``max(min_size, side * min_ratio)`` (section IV-B). The
    net downsamples while the pooled size stays *above* it; the downsampling that would reach it
    is replaced by one HDC layer (section III-B, Fig. 1). This reproduces Fig. 6: at 512 with the
    defaults the final minimum is 16, so 4 downsampling layers (512 -> 32) and an HDC layer at
    32x32. There is always exactly one HDC layer (Fig. 1 and 6 show one; the text says "a hybrid
    dilated convolution layer will replace the downsampling layer"). A non-square input takes the
    smaller depth of its two sides, so neither side falls to its minimum.
    """
    sides = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(sides) != 2 or any(side < 1 for side in sides):
        raise ValueError(f"input_size must be a positive side or (height, width), got {input_size!r}")
    if min_size < 1 or not 0 < min_ratio <= 1:
        raise ValueError(f"need min_size >= 1 and 0 < min_ratio <= 1, got {min_size}, {min_ratio}")
    depths = []
    for side in sides:
        floor = max(min_size, side * min_ratio)
        depth = 0
        while side / 2 ** (depth + 1) > floor:
            depth += 1
        depths.append(depth)
    return min(depths), 1


def long_skip_levels(bits: Sequence[bool], num_levels: int) -> list[bool]:
    """Skip flag of each level, top (full resolution) first, from bits given bottom first.

    Missing bits are off, extra bits are ignored (see the module docstring for why).
    """
    bottom_first = [bool(bits[i]) if i < len(bits) else False for i in range(num_levels)]
    return bottom_first[::-1]


class SearchedLayer(nn.Module):
    """One searched layer: resize the two inputs, run the layer cell, project to ``C`` channels.

    Args:
        genotype: the layer cell (nodes = the paper's cells).
        C_pp, C_p: channels of h[t-1] and h[t] (``C_p`` includes a concatenated long skip).
        C: node width and output channels.
        reduction_prev: h[t-1] is at twice the layer's resolution (factorized reduce in the cell).
        scale_pp, scale_p: upsampling factors of h[t-1] and h[t] (1: none).
    """

    def __init__(
        self,
        genotype: CellGenotype,
        C_pp: int,
        C_p: int,
        C: int,
        reduction_prev: bool = False,
        scale_pp: int = 1,
        scale_p: int = 1,
    ):
        super().__init__()
        self.resize_pp = _upsample(scale_pp)
        self.resize_p = _upsample(scale_p)
        self.cell = Cell(genotype, C_pp, C_p, C, reduction=False, reduction_prev=reduction_prev)
        self.project = ReLUConvBN(self.cell.C_out, C, 1, 1, 0)
        self.C_out = C

    def forward(
        self, s0: torch.Tensor, s1: torch.Tensor, skip: torch.Tensor | None = None, drop_prob: float = 0.0
    ) -> torch.Tensor:
        s0, s1 = self.resize_pp(s0), self.resize_p(s1)
        if skip is not None:
            s1 = torch.cat([s1, skip], dim=1)
        return self.project(self.cell(s0, s1, drop_prob=drop_prob))


def _upsample(scale: int) -> nn.Module:
    if scale == 1:
        return nn.Identity()
    return nn.Upsample(scale_factor=scale, mode="bilinear", align_corners=False)


class AutoSegNet(nn.Module):
    """Stem, ``down[i]`` (+ max pool), ``hdc``, ``bridge``, ``up[j]`` (level ``D - 1 - j``), 1x1 head.

    ``num_down`` and ``long_skips`` (per level, top first) are fixed at build time from
    ``input_size``; the built net takes any input whose sides are multiples of ``2 ** num_down``.
    ``layer`` makes each searched layer (default :class:`SearchedLayer`); a search passes a class
    with the same constructor whose cell holds every op at every position (ENAS shared weights).
    """

    def __init__(
        self,
        arch: AutoSegNetArch,
        in_channels: int,
        num_classes: int,
        input_size: Sequence[int],
        layer: Callable[..., nn.Module] | None = None,
    ):
        super().__init__()
        make_layer = layer or SearchedLayer
        self.num_down, num_hdc = autosegnet_depth(input_size, arch.min_size, arch.min_ratio)
        self.long_skips = long_skip_levels(arch.long_skips, self.num_down)
        C0 = arch.stem_channels
        widths = [C0 * 2**i for i in range(self.num_down)]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C0, 3, padding=1, bias=False), nn.BatchNorm2d(C0))
        self.pool = nn.MaxPool2d(2)
        c_pp, c_p = C0, C0
        self.down = nn.ModuleList()
        for i, width in enumerate(widths):
            self.down.append(make_layer(arch.down, c_pp, c_p, width, reduction_prev=i > 0))
            c_pp, c_p = c_p, width
        self.hdc = nn.ModuleList(create_op("hdc_3x3", c_p, c_p, 1) for _ in range(num_hdc))
        c_pp = c_p
        self.bridge = make_layer(arch.bridge, c_pp, c_p, C0 * 2**self.num_down)
        c_pp, c_p = c_p, self.bridge.C_out
        self.up = nn.ModuleList()
        for j, level in enumerate(reversed(range(self.num_down))):
            skip = widths[level] if self.long_skips[level] else 0
            up = make_layer(arch.up, c_pp, c_p + skip, widths[level], scale_pp=2 if j == 0 else 4, scale_p=2)
            self.up.append(up)
            c_pp, c_p = c_p, widths[level]
        self.head = nn.Sequential(nn.ReLU(inplace=False), nn.Conv2d(c_p, num_classes, 1))
        self.drop_path_prob = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.drop_path_prob
        s0 = s1 = self.stem(x)
        features = []
        for layer in self.down:
            out = layer(s0, s1, drop_prob=p)
            features.append(out)
            s0, s1 = s1, self.pool(out)
        for hdc in self.hdc:
            s0, s1 = s1, hdc(s1)
        s0, s1 = s1, self.bridge(s0, s1, drop_prob=p)
        for j, layer in enumerate(self.up):
            level = self.num_down - 1 - j
            skip = features[level] if self.long_skips[level] else None
            s0, s1 = s1, layer(s0, s1, skip, drop_prob=p)
        return self.head(s1)


def build(genotype: Genotype) -> nn.Module:
    """Build an ``autosegnet`` genotype at its ``task.input_size``."""
    task = genotype.task
    return AutoSegNet(genotype.arch, task.in_channels, task.num_classes, task.input_size)


def divisor(genotype: Genotype) -> int:
    """``2 ** num_downsampling_layers`` at the genotype's input size."""
    arch: AutoSegNetArch = genotype.arch
    return 2 ** autosegnet_depth(genotype.task.input_size, arch.min_size, arch.min_ratio)[0]
