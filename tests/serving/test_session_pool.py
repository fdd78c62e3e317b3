"""The worker's session pool: wide alone for a lone request, narrow side by side under load, never both."""

from __future__ import annotations

import threading
import time

import pytest

from nasseg.serving.session_pool import SessionPool, WideLock, default_streams


class Recorder:
    """Fake sessions that record which ran at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: list[str] = []
        self.overlaps: list[tuple[str, ...]] = []
        self.opened: list[int] = []

    def open(self, threads: int) -> str:
        self.opened.append(threads)
        return f"{'wide' if len(self.opened) == 1 else 'narrow'}-{len(self.opened)}"

    def run(self, pool: SessionPool, seconds: float = 0.02) -> str:
        with pool.session() as name:
            with self.lock:
                self.running.append(name)
                self.overlaps.append(tuple(sorted(self.running)))
            time.sleep(seconds)
            with self.lock:
                self.running.remove(name)
        return name


def test_threads_split_between_the_narrow_sessions() -> None:
    recorder = Recorder()
    pool = SessionPool(recorder.open, threads=4, streams=2)
    assert recorder.opened == [4, 2, 2]
    assert pool.narrow_threads == 2
    assert SessionPool(Recorder().open, threads=1, streams=3).narrow_threads == 1
    with pytest.raises(ValueError, match="streams"):
        SessionPool(Recorder().open, threads=2, streams=0)


def test_a_lone_request_gets_the_wide_session() -> None:
    recorder = Recorder()
    pool = SessionPool(recorder.open, threads=2, streams=2)
    assert [recorder.run(pool, 0.0) for _ in range(5)] == ["wide-1"] * 5
    assert pool.runs == {"wide": 5, "narrow": 0}


def test_queued_requests_run_narrow_side_by_side_and_never_beside_the_wide_one() -> None:
    recorder = Recorder()
    pool = SessionPool(recorder.open, threads=2, streams=2)
    names: list[str] = []

    def client() -> None:
        for _ in range(6):
            names.append(recorder.run(pool))

    clients = [threading.Thread(target=client) for _ in range(4)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    assert len(names) == 24
    assert pool.runs["narrow"] >= 20  # under a queue nearly every frame runs narrow
    assert max(len(overlap) for overlap in recorder.overlaps) == 2  # two narrow at once: both used
    for overlap in recorder.overlaps:
        assert len(overlap) <= 2
        assert "wide-1" not in overlap or overlap == ("wide-1",)


def test_one_stream_is_one_session_behind_a_lock() -> None:
    recorder = Recorder()
    pool = SessionPool(recorder.open, threads=2, streams=1)
    clients = [threading.Thread(target=recorder.run, args=(pool,)) for _ in range(4)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    assert recorder.opened == [2]
    assert {overlap for overlap in recorder.overlaps} == {("wide-1",)}


def test_a_tile_waits_for_the_wide_session_and_narrow_runs_stop_starting() -> None:
    recorder = Recorder()
    pool = SessionPool(recorder.open, threads=2, streams=2)
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            recorder.run(pool, 0.01)

    clients = [threading.Thread(target=client) for _ in range(3)]
    for thread in clients:
        thread.start()
    time.sleep(0.05)
    lock = WideLock(pool)
    for _ in range(3):  # three tiles of one frame: each gets the wide session alone despite the load
        with lock:
            with recorder.lock:
                assert recorder.running == []
        time.sleep(0.01)
    stop.set()
    for thread in clients:
        thread.join()
    assert pool.runs["narrow"] > 0


def test_queued_requests_are_served_first_come_first_served() -> None:
    pool = SessionPool(Recorder().open, threads=2, streams=2)
    order: list[str] = []
    order_lock = threading.Lock()

    def request(label: str) -> None:
        with pool.session():
            with order_lock:
                order.append(label)
            time.sleep(0.02)

    with pool.session() as first:  # a lone request: the wide session; the rest queue behind it
        assert first == "wide-1"
        threads = []
        for count, label in enumerate("ABCDE", start=1):
            threads.append(threading.Thread(target=request, args=(label,)))
            threads[-1].start()
            deadline = time.monotonic() + 5
            while pool._waiting < count and time.monotonic() < deadline:
                time.sleep(0.001)
    for thread in threads:
        thread.join()
    assert order == list("ABCDE")
    assert pool.runs == {"wide": 1, "narrow": 5}


def test_default_streams_one_per_thread_on_a_cpu_one_on_a_gpu() -> None:
    assert default_streams(None, threads=4, on_gpu=False) == 4
    assert default_streams(None, threads=4, on_gpu=True) == 1
    assert default_streams(3, threads=2, on_gpu=True) == 3
