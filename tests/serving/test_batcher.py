"""FrameBatcher: queued requests of one frame shape run together, each gets its own rows."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from serving.batcher import FrameBatcher
from zoo.tiling import Abandoned


class SlowNet:
    """Masks = first channel, probabilities = its half; each call sleeps, and records its batch size."""

    def __init__(self, seconds: float = 0.3, fail: bool = False) -> None:
        self.seconds, self.fail, self.calls = seconds, fail, []
        self.started = threading.Event()

    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append(len(frames))
        self.started.set()
        time.sleep(self.seconds)
        if self.fail:
            raise RuntimeError("the session broke")
        return frames[..., 0].copy(), frames[..., 0] / 2.0


def frames(value: int, count: int = 1, side: int = 4) -> np.ndarray:
    return np.full((count, side, side, 3), value, np.uint8)


def run_all(batcher: FrameBatcher, inputs: list[np.ndarray], net: SlowNet) -> list:
    """The first input alone; the rest queued while it runs. Returns each request's result or error."""
    results: list = [None] * len(inputs)

    def call(index: int) -> None:
        try:
            results[index] = batcher.run(inputs[index])
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            results[index] = exc

    first = threading.Thread(target=call, args=(0,))
    first.start()
    assert net.started.wait(5)
    rest = [threading.Thread(target=call, args=(i,)) for i in range(1, len(inputs))]
    for thread in rest:
        thread.start()
    time.sleep(0.1)  # all queued before the first batch ends
    for thread in [first, *rest]:
        thread.join(10)
    return results


def test_a_lone_request_runs_alone() -> None:
    net = SlowNet(0.0)
    masks, probabilities = FrameBatcher(net, threading.Lock()).run(frames(7, 2))
    assert net.calls == [2] and masks.shape == (2, 4, 4) and (masks == 7).all() and (probabilities == 3.5).all()


def test_requests_queued_meanwhile_run_as_one_batch_and_get_their_own_rows() -> None:
    net = SlowNet()
    batcher = FrameBatcher(net, threading.Lock(), max_frames=8)
    inputs = [frames(1), frames(2, 2), frames(3), frames(4, 3)]
    results = run_all(batcher, inputs, net)
    assert net.calls == [1, 6] and batcher.batches == [1, 6]
    for value, frame, (masks, probabilities) in zip((1, 2, 3, 4), inputs, results, strict=True):
        assert masks.shape == frame.shape[:3] and (masks == value).all() and (probabilities == value / 2).all()


def test_batches_stay_within_max_frames_and_shapes_do_not_mix() -> None:
    net = SlowNet(0.2)
    batcher = FrameBatcher(net, threading.Lock(), max_frames=3)
    inputs = [frames(1), frames(2, 2), frames(3, 2), frames(4, side=6), frames(5)]
    results = run_all(batcher, inputs, net)
    assert sum(net.calls) == 7 and max(net.calls) <= 3 and len(net.calls) >= 4
    assert all(not isinstance(r, Exception) and (r[0] == v).all() for v, r in zip((1, 2, 3, 4, 5), results))
    assert results[3][0].shape == (1, 6, 6)


def test_a_request_past_its_deadline_is_dropped_not_run() -> None:
    net = SlowNet(0.0)
    with pytest.raises(Abandoned, match="timeout"):
        FrameBatcher(net, threading.Lock()).run(frames(1), deadline=time.monotonic() - 1)
    assert net.calls == []


def test_an_error_reaches_every_request_of_its_batch_and_the_next_batch_runs() -> None:
    net = SlowNet(0.2, fail=True)
    batcher = FrameBatcher(net, threading.Lock())
    results = run_all(batcher, [frames(1), frames(2), frames(3)], net)
    assert all(isinstance(r, RuntimeError) and "broke" in str(r) for r in results)
    net.fail = False
    assert (batcher.run(frames(9))[0] == 9).all()
    with pytest.raises(ValueError, match="max_frames"):
        FrameBatcher(net, threading.Lock(), max_frames=0)
