"""Seeded augmentation applied to an image and its mask together: flips, 90-degree rotations,
small intensity scaling and random crops (the seeds' final nets are trained with flips/rotations;
crops make batches from images of any size)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Augment:
    """``flip``: random horizontal/vertical flips; ``rotate``: random k*90 degrees (square crops
    keep their shape; non-square ones rotate only by 180); ``intensity``: multiply the image by a
    factor in [1 - intensity, 1 + intensity]; ``crop``: random (H, W) crop, padding by reflection
    where the image is smaller."""

    flip: bool = True
    rotate: bool = True
    intensity: float = 0.1
    crop: tuple[int, int] | None = None

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Augment an ``(H, W, C)`` float image and its ``(H, W)`` mask with draws from ``rng``."""
        if self.crop is not None:
            image, mask = random_crop(image, mask, self.crop, rng)
        if self.flip:
            if rng.random() < 0.5:
                image, mask = image[:, ::-1], mask[:, ::-1]
            if rng.random() < 0.5:
                image, mask = image[::-1], mask[::-1]
        if self.rotate:
            k = int(rng.integers(4)) if image.shape[0] == image.shape[1] else 2 * int(rng.integers(2))
            image, mask = np.rot90(image, k, axes=(0, 1)), np.rot90(mask, k, axes=(0, 1))
        if self.intensity > 0:
            image = image * np.float32(1.0 + rng.uniform(-self.intensity, self.intensity))
        return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def random_crop(
    image: np.ndarray, mask: np.ndarray, size: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A random ``size`` crop of image and mask; reflect-pads (mask: edge-pads) smaller images first."""
    height, width = size
    pad_h, pad_w = max(height - image.shape[0], 0), max(width - image.shape[1], 0)
    if pad_h or pad_w:
        mode = "reflect" if pad_h < image.shape[0] and pad_w < image.shape[1] else "edge"
        image = np.pad(image, [(0, pad_h), (0, pad_w)] + [(0, 0)] * (image.ndim - 2), mode=mode)
        mask = np.pad(mask, [(0, pad_h), (0, pad_w)], mode="edge")
    top = int(rng.integers(image.shape[0] - height + 1))
    left = int(rng.integers(image.shape[1] - width + 1))
    return image[top : top + height, left : left + width], mask[top : top + height, left : left + width]
