"""Torch datasets over checked folders: images normalised to float tensors, masks to class indices.

Decoded images are cached in memory (the data sets the papers use are small); augmentation
draws from ``numpy.random.default_rng([seed, epoch, index])``, so an epoch is the same whether
it runs in one go or after a resume, and whatever the number of loader workers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from nasseg.zoo.data.augment import Augment
from nasseg.zoo.data.folder import Sample, mask_to_index
from nasseg.zoo.data.images import read_image, to_channels, to_float

#: Images are scaled to [0, 1] by their bit depth, then normalised with these (the export
#: issue puts them into the ONNX graph).
MEAN, STD = 0.5, 0.25


def normalise(image: np.ndarray) -> np.ndarray:
    """(x - MEAN) / STD on a [0, 1] float image."""
    return (image - MEAN) / STD


def load_image(path, in_channels: int) -> np.ndarray:
    """An image file as a float32 ``(H, W, in_channels)`` array in [0, 1]."""
    return to_channels(to_float(read_image(path)), in_channels)


class SegmentationDataset(Dataset):
    """``(image (C, H, W) float32 normalised, mask (H, W) int64)`` pairs from folder samples."""

    def __init__(self, samples: Sequence[Sample], num_classes: int, in_channels: int, augment: Augment | None = None,
                 seed: int = 0):  # fmt: skip
        self.samples = list(samples)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def set_epoch(self, epoch: int) -> None:
        """Choose the augmentation draws of ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Decoded, un-augmented (image, mask) of one sample (cached)."""
        if index not in self._cache:
            sample = self.samples[index]
            image = load_image(sample.image, self.in_channels)
            mask = mask_to_index(read_image(sample.mask), self.num_classes)
            self._cache[index] = (image, mask)
        return self._cache[index]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.load(index)
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image, mask = self.augment(image, mask, rng)
        tensor = torch.from_numpy(normalise(np.ascontiguousarray(image.transpose(2, 0, 1))).astype(np.float32))
        return tensor, torch.from_numpy(np.ascontiguousarray(mask).astype(np.int64))
