"""The op table: one factory per op name, shared by search supernets and final nets.

Every factory has the signature ``(C_in, C_out, stride, affine) -> nn.Module``. Names follow
DARTS (``cnn/operations.py``) so that published cells import without renaming. Conventions
follow NASNet/DARTS as the RENAS paper restates them (seed 001, section 5.1.4):

1. every convolution is ordered ReLU -> conv -> BN;
2. a separable convolution is applied twice (depthwise + pointwise, twice), a dilated
   separable convolution once, with no BN/ReLU between depthwise and pointwise;
3. 1x1 convolutions match channels where C_in != C_out;
4. at stride 2, ``skip_connect`` is a factorized reduce (two offset 1x1 stride-2 convs,
   concatenated), and every other op takes the stride in its first spatial layer.

Readings of ambiguous passages (written down here, as the project asks):

- ``hdc_3x3`` (AutoSegNet, seed 000, section I: "processes the input with several convolution
  rates at the same time ... rates 1, 2 and 3"): three parallel depthwise 3x3 convolutions at
  dilation 1, 2 and 3 summed, then one pointwise conv and BN. "At the same time" is read as
  parallel branches (not the sequential stack of Wang et al.), in the separable style of the
  other AutoSegNet ops.
- ``channel_att`` (NAS-ASDet, seed 003, Table 1, ref. [45] squeeze-and-excitation): global
  average pool, FC (reduction 16, at least 4 hidden units), ReLU, FC, sigmoid, channel gate.
- ``spatial_att`` (NAS-ASDet, Table 1, ref. [46] CBAM spatial attention): channel-wise mean and
  max, 7x7 conv to one map, BN, sigmoid, spatial gate.
- Attention ops and pools cannot change the shape themselves: at stride 2 or with
  C_in != C_out they first apply the same shape adapter as ``skip_connect`` (factorized reduce
  or 1x1 ReLU-conv-BN), then gate.
- Odd feature sizes: the factorized reduce pads its offset path, so every stride-2 op gives
  ceil(H / 2) x ceil(W / 2) (DARTS' version fails on odd sizes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nasseg.zoo.op_names import OP_NAMES

OpFactory = Callable[[int, int, int, bool], nn.Module]


class ReLUConvBN(nn.Sequential):
    """ReLU -> conv -> BN (the NASNet ordering)."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU -> depthwise (dilated) conv -> pointwise conv -> BN: one separable conv."""

    def __init__(
        self,
        C_in: int,
        C_out: int,
        kernel_size: int,
        stride: int,
        padding: int,
        dilation: int,
        affine: bool = True,
    ):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride, padding, dilation=dilation, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """A separable conv applied twice; only the first takes the stride (DARTS ``SepConv``)."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            DilConv(C_in, C_in, kernel_size, stride, padding, 1, affine),
            DilConv(C_in, C_out, kernel_size, 1, padding, 1, affine),
        )


class HybridDilatedConv(nn.Module):
    """AutoSegNet's ``hdc_3x3``: parallel depthwise 3x3 convs at dilations (1, 2, 3), summed."""

    def __init__(self, C_in: int, C_out: int, stride: int, affine: bool = True, rates: tuple[int, ...] = (1, 2, 3)):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.branches = nn.ModuleList(
            nn.Conv2d(C_in, C_in, 3, stride, padding=r, dilation=r, groups=C_in, bias=False) for r in rates
        )
        self.pointwise = nn.Conv2d(C_in, C_out, 1, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        y = self.branches[0](x)
        for branch in self.branches[1:]:
            y = y + branch(x)
        return self.bn(self.pointwise(y))


class Identity(nn.Identity):
    """The identity op; a distinct class so drop-path can recognise it."""


class Zero(nn.Module):
    """The ``none`` op: zeros of the output shape (it still has to know the stride)."""

    def __init__(self, C_out: int, stride: int):
        super().__init__()
        self.C_out = C_out
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :1, :: self.stride, :: self.stride] * 0.0
        return x.expand(-1, self.C_out, -1, -1)


class FactorizedReduce(nn.Module):
    """ReLU, two 1x1 stride-2 convs on offset grids, concatenated, BN (stride-2 ``skip_connect``).

    The second grid starts at pixel (1, 1). DARTS writes it as ``conv_2(pad(x)[:, :, 1:, 1:])``; here
    the odd pixels are sliced first (a quarter of the map), a row/column of zeros is appended only
    on odd sides, and the conv runs at stride 1. Same output, but ONNX
    Runtime no longer pads and slices the full-resolution map (issue 19: 12 % of a NAS-ASDet cell
    net's time at 256 px went to those Pad and Slice nodes).
    """

    def __init__(self, C_in: int, C_out: int, affine: bool = True):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out - C_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        odd = F.pad(x[:, :, 1::2, 1::2], (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))
        if torch.is_grad_enabled() and x.is_contiguous(memory_format=torch.channels_last):
            # The same product on the even grid sliced first: PyTorch 2.14.1's oneDNN backward of a
            # 1x1 stride-2 conv on a channels_last input of <= 8 channels from 64 px up corrupts
            # the heap (a search with --stem-channels 4 aborted). Inference and export keep the
            # strided conv (the graph issue 19 made fast on ONNX Runtime).
            even = F.conv2d(x[:, :, ::2, ::2], self.conv_1.weight)
        else:
            even = self.conv_1(x)
        return self.bn(torch.cat([even, F.conv2d(odd, self.conv_2.weight)], dim=1))


def shape_adapter(C_in: int, C_out: int, stride: int, affine: bool = True) -> nn.Module:
    """What ``skip_connect`` is: identity, 1x1 ReLU-conv-BN to match channels, or factorized reduce."""
    if stride == 2:
        return FactorizedReduce(C_in, C_out, affine)
    if C_in != C_out:
        return ReLUConvBN(C_in, C_out, 1, 1, 0, affine)
    return Identity()


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation gate (NAS-ASDet ``channel_att``, ref. [45])."""

    def __init__(self, C_in: int, C_out: int, stride: int, affine: bool = True, reduction: int = 16):
        super().__init__()
        self.adapt = shape_adapter(C_in, C_out, stride, affine)
        hidden = max(C_out // reduction, 4)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(C_out, hidden, 1),
            nn.ReLU(inplace=False),
            nn.Conv2d(hidden, C_out, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.adapt(x)
        return x * self.gate(x)


class SpatialAttention(nn.Module):
    """CBAM spatial gate (NAS-ASDet ``spatial_att``, ref. [46]): mean/max maps, 7x7 conv, sigmoid."""

    def __init__(self, C_in: int, C_out: int, stride: int, affine: bool = True, kernel_size: int = 7):
        super().__init__()
        self.adapt = shape_adapter(C_in, C_out, stride, affine)
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.adapt(x)
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.bn(self.gate_logits(pooled)))

    def gate_logits(self, pooled: torch.Tensor) -> torch.Tensor:
        """``self.conv(pooled)`` as two 1-channel convs summed (a grouped conv): the same numbers,
        but ONNX Runtime's blocked layout pads a 2-to-1 conv's output to a full channel block, so the
        grouped form runs 20-30 % faster there at 64-128 px (and 3x faster in PyTorch at batch 1)."""
        k = self.conv.kernel_size
        both = F.conv2d(pooled, self.conv.weight.reshape(2, 1, *k), padding=self.conv.padding, groups=2)
        return both[:, :1] + both[:, 1:]


class Pool(nn.Module):
    """3x3 max or average pool (average excludes padding), with a 1x1 conv when channels differ."""

    def __init__(self, kind: str, C_in: int, C_out: int, stride: int, affine: bool = True):
        super().__init__()
        if kind == "max":
            self.pool: nn.Module = nn.MaxPool2d(3, stride=stride, padding=1)
        else:
            self.pool = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
        self.project = ReLUConvBN(C_in, C_out, 1, 1, 0, affine) if C_in != C_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.pool(x))


@dataclass(frozen=True)
class OpSpec:
    """One row of the op table: the factory, whether it is a pool (supernets add a BN), and its papers."""

    factory: OpFactory
    papers: tuple[str, ...]
    is_pool: bool = False
    parameter_free: bool = False


def _sep(k: int) -> OpFactory:
    return lambda C_in, C_out, stride, affine: SepConv(C_in, C_out, k, stride, k // 2, affine)


def _dil(k: int) -> OpFactory:
    return lambda C_in, C_out, stride, affine: DilConv(C_in, C_out, k, stride, (k // 2) * 2, 2, affine)


OPS: dict[str, OpSpec] = {
    "none": OpSpec(
        lambda C_in, C_out, stride, affine: Zero(C_out, stride),
        ("darts", "iac", "nas-asdet"),
        parameter_free=True,
    ),
    "skip_connect": OpSpec(shape_adapter, ("darts", "iac", "nas-asdet", "renas", "autosegnet"), parameter_free=True),
    "sep_conv_3x3": OpSpec(_sep(3), ("darts", "iac", "nas-asdet", "renas", "autosegnet")),
    "sep_conv_5x5": OpSpec(_sep(5), ("darts", "iac", "nas-asdet", "renas", "autosegnet")),
    "sep_conv_7x7": OpSpec(_sep(7), ("nas-asdet", "renas")),
    "dil_conv_3x3": OpSpec(_dil(3), ("darts", "iac", "nas-asdet")),
    "dil_conv_5x5": OpSpec(_dil(5), ("darts", "iac", "nas-asdet")),
    "max_pool_3x3": OpSpec(
        lambda C_in, C_out, stride, affine: Pool("max", C_in, C_out, stride, affine),
        ("darts", "iac", "nas-asdet", "renas"),
        is_pool=True,
        parameter_free=True,
    ),
    "avg_pool_3x3": OpSpec(
        lambda C_in, C_out, stride, affine: Pool("avg", C_in, C_out, stride, affine),
        ("darts", "iac", "nas-asdet", "renas"),
        is_pool=True,
        parameter_free=True,
    ),
    "hdc_3x3": OpSpec(
        lambda C_in, C_out, stride, affine: HybridDilatedConv(C_in, C_out, stride, affine), ("autosegnet",)
    ),
    "channel_att": OpSpec(
        lambda C_in, C_out, stride, affine: ChannelAttention(C_in, C_out, stride, affine), ("nas-asdet",)
    ),
    "spatial_att": OpSpec(
        lambda C_in, C_out, stride, affine: SpatialAttention(C_in, C_out, stride, affine), ("nas-asdet",)
    ),
}

if tuple(OPS) != OP_NAMES:  # zoo/op_names.py lists the table's names for torch-free genotype checks
    raise RuntimeError(f"zoo/op_names.py is out of date with the op table: {tuple(OPS)} != {OP_NAMES}")

# The op subsets each paper searches over (the table is shared; the subsets differ).
DARTS_OPS = (
    "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
    "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
)  # fmt: skip
NAS_ASDET_OPS = (
    "none", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7", "dil_conv_3x3",
    "dil_conv_5x5", "max_pool_3x3", "avg_pool_3x3", "channel_att", "spatial_att",
)  # fmt: skip
RENAS_OPS = ("sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7", "avg_pool_3x3", "max_pool_3x3", "skip_connect")
AUTOSEGNET_OPS = ("sep_conv_3x3", "sep_conv_5x5", "hdc_3x3", "skip_connect")


def create_op(name: str, C_in: int, C_out: int, stride: int = 1, affine: bool = True) -> nn.Module:
    """Build op ``name`` mapping ``C_in`` to ``C_out`` channels at ``stride`` (1 or 2)."""
    if name not in OPS:
        raise KeyError(f"unknown op {name!r}; known ops: {', '.join(OP_NAMES)}")
    if stride not in (1, 2):
        raise ValueError(f"op {name!r}: stride must be 1 or 2, got {stride}")
    return OPS[name].factory(C_in, C_out, stride, affine)
