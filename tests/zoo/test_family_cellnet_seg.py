"""Segmentation heads of the ``cellnet`` family: NAS-ASDet fusion (seed 003) and RENAS DeepLabv3 (seed 001)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from nasseg import zoo
from nasseg.cli import app
from nasseg.zoo.heads import ASPP
from nasseg.zoo.ops import FactorizedReduce

ASDET, RENAS = "nas-asdet-darts-v2", "renas-deeplabv3"
SMALL_ASPP = {"type": "aspp", "output_stride": 16, "rates": [2, 3, 5], "channels": 8}


def small_asdet(**overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return zoo.create_model(ASDET, init_channels=4, **overrides)


def small_renas(**overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return zoo.create_model(RENAS, **{"init_channels": 4, "head": SMALL_ASPP, **overrides})


def test_registered_genotypes_are_stand_ins_with_the_papers_layout() -> None:
    asdet, renas = zoo.get_genotype(ASDET), zoo.get_genotype(RENAS)
    for genotype in (asdet, renas):
        assert "STAND-IN" in genotype.provenance.source
        assert genotype.task.kind == "segmentation" and genotype.task.input_size == (256, 256)
    assert asdet.arch.head.type == "fusion" and asdet.arch.layers == 8 and asdet.arch.reductions() == [1, 3, 5, 7]
    assert asdet.arch.normal.residual and asdet.arch.reduce.residual
    assert renas.arch.head.type == "aspp" and renas.arch.reduce is None and renas.arch.normal.steps == 5
    assert zoo.create_model(ASDET, init_channels=2).divisor == 32
    assert zoo.create_model(RENAS, init_channels=2).divisor == 16


def test_deep_supervision_branches_only_in_training() -> None:
    model = small_asdet()
    x = torch.randn(2, 3, 32, 32)
    outputs = model.train()(x)
    assert isinstance(outputs, tuple) and len(outputs) == 1 + 5
    assert all(o.shape == (2, 1, 32, 32) for o in outputs)
    sum(o.square().mean() for o in outputs).backward()
    assert all(p.grad is not None for p in model.head.auxiliary.parameters())
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 1, 32, 32)
    report = zoo.profile(model, (1, 3, 32, 32))
    assert report.params_auxiliary == sum(p.numel() for p in model.head.auxiliary.parameters()) > 0
    plain = small_asdet(head={"type": "fusion", "deep_supervision": False})
    assert plain.train()(x).shape == (2, 1, 32, 32)


def test_levels_are_the_last_cell_of_each_resolution() -> None:
    model = small_asdet()
    assert model.level_cells == [0, 2, 4, 6, 7]
    assert [model.stack.strides[i] for i in model.level_cells] == [2, 4, 8, 16, 32]
    # DARTS_V2 cells concatenate 4 nodes: 4C at 1/2, then doubling per level.
    assert [model.stack.channels[i] for i in model.level_cells] == [16, 32, 64, 128, 256]
    assert model.head.gate.fc.in_features == model.head.gate.fc.out_features == 16 + 32 + 64 + 128 + 256


def test_fusion_importance_is_a_learned_per_channel_gate() -> None:
    model = small_asdet().eval()
    x = torch.randn(2, 3, 32, 32)
    gate = model.head.gate
    fused = torch.randn(2, gate.fc.in_features, 16, 16)
    weights = gate.weights(fused)
    assert weights.shape == (2, gate.fc.in_features)
    assert ((weights >= 0.5) & (weights <= 1)).all()  # sigmoid(ReLU(.)), eqs. 7-8 read literally
    with torch.no_grad():
        before = model(x)
        gate.fc.bias.add_(3.0)
        after = model(x)
    assert not torch.allclose(before, after)
    assert isinstance(gate.fc.weight, torch.nn.Parameter)


def test_residual_cells_in_normal_and_reduction_positions() -> None:
    model = small_asdet()
    for index, cell in enumerate(model.stack.cells):
        assert cell.residual is not None
        assert isinstance(cell.residual, FactorizedReduce) == (index in (1, 3, 5, 7))
    outputs = model.train()(torch.randn(2, 3, 32, 32))
    sum(o.square().mean() for o in outputs).backward()
    assert model.stack.cells[1].residual.conv_1.weight.grad.abs().sum() > 0
    assert model.stack.cells[2].residual is not None


def test_aspp_backbone_is_at_output_stride_16_and_rates_come_from_the_genotype() -> None:
    model = small_renas().eval()
    x = torch.randn(1, 3, 64, 48)
    with torch.no_grad():
        last, outputs = model.stack(x)
        assert last.shape[-2:] == (4, 3)
        assert model(x).shape == (1, 1, 64, 48)
    assert [o.shape[-2] for o in outputs] == [8, 8, 4, 4, 4, 4, 4, 4]
    # The second reduction position (cell 5) keeps its channel doubling but runs at stride 1.
    assert model.stack.strides == [8, 8, 16, 16, 16, 16, 16, 16]
    assert model.stack.channels[5] == 2 * model.stack.channels[4] and not model.stack.cells[5].reduction
    aspp = model.head.aspp
    assert isinstance(aspp, ASPP)
    dilations = [branch[0].dilation[0] for branch in aspp.branches[1:-1]]
    assert dilations == [2, 3, 5] and all(branch[0].kernel_size == (3, 3) for branch in aspp.branches[1:-1])
    assert len(aspp.branches) == 1 + 3 + 1  # 1x1, three atrous 3x3, image pooling


def test_aspp_output_stride_8() -> None:
    model = small_renas(head={**SMALL_ASPP, "output_stride": 8}).eval()
    assert model.divisor == 8
    with torch.no_grad():
        last, _ = model.stack(torch.randn(1, 3, 32, 32))
    assert last.shape[-2:] == (4, 4)


@pytest.mark.parametrize(("name", "sizes"), [(ASDET, [(32, 32), (32, 64), (96, 32)]), (RENAS, [(16, 16), (48, 32)])])
def test_output_size_equals_input_size(name: str, sizes: list[tuple[int, int]]) -> None:
    model = (small_asdet() if name == ASDET else small_renas()).eval()
    for size in sizes:
        with torch.no_grad():
            assert model(torch.randn(1, 3, *size)).shape == (1, 1, *size)


def test_input_size_not_a_multiple_of_the_divisor_is_rejected() -> None:
    with pytest.raises(zoo.InputSizeError, match="multiples of 32"):
        zoo.create_model(ASDET, init_channels=2, input_size=[100, 100])
    with pytest.raises(zoo.InputSizeError, match="multiples of 16"):
        zoo.create_model(RENAS, init_channels=2, input_size=[248, 256])
    with pytest.raises(zoo.InputSizeError):
        zoo.profile(small_asdet(), (1, 3, 48, 48))


def test_heads_must_match_the_cell_stack() -> None:
    with pytest.raises(zoo.GenotypeError, match="levels is 4, but the cells produce 5 resolutions"):
        zoo.create_model(ASDET, head={"type": "fusion", "levels": 4})
    with pytest.raises(zoo.GenotypeError, match="output_stride is 16, but stem 'cifar'"):
        zoo.create_model(RENAS, stem="cifar")


def test_cli_report() -> None:
    result = CliRunner().invoke(app, ["report", ASDET, "--input-size", "256", "256", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model"] == ASDET and report["output_shapes"] == [[1, 1, 256, 256]]
    assert report["params_total"] > report["params_auxiliary"] > 0 and report["macs"] > 0


def test_classification_genotypes_are_unchanged() -> None:
    genotype = zoo.get_genotype("darts-v2-cifar")
    assert genotype.arch_hash == "0c29c84ce0bb2043"
    assert zoo.input_divisor(genotype) == 1
    model = zoo.create_model(genotype)
    total = sum(p.numel() for p in model.parameters())
    assert total - sum(p.numel() for p in model.auxiliary.parameters()) == 3_349_342
