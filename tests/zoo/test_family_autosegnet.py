"""The ``autosegnet`` family: depth rule, size transfer, ops in every layer, long skips, sizes, CLI."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from nasseg import zoo
from nasseg.cli import app
from nasseg.zoo.families import autosegnet
from nasseg.zoo.families.autosegnet import autosegnet_depth, long_skip_levels
from nasseg.zoo.ops import AUTOSEGNET_OPS, HybridDilatedConv, Identity, SepConv

OP_TYPES = {"sep_conv_3x3": SepConv, "sep_conv_5x5": SepConv, "hdc_3x3": HybridDilatedConv, "skip_connect": Identity}
MIXED = {"nodes": [[["sep_conv_3x3", 0], ["hdc_3x3", 1]], [["sep_conv_5x5", 2], ["skip_connect", 1]]]}


def genotype(
    down: dict = MIXED,
    bridge: dict = MIXED,
    up: dict = MIXED,
    long_skips: list[bool] | None = None,
    input_size: tuple[int, int] = (64, 64),
    stem_channels: int = 4,
) -> zoo.Genotype:
    """A small AutoSegNet genotype (3 input channels, 2 classes)."""
    return zoo.Genotype.from_dict(
        {
            "name": "asn-test",
            "family": "autosegnet",
            "task": {"kind": "segmentation", "in_channels": 3, "num_classes": 2, "input_size": list(input_size)},
            "arch": {
                "down": down,
                "bridge": bridge,
                "up": up,
                "long_skips": long_skips or [True, False, True, True],
                "stem_channels": stem_channels,
            },
        }
    )


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (8, (0, 1)),  # below the minimum: no downsampling, the HDC layer only
        (16, (0, 1)),
        (32, (0, 1)),  # 32 -> 16 would reach the minimum: HDC instead
        (64, (1, 1)),  # the paper's search size: 64 -> 32, HDC at 32
        (96, (2, 1)),  # 96 -> 48 -> 24 (> 16), HDC at 24
        (128, (2, 1)),
        (256, (3, 1)),
        (512, (4, 1)),  # Fig. 6: 512 -> 32 in four layers, HDC at 32x32, 10 layers in all
        (1024, (4, 1)),  # the ratio bound wins: floor max(16, 1024 / 32) = 32, HDC at 64
        (2048, (4, 1)),
        ((512, 256), (3, 1)),  # non-square: the shorter side decides
        ((64, 512), (1, 1)),
    ],
)
def test_depth_rule(size: int | tuple[int, int], expected: tuple[int, int]) -> None:
    assert autosegnet_depth(size) == expected


def test_depth_rule_switches_to_hdc_just_above_the_floor() -> None:
    for side in [2**k for k in range(3, 13)] + [48, 80, 96, 160, 384, 520, 1000]:
        for min_size, min_ratio in ((16, 1 / 32), (8, 1 / 32), (16, 1 / 8), (32, 1 / 64)):
            floor = max(min_size, side * min_ratio)
            downs, hdc = autosegnet_depth(side, min_size, min_ratio)
            bottom = side / 2**downs
            assert hdc == 1
            assert bottom / 2 <= floor, (side, min_size, min_ratio)  # one more pooling would reach the floor
            assert downs == 0 or bottom > floor  # every pooling kept the size above the floor
    assert autosegnet_depth(64, min_size=8) == (2, 1)
    assert autosegnet_depth(512, min_ratio=1 / 8) == (2, 1)
    assert autosegnet_depth((128, 128)) == autosegnet_depth(128)
    with pytest.raises(ValueError):
        autosegnet_depth(0)


def test_long_skip_bits_count_from_the_bottom() -> None:
    assert long_skip_levels([True], 4) == [False, False, False, True]
    assert long_skip_levels([True, False, True, True], 1) == [True]
    assert long_skip_levels([False, True], 3) == [False, True, False]
    assert long_skip_levels([True], 0) == []


def test_same_genotype_builds_at_search_and_training_size() -> None:
    torch.manual_seed(0)
    small = genotype(input_size=(64, 64))
    model = zoo.create_model(small)
    assert (len(model.down), len(model.hdc), len(model.up), model.divisor) == (1, 1, 1, 2)
    x = torch.randn(2, 3, 64, 64)
    y = model(x)
    assert y.shape == (2, 2, 64, 64)
    y.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())

    large = zoo.create_model(small, input_size=[512, 512], stem_channels=2)
    assert large.genotype.arch.down == small.arch.down and large.genotype.arch.up == small.arch.up
    assert (len(large.down), len(large.hdc), len(large.up), large.divisor) == (4, 1, 4, 16)
    with torch.no_grad():
        assert large.eval()(torch.randn(1, 3, 512, 512)).shape == (1, 2, 512, 512)
    # the bottom runs at 32x32 at both sizes; widths double per level (Fig. 6)
    assert [layer.C_out for layer in large.down] == [2, 4, 8, 16] and large.bridge.C_out == 32
    assert [layer.C_out for layer in large.up] == [16, 8, 4, 2]


@pytest.mark.parametrize("op", AUTOSEGNET_OPS)
@pytest.mark.parametrize("layer", ["down", "bridge", "up"])
def test_every_op_works_in_every_layer(op: str, layer: str) -> None:
    cell = {"nodes": [[[op, 0], [op, 1]], [[op, 2], [op, 1]], [[op, 0], [op, 3]]]}
    model = zoo.create_model(genotype(**{layer: cell}, input_size=(64, 64)))
    built = {"down": model.down[0], "bridge": model.bridge, "up": model.up[0]}[layer].cell
    assert all(isinstance(edge, OP_TYPES[op]) for edges in built.edges for edge in edges)
    x = torch.randn(2, 3, 64, 64)
    y = model(x)
    assert y.shape == (2, 2, 64, 64)
    y.mean().backward()


def test_long_skip_bits_change_modules_and_hash() -> None:
    on, off = genotype(long_skips=[True]), genotype(long_skips=[False])
    assert on.arch_hash != off.arch_hash
    model_on, model_off = zoo.create_model(on), zoo.create_model(off)
    assert model_on.long_skips == [True] and model_off.long_skips == [False]
    assert n_params(model_on) > n_params(model_off)
    shapes_on = {k: v.shape for k, v in model_on.state_dict().items()}
    shapes_off = {k: v.shape for k, v in model_off.state_dict().items()}
    assert shapes_on != shapes_off
    # bits count from the bottom: one bit at 256 (3 levels) is the level next to the bridge
    deep = zoo.create_model(genotype(long_skips=[True], input_size=(256, 256)))
    assert deep.long_skips == [False, False, True]
    assert deep(torch.randn(1, 3, 256, 256)).shape == (1, 2, 256, 256)
    # the input size is hashed (depth depends on it)
    assert genotype(input_size=(64, 64)).arch_hash != genotype(input_size=(128, 128)).arch_hash


def test_input_size_must_be_a_multiple_of_the_divisor() -> None:
    assert autosegnet.divisor(genotype(input_size=(512, 512))) == 16
    assert autosegnet.divisor(genotype(input_size=(32, 32))) == 1
    with pytest.raises(zoo.InputSizeError, match="multiples of 16"):
        zoo.create_model(genotype(), input_size=[520, 520])  # depth 4 at 520, 520 % 16 != 0
    with pytest.raises(zoo.InputSizeError, match="multiples of 4"):
        zoo.create_model(genotype(), input_size=[90, 90])
    model = zoo.create_model(genotype(input_size=(512, 512)))
    zoo.check_input_size(model, (256, 512))
    with pytest.raises(zoo.InputSizeError):
        zoo.check_input_size(model, (100, 100))


def test_paper_example_is_registered_and_reports() -> None:
    genotype_ = zoo.get_genotype("autosegnet-paper-example")
    assert genotype_.task.input_size == (512, 512) and genotype_.task.in_channels == 1
    assert autosegnet.divisor(genotype_) == 16
    result = CliRunner().invoke(app, ["report", "autosegnet-paper-example", "--input-size", "256", "256", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["params_total"] > 0 and data["macs"] > 0
    assert data["output_shapes"] == [[1, 1, 256, 256]]
