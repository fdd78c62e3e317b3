"""The op table: every op at stride 1 and 2, channel matching, odd sizes, NASNet conventions."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nasseg.zoo.ops import AUTOSEGNET_OPS, DARTS_OPS, NAS_ASDET_OPS, OP_NAMES, OPS, RENAS_OPS, create_op


@pytest.mark.parametrize("name", OP_NAMES)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize(("c_in", "c_out"), [(8, 8), (6, 10)])
def test_every_op_shapes_and_gradients(name: str, stride: int, c_in: int, c_out: int) -> None:
    op = create_op(name, c_in, c_out, stride, affine=True)
    for height, width in ((9, 12), (16, 16)):
        x = torch.randn(2, c_in, height, width, requires_grad=True)
        y = op(x)
        assert y.shape == (2, c_out, math.ceil(height / stride), math.ceil(width / stride))
        y.square().mean().backward()
        if name != "none":
            assert x.grad is not None and torch.isfinite(x.grad).all()


def test_parameter_free_ops_have_no_parameters_at_equal_channels() -> None:
    for name, spec in OPS.items():
        params = sum(p.numel() for p in create_op(name, 8, 8, 1, affine=True).parameters())
        assert (params == 0) == spec.parameter_free, name


def test_nasnet_conventions() -> None:
    sep = create_op("sep_conv_3x3", 8, 8, 2)
    modules = list(sep.modules())
    depthwise = [m for m in modules if isinstance(m, nn.Conv2d) and m.groups == 8]
    assert len(depthwise) == 2, "a separable conv is applied twice"
    assert depthwise[0].stride == (2, 2) and depthwise[1].stride == (1, 1)
    assert isinstance(sep[0][0], nn.ReLU) and isinstance(sep[0][-1], nn.BatchNorm2d), "ReLU-conv-BN order"
    dil = create_op("dil_conv_5x5", 8, 8, 1)
    assert [m.dilation for m in dil.modules() if isinstance(m, nn.Conv2d) and m.groups == 8] == [(2, 2)]
    hdc = create_op("hdc_3x3", 8, 8, 1)
    assert sorted(m.dilation[0] for m in hdc.modules() if isinstance(m, nn.Conv2d) and m.groups == 8) == [
        1,
        2,
        3,
    ]
    reduce = create_op("skip_connect", 8, 8, 2)
    assert type(reduce).__name__ == "FactorizedReduce"
    assert isinstance(create_op("skip_connect", 8, 8, 1), nn.Identity)


@pytest.mark.parametrize("size", [(64, 64), (65, 63)])
def test_factorized_reduce_trains_channels_last_as_it_infers(size: tuple[int, int]) -> None:
    """Training in NHWC takes the even grid sliced first (see the op); outputs and gradients equal
    the strided conv's, computed in NCHW."""
    torch.manual_seed(0)
    reduce = create_op("skip_connect", 4, 8, 2)
    x = torch.randn(2, 4, *size)
    grads = []
    for memory_format in (torch.contiguous_format, torch.channels_last):
        reduce.zero_grad()
        y = reduce.to(memory_format=memory_format)(x.to(memory_format=memory_format))
        y.pow(2).mean().backward()
        grads.append((y.detach().contiguous(), reduce.conv_1.weight.grad.clone(), reduce.conv_2.weight.grad.clone()))
    for plain, nhwc in zip(*grads, strict=True):
        torch.testing.assert_close(nhwc, plain, rtol=1e-5, atol=1e-6)


def test_a_small_channels_last_reduction_trains_without_corrupting_memory() -> None:
    """PyTorch 2.14.1 aborted (heap corruption) in the backward of a 1x1 stride-2 conv on a channels_last
    input of <= 8 channels at 64 px; the op no longer takes that path. In a child: a crash kills it, not pytest."""
    import subprocess
    import sys

    code = ("import torch\nfrom nasseg.zoo.ops import create_op\n"
            "op = create_op('skip_connect', 4, 8, 2).to(memory_format=torch.channels_last)\n"
            "x = torch.randn(2, 4, 128, 128).to(memory_format=torch.channels_last).requires_grad_()\n"
            "for _ in range(8):\n    op(x).mean().backward()\nprint('ok')\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", (done.returncode, done.stderr[-500:])


@pytest.mark.parametrize("size", [(32, 32), (33, 31), (1, 1), (2, 3)])
def test_factorized_reduce_equals_the_darts_pad_and_slice(size: tuple[int, int]) -> None:
    """The odd grid sliced before the conv gives DARTS' ``conv_2(pad(x)[:, :, 1:, 1:])`` exactly."""
    torch.manual_seed(0)
    reduce = create_op("skip_connect", 8, 12, 2).eval()
    x = torch.randn(2, 8, *size)
    relu = torch.relu(x)
    shifted = torch.nn.functional.pad(relu, (0, 1, 0, 1))[:, :, 1:, 1:]
    darts = reduce.bn(torch.cat([reduce.conv_1(relu), reduce.conv_2(shifted)], dim=1))
    torch.testing.assert_close(reduce(x), darts, rtol=0, atol=0)


def test_spatial_attention_grouped_gate_equals_the_cbam_conv() -> None:
    """The grouped form of the 7x7 gate conv gives CBAM's ``conv(cat(mean, max))`` up to rounding."""
    torch.manual_seed(0)
    attention = create_op("spatial_att", 8, 8, 1).eval()
    pooled = torch.randn(2, 2, 13, 11)
    torch.testing.assert_close(attention.gate_logits(pooled), attention.conv(pooled), rtol=1e-5, atol=1e-6)
    assert attention.gate_logits(pooled).shape == (2, 1, 13, 11)


def test_paper_op_subsets_are_in_the_table() -> None:
    assert len(NAS_ASDET_OPS) == 11 and len(DARTS_OPS) == 8 and len(RENAS_OPS) == 6 and len(AUTOSEGNET_OPS) == 4
    for subset in (DARTS_OPS, NAS_ASDET_OPS, RENAS_OPS, AUTOSEGNET_OPS):
        assert set(subset) <= set(OP_NAMES)


def test_bad_op_requests() -> None:
    with pytest.raises(KeyError, match="unknown op"):
        create_op("conv_9x9", 4, 4)
    with pytest.raises(ValueError, match="stride"):
        create_op("sep_conv_3x3", 4, 4, stride=3)


def test_attention_ops_gate_their_input() -> None:
    x = torch.randn(1, 8, 10, 10)
    for name in ("channel_att", "spatial_att"):
        op = create_op(name, 8, 8, 1).eval()
        y = op(x)
        assert y.shape == x.shape
        ratio = y / x  # a gate in (0, 1): the output keeps the sign of the input and shrinks it
        assert (ratio > 0).all() and (ratio < 1).all()
