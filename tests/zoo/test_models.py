"""One base tester over every registered model (the smp pattern), plus published figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nasseg import zoo

MODELS = zoo.list_models()
RECORDED = json.loads((Path(__file__).parent / "param_counts.json").read_text())


def small_input(model: torch.nn.Module) -> torch.Tensor:
    task = model.genotype.task
    side = max(32 if task.kind == "classification" else 64, model.divisor)
    return torch.randn(2, task.in_channels, side, side)


def first_tensor(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple | list) else output


def test_registry_lists_the_required_models() -> None:
    for name in (
        "darts-v2-cifar",
        "pc-darts-cifar",
        "unet-pix2pix-256",
        "smp-unet-resnet34",
        "smp-fpn-resnet18",
        "smp-unet-mobilenet_v2",
        "smp-fpn-efficientnet-b0",
    ):
        assert name in MODELS
    assert zoo.list_models("smp-unet-*") == [m for m in MODELS if m.startswith("smp-unet-")]
    assert set(RECORDED) == set(MODELS), "every registered model has a recorded parameter count"


@pytest.mark.parametrize("name", MODELS)
def test_model_builds_runs_and_learns(name: str) -> None:
    torch.manual_seed(0)
    model = zoo.create_model(name)
    task = model.genotype.task
    x = small_input(model)
    model.train()
    output = model(x)
    outputs = list(output) if isinstance(output, tuple) else [output]
    loss = sum(o.float().square().mean() for o in outputs)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    unused = [n for n, g in grads.items() if g is None]
    if model.genotype.family == "smp":  # smp's efficientnet keeps its unused classifier-side conv head
        unused = [n for n in unused if not n.startswith(("encoder._conv_head", "encoder._bn1"))]
    if model.genotype.family == "autosegnet":  # a searched child may leave a cell input, or a whole layer's
        layer = lambda n: n.split(".cell.")[0].split(".project.")[0]  # noqa: E731
        dead = {layer(n) for n in unused} - {layer(n) for n, g in grads.items() if g is not None}
        unused = [n for n in unused if ".cell.preprocess" not in n and layer(n) not in dead]  # (the controller's
        # choice): dead weight, not a wiring fault; everything else must still learn
    assert not unused, f"parameters without gradient: {unused[:5]}"
    assert any(g.abs().sum() > 0 for g in grads.values() if g is not None)
    logits = first_tensor(output)
    if task.kind == "classification":
        assert logits.shape == (2, task.num_classes)
    else:
        assert logits.shape == (2, task.num_classes, x.shape[2], x.shape[3])
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(first_tensor(model(x))).all()


@pytest.mark.parametrize("name", MODELS)
def test_parameter_count_is_stable(name: str) -> None:
    counts = {sum(p.numel() for p in zoo.create_model(name).parameters()) for _ in range(2)}
    assert counts == {RECORDED[name]}


@pytest.mark.parametrize("name", MODELS)
def test_macs_agree_with_torch_flop_counter(name: str) -> None:
    model = zoo.create_model(name).eval()
    x = small_input(model)[:1]
    report = zoo.profile(model, tuple(x.shape))
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    assert report.macs > 0 and report.flops == 2 * report.macs == counter.get_total_flops()
    assert report.params_total == RECORDED[name]


def test_published_parameter_counts() -> None:
    """DARTS reports 3.3M (3,349,342 in its log) and PC-DARTS 3.6M params, auxiliary head excluded;
    pix2pix prints 54.414 M for unet_256."""
    for name, published in (("darts-v2-cifar", 3_349_342), ("pc-darts-cifar", 3_634_678)):
        report = zoo.profile(zoo.create_model(name), (1, 3, 32, 32))
        assert report.params_total - report.params_auxiliary == published
    assert RECORDED["unet-pix2pix-256"] == 54_413_955


def test_auxiliary_head_only_in_training() -> None:
    model = zoo.create_model("darts-v2-cifar", init_channels=8, layers=5)
    x = torch.randn(2, 3, 32, 32)
    logits, aux = model.train()(x)
    assert logits.shape == aux.shape == (2, 10)
    assert model.eval()(x).shape == (2, 10)


def test_create_model_from_path_genotype_and_overrides(tmp_path: Path) -> None:
    genotype = zoo.get_genotype("darts-v2-cifar")
    path = tmp_path / "mine.json"
    genotype.replace(name="mine").to_json(path)
    assert zoo.create_model(str(path)).genotype.name == "mine"
    assert zoo.create_model(path).genotype == genotype.replace(name="mine")
    small = zoo.create_model(genotype, num_classes=3, init_channels=8, layers=4)
    assert small.genotype.task.num_classes == 3 and small.genotype.arch.layers == 4
    assert small.genotype.arch_hash != genotype.arch_hash
    with pytest.raises(zoo.GenotypeError, match="unknown override 'channel'"):
        zoo.create_model("darts-v2-cifar", channel=3)


def test_unknown_name_suggests_close_names() -> None:
    with pytest.raises(zoo.ModelNotFoundError, match=r"unknown model 'darts-v3-cifar'; did you mean darts-v2-cifar"):
        zoo.create_model("darts-v3-cifar")


def test_user_genotype_directory_registers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASSEG_HOME", str(tmp_path))
    zoo.get_genotype("unet-pix2pix-256").replace(name="my-unet").to_json(tmp_path / "genotypes" / "my-unet.json")
    assert "my-unet" in zoo.list_models()
    assert zoo.create_model("my-unet").genotype.name == "my-unet"


def test_input_size_checks() -> None:
    zoo.check_input_size(zoo.get_genotype("unet-pix2pix-256"), (512, 256))
    with pytest.raises(zoo.InputSizeError, match="multiples of 256; got 100x100"):
        zoo.check_input_size(zoo.create_model("unet-pix2pix-256"), (100, 100))
    with pytest.raises(zoo.InputSizeError):
        zoo.profile(zoo.create_model("smp-unet-resnet18"), (1, 3, 40, 40))


def test_the_cost_index_matches_the_models() -> None:
    """``genotypes/costs.json`` (what ``nasseg list`` shows without torch) covers every shipped model,
    and its parameters add up to the recorded counts; spot-check MACs against a fresh profile."""
    from nasseg.zoo.registry import genotype_dirs, shipped_names

    costs = json.loads((genotype_dirs()[0] / "costs.json").read_text())
    assert set(costs) == shipped_names()
    for name, cost in costs.items():
        assert cost["params"] + cost["params_auxiliary"] == RECORDED[name], name
    for name in ("unet-small", "iac-unet-small-synth-defects"):
        report = zoo.profile(zoo.create_model(name), (1, 3, *costs[name]["macs_size"]))
        assert report.macs == costs[name]["macs"]
