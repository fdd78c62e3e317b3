"""Pad an image or batch to a net's input divisor, and crop the net's output back.

Padding goes to the bottom and right only, so the original pixels keep their coordinates and
cropping back is a slice. Works on torch tensors (``..., H, W``) and on numpy images
(``H, W`` or ``H, W, C``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from nasseg.zoo.errors import NassegError

Image = TypeVar("Image", torch.Tensor, np.ndarray)


@dataclass(frozen=True)
class Padding:
    """How an image was padded: its original height and width and the rows/columns added."""

    height: int
    width: int
    bottom: int
    right: int


def padded_size(height: int, width: int, divisor: int) -> tuple[int, int]:
    """The smallest (H, W) at least as large as the input whose sides are multiples of ``divisor``."""
    if divisor < 1:
        raise ValueError(f"divisor must be >= 1, got {divisor}")
    return -(-height // divisor) * divisor, -(-width // divisor) * divisor


def pad_to_multiple(image: Image, divisor: int, mode: str = "reflect") -> tuple[Image, Padding]:
    """Pad ``image`` at the bottom and right to multiples of ``divisor``.

    ``mode`` is ``reflect`` (falls back to ``replicate`` where the image is too small to
    reflect), ``replicate`` or ``constant`` (zeros).
    """
    tensor = isinstance(image, torch.Tensor)
    height, width = image.shape[-2:] if tensor else image.shape[:2]
    target_h, target_w = padded_size(height, width, divisor)
    padding = Padding(height, width, target_h - height, target_w - width)
    if not padding.bottom and not padding.right:
        return image, padding
    if mode == "reflect" and (padding.bottom >= height or padding.right >= width):
        mode = "replicate"
    if tensor:
        if mode == "constant":
            return F.pad(image, (0, padding.right, 0, padding.bottom)), padding
        batched = image.reshape(-1, 1, height, width) if image.dim() < 3 else image.reshape(-1, *image.shape[-3:])
        out = F.pad(
            batched.float() if not batched.is_floating_point() else batched,
            (0, padding.right, 0, padding.bottom),
            mode=mode,
        ).to(image.dtype)
        return out.reshape(*image.shape[:-2], target_h, target_w), padding
    widths = [(0, padding.bottom), (0, padding.right)] + [(0, 0)] * (image.ndim - 2)
    numpy_mode = {"reflect": "reflect", "replicate": "edge", "constant": "constant"}[mode]
    return np.pad(image, widths, mode=numpy_mode), padding


def crop_to_original(image: Image, padding: Padding) -> Image:
    """Undo :func:`pad_to_multiple` on an image or on a net's output of the padded size."""
    if isinstance(image, torch.Tensor):
        return image[..., : padding.height, : padding.width]
    return image[: padding.height, : padding.width]


class SizeError(NassegError, ValueError):
    """A frame size given as text is not HEIGHTxWIDTH with positive sides."""


def parse_size(text: str) -> tuple[int, int]:
    """``"256x192"`` (height x width) or ``"256"`` -> ``(256, 192)`` / ``(256, 256)``: the one parser
    of sizes on the command line (``nasseg bench``, ``latency``, ``search --latency-size``)."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        height, width = (int(parts[0]), int(parts[0])) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
    except ValueError:
        raise SizeError(f"size must be HEIGHTxWIDTH (e.g. 256x256), got {text!r}") from None
    if len(parts) > 2 or height < 1 or width < 1:
        raise SizeError(f"size must be HEIGHTxWIDTH with positive sides (e.g. 256x256), got {text!r}")
    return height, width
