"""PyTorch inference on image files: probabilities, masks and overlays a person can look at.

(The line-side path runs ONNX Runtime through ``serving``; this module is for evaluation,
``nasseg predict`` and the demo.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from nasseg.zoo.data.dataset import load_image, normalise
from nasseg.zoo.sizing import crop_to_original, pad_to_multiple
from nasseg.zoo.tiling import TILE, needs_tiling, predict_tiled, tile_for
from nasseg.zoo.training.losses import flatten_outputs

#: Overlay colours for classes 1.. (class 0 is left unpainted).
PALETTE = np.array([[255, 40, 40], [40, 200, 255], [255, 200, 0], [120, 255, 80], [230, 80, 255]], np.uint8)


def predict_array(
    model: nn.Module, image: np.ndarray, threshold: float = 0.5, tile: int | None = TILE
) -> tuple[np.ndarray, np.ndarray]:
    """(class-index mask uint8 (H, W), probability of the predicted foreground / class float32 (H, W))
    for a float ``(H, W, C)`` image in [0, 1]; padded to the net's divisor and cropped back. An image
    larger than ``tile`` (rounded down to the net's divisor) is predicted in overlapping tiles
    (:mod:`zoo.tiling`); ``tile=None`` always runs it whole."""
    if tile is not None:
        tile = tile_for(getattr(model, "divisor", 1), tile)
        if needs_tiling(*image.shape[:2], tile):
            return predict_tiled(image, lambda window: _predict_whole(model, window, threshold), tile)
    return _predict_whole(model, image, threshold)


@torch.no_grad()
def _predict_whole(model: nn.Module, image: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    device = next(model.parameters()).device
    tensor = torch.from_numpy(normalise(image.transpose(2, 0, 1)).astype(np.float32)).unsqueeze(0)
    padded, padding = pad_to_multiple(tensor, getattr(model, "divisor", 1))
    logits = crop_to_original(flatten_outputs(model(padded.to(device)))[0], padding)[0].float().cpu()
    if logits.shape[0] == 1:
        probability = torch.sigmoid(logits[0])
        mask = (probability > threshold).to(torch.uint8)
    else:
        probs = logits.softmax(0)
        probability, mask = probs.max(0)
        mask = mask.to(torch.uint8)
    return mask.numpy(), probability.numpy()


def predict_file(
    model: nn.Module, path: str | Path, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image as float (H, W, C), mask, probability) for an image file."""
    image = load_image(path, model.genotype.task.in_channels)
    mask, probability = predict_array(model, image, threshold)
    return image, mask, probability


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """RGB uint8 picture: the image in gray/colour with predicted classes painted over it."""
    rgb = image if image.shape[2] == 3 else np.repeat(image[:, :, :1], 3, axis=2)
    picture = (np.clip(rgb, 0, 1) * 255).astype(np.float32)
    for cls in range(1, int(mask.max(initial=0)) + 1):
        colour = PALETTE[(cls - 1) % len(PALETTE)].astype(np.float32)
        where = mask == cls
        picture[where] = (1 - alpha) * picture[where] + alpha * colour
    return picture.round().astype(np.uint8)
