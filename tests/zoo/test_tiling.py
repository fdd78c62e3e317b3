"""Tiled inference: windows that partition the frame, exact results for local ops, and a trained net's
masks that match whole-frame inference."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import ndimage

from nasseg import zoo
from nasseg.zoo.inference import predict_array
from nasseg.zoo.tiling import Abandoned, predict_tiled, tile_for, windows


@pytest.mark.parametrize(("height", "width"), [(1, 1), (256, 256), (257, 256), (3000, 8192), (1000, 2049)])
@pytest.mark.parametrize(("tile", "overlap"), [(256, 32), (512, 64), (100, 0)])
def test_kept_parts_partition_the_frame_and_stay_away_from_inner_edges(height, width, tile, overlap) -> None:
    cover = np.zeros((height, width), np.int32)
    for w in windows(height, width, tile, overlap):
        assert w.y1 - w.y0 == min(tile, height) and w.x1 - w.x0 == min(tile, width)  # full tiles, flush borders
        assert w.y0 <= w.keep_y0 < w.keep_y1 <= w.y1 and w.x0 <= w.keep_x0 < w.keep_x1 <= w.x1
        for start, keep, stop, keep_stop, length in ((w.y0, w.keep_y0, w.y1, w.keep_y1, height),
                                                     (w.x0, w.keep_x0, w.x1, w.keep_x1, width)):  # fmt: skip
            assert start == 0 or keep - start >= overlap
            assert stop == length or stop - keep_stop >= overlap
        cover[w.keep_y0 : w.keep_y1, w.keep_x0 : w.keep_x1] += 1
    assert (cover == 1).all()


def test_a_local_filter_tiled_equals_the_whole_frame() -> None:
    frame = np.random.default_rng(0).integers(0, 255, (700, 1900, 3), dtype=np.uint8)

    def box(window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        smooth = ndimage.uniform_filter(window[..., 0].astype(np.float32), size=31, mode="nearest")
        return (smooth > 127).astype(np.uint8), smooth

    mask, smooth = predict_tiled(frame, box, tile=256, overlap=16)  # radius 15 < overlap
    whole_mask, whole = box(frame)
    assert np.array_equal(mask, whole_mask) and np.allclose(smooth, whole, atol=1e-3)


def test_a_deadline_stops_the_work_between_tiles() -> None:
    calls = []

    def count(window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(1)
        if len(calls) == 2:  # the request is abandoned while its second window runs
            deadline[0] = time.monotonic() - 1
        return np.zeros(window.shape[:2], np.uint8), np.zeros(window.shape[:2], np.float32)

    frame = np.zeros((1000, 1000, 1), np.uint8)
    deadline = [time.monotonic() + 3600]

    with pytest.raises(Abandoned):
        predict_tiled(frame, count, tile=128, deadline=_Moving(deadline))
    assert len(calls) == 2  # no window runs after the deadline has passed
    calls.clear()
    predict_tiled(frame, count, tile=128, deadline=None)
    assert len(calls) == len(windows(1000, 1000, 128, 32))


class _Moving:
    """A deadline the test can move: compares like the float in ``box[0]``."""

    def __init__(self, box: list[float]) -> None:
        self.box = box

    def __lt__(self, other: float) -> bool:
        return self.box[0] < other

    def __gt__(self, other: float) -> bool:
        return self.box[0] > other


def test_tiles_are_multiples_of_the_divisor() -> None:
    assert tile_for(32, 1000) == 992 and tile_for(256, 100) == 256 and tile_for(1, 1024) == 1024


def test_a_trained_net_tiled_matches_whole_frame_inference() -> None:
    model = zoo.create_model("unet-small-synth-defects", pretrained=True)
    rng = np.random.default_rng(3)
    image = np.clip(0.5 + 0.1 * rng.standard_normal((512, 768, 3)), 0, 1).astype(np.float32)
    image[200:230, 300:420] = 0.1  # a scratch across a tile seam
    whole_mask, whole_probability = predict_array(model, image, tile=None)
    mask, probability = predict_array(model, image, tile=256)
    assert mask.shape == whole_mask.shape == (512, 768)
    assert (mask == whole_mask).mean() > 0.999
    assert np.abs(probability - whole_probability).mean() < 1e-3
