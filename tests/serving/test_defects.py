"""Defect regions and verdicts from masks (serving.defects)."""

from __future__ import annotations

import numpy as np
import pytest

from nasseg.serving.defects import find_defects

NAMES = ["background", "scratch", "stain"]


def test_regions_with_class_bbox_area_and_mean_probability() -> None:
    mask = np.zeros((20, 30), np.uint8)
    probability = np.full((20, 30), 0.1, np.float32)
    mask[2:5, 3:9] = 1  # 18 px scratch
    probability[2:5, 3:9] = 0.8
    mask[10:20, 20:30] = 2  # 100 px stain
    probability[10:20, 20:30] = 0.6
    mask[0, 29] = 1  # 1 px speckle
    found = find_defects(mask, probability, NAMES, min_area=5)
    assert found.verdict == "NG" and found.defect_count == 2 and found.small_regions == 1
    stain, scratch = found.defects  # largest first
    assert (stain.class_name, stain.bbox, stain.area) == ("stain", (20, 10, 10, 10), 100)
    assert (scratch.class_index, scratch.bbox, scratch.area) == (1, (3, 2, 6, 3), 18)
    assert scratch.mean_probability == pytest.approx(0.8, abs=1e-4)
    assert stain.to_dict()["bbox"] == {"x": 20, "y": 10, "width": 10, "height": 10}


def test_diagonal_pixels_are_one_region() -> None:
    mask = np.eye(6, dtype=np.uint8)
    found = find_defects(mask, np.ones((6, 6), np.float32), NAMES, min_area=1)
    assert found.defect_count == 1 and found.defects[0].area == 6


def test_verdict_follows_the_minimum_area() -> None:
    mask = np.zeros((10, 10), np.uint8)
    mask[:3, :3] = 1
    probability = np.ones((10, 10), np.float32)
    assert find_defects(mask, probability, NAMES, min_area=9).verdict == "NG"
    small = find_defects(mask, probability, NAMES, min_area=10)
    assert small.verdict == "OK" and small.defects == [] and small.small_regions == 1
    assert find_defects(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.float32), NAMES).verdict == "OK"


def test_listing_is_capped_but_counted() -> None:
    mask = np.zeros((4, 40), np.uint8)
    mask[:, ::2] = 1  # 20 separate columns
    found = find_defects(mask, np.ones(mask.shape, np.float32), NAMES, min_area=2)
    listed = found.to_dict(max_listed=5)
    assert listed["defect_count"] == 20 and len(listed["defects"]) == 5 and listed["defects_truncated"]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="same"):
        find_defects(np.zeros((2, 2), np.uint8), np.zeros((3, 2), np.float32), NAMES)
    with pytest.raises(ValueError, match="min_area"):
        find_defects(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.float32), NAMES, min_area=0)
