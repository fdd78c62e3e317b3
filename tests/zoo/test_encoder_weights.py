"""Local ImageNet encoder weights for timm encoders: a file the test writes, never a download."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from nasseg import zoo
from nasseg.zoo.encoder_weights import encoder_weight_candidates, find_encoder_weights


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NASSEG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path


def _imagenet_like_resnet18(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {k: v.contiguous() for k, v in timm.create_model("resnet18", pretrained=False).state_dict().items()}


def test_missing_encoder_weights_say_where_they_were_looked_for(home: Path) -> None:
    with pytest.raises(zoo.WeightsError, match="no local ImageNet weights for timm encoder 'resnet18'") as info:
        zoo.create_model("iac-base-resnet18", pretrained=True)
    assert "nothing is downloaded" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("where", ["nasseg-home", "hf-cache"])
def test_base_loads_local_encoder_weights(home: Path, where: str) -> None:
    state = _imagenet_like_resnet18(seed=3)
    if where == "nasseg-home":
        path = home / "home" / "encoders" / "resnet18.safetensors"
    else:
        path = home / "hf" / "models--timm--resnet18.a1_in1k" / "snapshots" / "abc" / "model.safetensors"
    path.parent.mkdir(parents=True)
    save_file(state, str(path))
    assert find_encoder_weights("resnet18") == path and path in encoder_weight_candidates("resnet18")
    model = zoo.create_model("iac-base-resnet18", pretrained=True)
    assert torch.equal(model.encoder.conv1.weight, state["conv1.weight"])
    assert torch.equal(model.encoder.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])
    implant = zoo.create_model("iac-resnet18-darts-v2", pretrained=True)  # its base: ImageNet encoder, frozen
    assert torch.equal(implant.base.encoder.conv1.weight, state["conv1.weight"])
    assert not implant.base.encoder.conv1.weight.requires_grad


def test_a_wrong_encoder_file_is_refused_in_one_line(home: Path) -> None:
    path = home / "home" / "encoders" / "resnet18.safetensors"
    path.parent.mkdir(parents=True)
    save_file({"conv1.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(zoo.WeightsError, match="not weights of timm encoder 'resnet18'") as info:
        zoo.create_model("iac-base-resnet18", pretrained=True)
    assert "\n" not in str(info.value)
