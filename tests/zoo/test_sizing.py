"""Padding an image to a net's divisor and cropping the output back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasseg import zoo
from nasseg.zoo.sizing import padded_size


@pytest.mark.parametrize("mode", ["reflect", "replicate", "constant"])
def test_tensor_round_trip(mode: str) -> None:
    x = torch.randn(2, 3, 45, 70)
    padded, padding = zoo.pad_to_multiple(x, 32, mode=mode)
    assert padded.shape == (2, 3, 64, 96)
    assert torch.equal(padded[..., :45, :70], x)
    assert torch.equal(zoo.crop_to_original(padded, padding), x)
    if mode == "constant":
        assert padded[..., 45:, :].abs().sum() == 0


def test_numpy_images_gray_and_color() -> None:
    gray = np.arange(30 * 17, dtype=np.uint8).reshape(30, 17)
    padded, padding = zoo.pad_to_multiple(gray, 16)
    assert padded.shape == (32, 32) and padded.dtype == np.uint8
    assert np.array_equal(zoo.crop_to_original(padded, padding), gray)
    color = np.zeros((5, 7, 3), dtype=np.uint16)
    padded, padding = zoo.pad_to_multiple(color, 32)  # too small to reflect: falls back to edge
    assert padded.shape == (32, 32, 3) and zoo.crop_to_original(padded, padding).shape == (5, 7, 3)


def test_integer_tensor_and_no_op() -> None:
    x = torch.randint(0, 255, (1, 20, 20), dtype=torch.uint8)
    padded, padding = zoo.pad_to_multiple(x, 8)
    assert padded.dtype == torch.uint8 and padded.shape == (1, 24, 24)
    same, padding = zoo.pad_to_multiple(torch.zeros(1, 3, 64, 64), 32)
    assert same.shape == (1, 3, 64, 64) and padding.bottom == padding.right == 0
    assert padded_size(1, 33, 32) == (32, 64)


def test_padded_image_runs_through_a_net_and_crops_back() -> None:
    model = zoo.create_model("smp-unet-mobilenet_v2").eval()
    image = torch.randn(1, 3, 50, 77)
    with pytest.raises(zoo.InputSizeError, match="multiples of 32"):
        zoo.check_input_size(model, image.shape[-2:])
    padded, padding = zoo.pad_to_multiple(image, model.divisor)
    zoo.check_input_size(model, padded.shape[-2:])
    with torch.no_grad():
        mask = zoo.crop_to_original(model(padded), padding)
    assert mask.shape == (1, 1, 50, 77)


def test_create_model_rejects_a_nominal_size_off_the_divisor() -> None:
    with pytest.raises(zoo.InputSizeError, match="multiples of 32; got 100x100"):
        zoo.create_model("smp-unet-resnet18", input_size=[100, 100])
