"""Tests of zoo.profile: MAC convention, elementwise column, params, peak memory, hooks, errors."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nasseg.zoo.errors import InputSizeError
from nasseg.zoo.profiling import LayerRow, ModelProfile, profile


def stack() -> nn.Module:
    """Conv-BN-ReLU, a pix2pix-style up-convolution, global pool and a linear head."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.ConvTranspose2d(8, 4, kernel_size=4, stride=2, padding=1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 5),
    )


def grouped() -> nn.Module:
    return nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 16, 3, groups=4))


class WithAux(nn.Module):
    """DARTS-like: an auxiliary head, and a head whose name only contains the word."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.heads = nn.ModuleDict({"auxiliary": nn.Linear(4, 10), "auxiliary_like": nn.Linear(4, 2)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads["auxiliary_like"](self.stem(x).mean((2, 3)))


class Functional(nn.Module):
    """Work done with functional calls in forward, and one module called twice."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 6))
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(torch.matmul(x, self.w))  # (2, 4, 6): mm after folding
        z = torch.matmul(y, y.transpose(1, 2))  # (2, 4, 4): bmm
        return self.act(z * 2)


class TupleOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y = self.conv(x)
        return y, F.max_pool2d(y, 2), y.flatten(1)


MODELS = {
    "stack": (stack, (2, 3, 8, 8)),
    "grouped": (grouped, (1, 8, 6, 6)),
    "aux": (WithAux, (1, 3, 8, 8)),
    "functional": (Functional, (2, 4, 8)),
    "tuple": (TupleOut, (1, 3, 4, 4)),
}


# attention is left out here: FlopCounterMode does not count the CPU flash-attention kernel
def reference_flops(model: nn.Module, size: tuple[int, ...]) -> int:
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(size))
    return counter.get_total_flops()


@pytest.mark.parametrize("key", sorted(MODELS))
def test_flops_match_torch_flop_counter(key: str) -> None:
    make, size = MODELS[key]
    model = make()
    prof = profile(model, size)
    assert isinstance(prof, ModelProfile)
    assert prof.flops == 2 * prof.macs
    assert prof.flops == reference_flops(model, size)
    assert prof.macs == sum(r.macs for r in prof.layers)


def test_hand_computed_macs_per_layer() -> None:
    rows = {r.name: r for r in profile(stack(), (2, 3, 8, 8)).layers}
    assert rows["0"].macs == 2 * 8 * 8 * 8 * 3 * 3 * 3  # batch * out_hw * C_out * C_in * k*k
    assert rows["3"].macs == 2 * 8 * 8 * 8 * 4 * 4 * 4  # transposed: batch * C_in * in_hw * C_out * k*k
    assert rows["3"].output_shape == (2, 4, 16, 16)
    assert rows["6"].macs == 2 * 4 * 5
    dw, gc = profile(grouped(), (1, 8, 6, 6)).layers
    assert dw.macs == 6 * 6 * 8 * 1 * 3 * 3
    assert gc.macs == 4 * 4 * 16 * 2 * 3 * 3
    assert gc.params == 16 * 2 * 9 + 16


def test_functional_work_and_repeated_module() -> None:
    prof = profile(Functional(), (2, 4, 8))
    rows = {r.name: r for r in prof.layers}
    assert list(rows) == ["(root)", "act"]  # root first: it owns w and runs before act
    assert rows["(root)"].macs == 2 * 4 * 8 * 6 + 2 * 4 * 4 * 6
    assert rows["(root)"].params == 48
    assert rows["act"].elementwise_ops == 2 * 4 * 6 + 2 * 4 * 4  # two calls, one row
    assert rows["act"].macs == 0


def test_attention_counts_two_matmuls() -> None:
    class Attn(nn.Module):
        def forward(self, q: torch.Tensor) -> torch.Tensor:
            return F.scaled_dot_product_attention(q, q, q)

    assert profile(Attn(), (1, 2, 5, 8)).macs == 2 * (2 * 5 * 5 * 8)


def test_elementwise_column_is_separate() -> None:
    prof = profile(stack(), (2, 3, 8, 8))
    rows = {r.name: r for r in prof.layers}
    assert prof.elementwise_ops > 0
    assert rows["1"].elementwise_ops == rows["2"].elementwise_ops == 2 * 8 * 8 * 8
    assert rows["1"].macs == rows["2"].macs == rows["4"].macs == 0
    assert rows["4"].elementwise_ops == 2 * 4 * 16 * 16  # pooling reads its input
    assert prof.macs == rows["0"].macs + rows["3"].macs + rows["6"].macs


def test_param_counts() -> None:
    model = WithAux()
    model.stem.weight.requires_grad_(False)
    prof = profile(model, (1, 3, 8, 8))
    total = sum(p.numel() for p in model.parameters())
    assert prof.params_total == total == 4 * 27 + 4 + 50 + 10
    assert prof.params_trainable == total - 4 * 27
    assert prof.params_auxiliary == 50  # heads.auxiliary only, not heads.auxiliary_like
    assert prof.param_bytes == 4 * total
    assert sum(r.params for r in prof.layers) == total  # the unused aux head gets a row too
    assert prof.layers[-1].name == "heads.auxiliary" and prof.layers[-1].output_shape == ()


def test_outputs_rows_and_serialisation() -> None:
    prof = profile(TupleOut(), (1, 3, 4, 4))
    assert prof.output_shapes == [(1, 2, 4, 4), (1, 2, 2, 2), (1, 32)]
    assert all(isinstance(r, LayerRow) for r in prof.layers)
    d = json.loads(json.dumps(prof.to_dict()))
    assert d["output_shapes"][1] == [1, 2, 2, 2]
    assert [r["name"] for r in d["layers"]] == ["(root)", "conv"]  # root: the functional max-pool
    assert d["layers"][0]["elementwise_ops"] == 2 * 4 * 4 and d["layers"][1]["output_shape"] == [1, 2, 4, 4]
    assert d["macs"] == prof.macs and d["convention"] == prof.convention and "2 x MACs" in prof.convention
    assert len(prof.summary().splitlines()) >= 3


def test_peak_activation_memory() -> None:
    n, size = 8, (1, 4, 16, 16)
    chain = nn.Sequential(*[nn.Conv2d(4, 4, 3, padding=1) for _ in range(n)])
    prof = profile(chain, size)
    one = 4 * 16 * 16 * 4
    assert prof.peak_activation_bytes >= one  # the input, and each (same-size) activation
    assert prof.peak_activation_bytes >= max(r.activation_bytes for r in prof.layers)
    assert prof.peak_activation_bytes <= 3 * one < (n + 1) * one  # freed tensors are subtracted
    up = profile(stack(), (2, 3, 8, 8))
    assert up.peak_activation_bytes >= max(r.activation_bytes for r in up.layers) == 2 * 4 * 16 * 16 * 4


def test_hooks_removed_and_training_flags_restored() -> None:
    seen = []

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(self.training)
            return x

    model = nn.Sequential(stack(), Probe())
    model.train()
    model[0][1].eval()  # a frozen BN inside a training model stays frozen
    profile(model, (2, 3, 8, 8))
    assert seen == [False]
    assert model.training and model[1].training and not model[0][1].training
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._forward_hooks_always_called


def test_too_small_input_raises_input_size_error() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 7))
    model.train()
    with pytest.raises(InputSizeError, match=r"Sequential cannot take input size \(1, 3, 3, 3\): "):
        profile(model, (1, 3, 3, 3))
    assert model.training
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    with pytest.raises(InputSizeError, match="more than 1 spatial element"):  # a ValueError from torch
        profile(nn.InstanceNorm2d(3), (1, 3, 1, 1))


def test_other_errors_propagate() -> None:
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom") as info:
        profile(Broken(), (1, 3, 4, 4))
    assert not isinstance(info.value, InputSizeError)
