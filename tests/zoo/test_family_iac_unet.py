"""The ``iac-unet`` family: base U-Nets and Implantable Adaptive Cell implants (seed 004)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from nasseg import zoo
from nasseg.cli import app
from nasseg.zoo.families.iac_unet import IACImplant, freeze_base

SEG_TASK = {"kind": "segmentation", "in_channels": 3, "num_classes": 1, "input_size": [64, 64]}
RESNET18_SKIPS = 4  # features at strides 2, 4, 8, 16 feed skips; stride 32 feeds the decoder


def darts_v2_cell() -> dict:
    return zoo.get_genotype("iac-resnet18-darts-v2").arch.cell.model_dump(mode="json")


def implant_genotype(base: zoo.Genotype, base_ref: str, name: str = "my-implant", **arch) -> zoo.Genotype:
    """An implant of ``base`` (referenced as ``base_ref``) with the DARTS_V2 stand-in cell."""
    return zoo.Genotype.from_dict(
        {
            "name": name,
            "family": "iac-unet",
            "task": base.task.model_dump(mode="json"),
            "arch": {"base": {"model": base_ref, "arch_hash": base.arch_hash}, "cell": darts_v2_cell(), **arch},
        }
    )


def plain_base(name: str = "plain-base") -> zoo.Genotype:
    """A tiny base U-Net with the plain encoder: widths 8, 16, 32, 64, strides 1 .. 8."""
    return zoo.Genotype.from_dict(
        {
            "name": name,
            "family": "iac-unet",
            "task": SEG_TASK,
            "arch": {"base": {"encoder": "unet", "decoder_channels": [32, 16, 8]}},
        }
    )


@pytest.fixture(scope="module")
def resnet18_pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    return zoo.create_model("iac-base-resnet18"), zoo.create_model("iac-resnet18-darts-v2")


def test_base_and_implant_output_shapes(resnet18_pair: tuple[torch.nn.Module, torch.nn.Module]) -> None:
    base, implant = resnet18_pair
    x = torch.randn(2, 3, 64, 64)
    assert base.divisor == implant.divisor == 32
    assert base.eval()(x).shape == implant.eval()(x).shape == (2, 1, 64, 64)
    assert isinstance(implant, IACImplant) and sorted(implant.cells) == [f"level{i}" for i in range(RESNET18_SKIPS)]


def test_implant_contains_the_base_with_identical_names(resnet18_pair: tuple[torch.nn.Module, torch.nn.Module]) -> None:
    base, implant = resnet18_pair
    implant_shapes = {name: t.shape for name, t in implant.state_dict().items()}
    base_shapes = {f"base.{name}": t.shape for name, t in base.state_dict().items()}
    assert base_shapes.items() <= implant_shapes.items()
    extra = set(implant_shapes) - set(base_shapes)
    assert extra and all(name.startswith("cells.level") for name in extra)
    implant.base.load_state_dict(base.state_dict())  # strict: the base part is exactly the base


def test_cell_output_replaces_the_skip(resnet18_pair: tuple[torch.nn.Module, torch.nn.Module]) -> None:
    """Each cell maps (upsampled decoder, skip) to the skip's width; the decoder block is unchanged."""
    _, implant = resnet18_pair
    for level, width in enumerate([64, 64, 128, 256]):
        cell, block = implant.cells[f"level{level}"], implant.base.block_of_level(level)
        assert cell.align.out_channels == block.c_skip == width
        assert cell.adapt_up[0].in_channels == block.c_in and cell.cell.C == 16


def test_wrong_base_hash_is_refused_with_one_line() -> None:
    base = zoo.get_genotype("iac-base-resnet18")
    wrong = implant_genotype(base, "iac-base-resnet18").replace(
        arch={
            **implant_genotype(base, "x").arch.model_dump(mode="json"),
            "base": {"model": base.name, "arch_hash": "0" * 16},
        }
    )
    with pytest.raises(zoo.GenotypeError) as info:
        zoo.create_model(wrong)
    message = str(info.value)
    assert "\n" not in message and base.arch_hash in message and "0" * 16 in message
    with pytest.raises(zoo.GenotypeError, match="task"):
        zoo.create_model("iac-resnet18-darts-v2", num_classes=3)  # the base was made for 1 class
    with pytest.raises(zoo.GenotypeError, match="must be an iac-unet base"):
        zoo.create_model(implant_genotype(zoo.get_genotype("smp-unet-resnet18"), "smp-unet-resnet18"))


def test_freeze_base_trains_only_the_cells() -> None:
    torch.manual_seed(0)
    model = zoo.create_model("iac-resnet18-darts-v2")
    assert freeze_base(model) is model and model.base_frozen
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith("cells.") for name in trainable)
    base_before = {k: v.clone() for k, v in model.base.state_dict().items()}
    cells_before = {k: v.clone() for k, v in model.cells.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    assert not any(m.training for m in model.base.modules()) and model.cells.training
    model(torch.randn(2, 3, 32, 32)).square().mean().backward()
    optimizer.step()
    for key, value in model.base.state_dict().items():  # weights and BN running statistics
        assert torch.equal(value, base_before[key]), key
    changed = [k for k, v in model.cells.state_dict().items() if not torch.equal(v, cells_before[k])]
    assert any(k.endswith("weight") for k in changed)
    model.freeze_base(False)
    assert all(p.requires_grad for p in model.parameters()) and model.train().base.training
    with pytest.raises(TypeError, match="needs an IAC implant"):
        freeze_base(zoo.create_model(plain_base()))


def test_implant_loads_its_base_from_a_weight_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(1)
    base_genotype = zoo.get_genotype("iac-base-resnet18").replace(name="my-base")
    base = zoo.create_model(base_genotype)
    weights = zoo.save_weights(base, base_genotype, tmp_path / "my-base.safetensors")
    base_genotype.replace(weights=weights).to_json(tmp_path / "my-base.json")
    by_absolute = implant_genotype(base_genotype, str(tmp_path / "my-base.json"))
    by_absolute.to_json(tmp_path / "abs-implant.json")
    implant_genotype(base_genotype, "my-base.json").to_json(tmp_path / "rel-implant.json")  # next to the implant
    for path in (tmp_path / "abs-implant.json", tmp_path / "rel-implant.json"):
        model = zoo.create_model(path, pretrained=True)
        saved = base.state_dict()
        assert all(torch.equal(v, saved[k]) for k, v in model.base.state_dict().items())
        assert model.base_frozen and all(p.requires_grad for p in model.cells.parameters())
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))  # a base without any weights at all
    with pytest.raises(zoo.WeightsError, match="no local ImageNet weights for timm encoder 'resnet18'"):
        zoo.create_model("iac-resnet18-darts-v2", pretrained=True)


def test_levels_subset_implants_only_those_skips(tmp_path: Path) -> None:
    base = zoo.get_genotype("iac-base-resnet18")
    model = zoo.create_model(implant_genotype(base, base.name, levels=[0, 2]))
    assert sorted(model.cells) == ["level0", "level2"]
    assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 1, 32, 32)
    with pytest.raises(zoo.BuildError, match=r"levels \[4\] out of range.*0\.\.3"):
        zoo.create_model(implant_genotype(base, base.name, levels=[1, 4]))


def test_plain_unet_encoder_base_and_implant(tmp_path: Path) -> None:
    base_genotype = plain_base()
    base = zoo.create_model(base_genotype)
    assert base.divisor == 8 and base.encoder.channels == [8, 16, 32, 64]
    assert base(torch.randn(2, 3, 24, 40)).shape == (2, 1, 24, 40)
    base_genotype.to_json(tmp_path / "plain-base.json")
    implant = zoo.create_model(implant_genotype(base_genotype, str(tmp_path / "plain-base.json"), cell_channels=4))
    assert sorted(implant.cells) == ["level0", "level1", "level2"] and implant.divisor == 8
    assert implant(torch.randn(2, 3, 16, 16)).shape == (2, 1, 16, 16)


def test_decoder_width_count_must_fit_the_encoder() -> None:
    genotype = zoo.get_genotype("iac-base-resnet18")
    arch = {"base": {"encoder": "timm:resnet18", "decoder_channels": [64, 32, 16, 8]}}
    with pytest.raises(zoo.BuildError, match="needs 5 decoder_channels"):
        zoo.create_model(genotype.replace(arch=arch))
    with pytest.raises(zoo.BuildError, match="timm cannot build encoder 'no_such_net'"):
        zoo.create_model(genotype.replace(arch={"base": {"encoder": "timm:no_such_net"}}))


def test_cli_report_of_an_implant() -> None:
    result = CliRunner().invoke(app, ["report", "iac-resnet18-darts-v2", "--input-size", "256", "256", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"] == "iac-resnet18-darts-v2" and data["macs"] > 0 and data["params_total"] > 0


def test_the_family_finds_its_base_only_through_the_registry_s_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    from nasseg.zoo.families import iac_unet

    implant = zoo.resolve_genotype("iac-unet-small-synth-defects")
    zoo.build_model(implant)  # the registry has bound its resolver
    seen: list = []
    monkeypatch.setattr(iac_unet, "_resolve_genotype", lambda spec: seen.append(spec) or zoo.resolve_genotype(spec))
    assert iac_unet.resolve_base(implant).arch_hash == implant.arch.base.arch_hash and seen
    monkeypatch.setattr(iac_unet, "_resolve_genotype", None)
    with pytest.raises(zoo.BuildError, match="build it through zoo"):
        iac_unet.resolve_base(implant)
