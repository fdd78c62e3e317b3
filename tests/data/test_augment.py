"""Seeded augmentation keeps image and mask aligned."""

from __future__ import annotations

import numpy as np

from nasseg.zoo.data.augment import Augment, random_crop


def test_image_and_mask_stay_aligned_and_runs_repeat() -> None:
    base = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    image, mask = np.dstack([base, base, base]), (base > 0.5).astype(np.uint8)
    augment = Augment(crop=(24, 24), intensity=0.0)
    for seed in range(20):
        out_image, out_mask = augment(image, mask, np.random.default_rng(seed))
        assert out_image.shape == (24, 24, 3) and out_mask.shape == (24, 24)
        assert np.array_equal(out_image[:, :, 0] > 0.5, out_mask.astype(bool))
        again, _ = augment(image, mask, np.random.default_rng(seed))
        assert np.array_equal(again, out_image)


def test_intensity_scaling_is_small_and_crops_pad() -> None:
    image, mask = np.ones((8, 8, 1), np.float32), np.zeros((8, 8), np.uint8)
    out, _ = Augment(flip=False, rotate=False, intensity=0.1)(image, mask, np.random.default_rng(1))
    assert 0.9 <= out.mean() <= 1.1
    cropped, cropped_mask = random_crop(image, mask, (12, 16), np.random.default_rng(0))
    assert cropped.shape == (12, 16, 1) and cropped_mask.shape == (12, 16)
