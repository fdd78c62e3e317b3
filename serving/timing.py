"""Wall-clock timing of a callable (warm-up, then percentiles) and the name of the CPU it ran on.

Shared by :mod:`serving.quantize` (the fp32-vs-int8 report) and :mod:`serving.bench`.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from functools import cache

import numpy as np

#: Pause before each block of calls in :func:`interleaved_stats`, seconds.
SETTLE_S = 0.1


def _timed(fn: Callable[[], object], calls: int, sync: Callable[[], None] | None) -> list[float]:
    """Seconds of each of ``calls`` calls (``sync`` after each, inside the timed region)."""
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        if sync is not None:
            sync()
        times.append(time.perf_counter() - start)
    return times


def summarise(seconds: list[float]) -> dict[str, float]:
    """``p50_ms``, ``p90_ms``, ``p99_ms``, ``mean_ms``, ``min_ms`` and ``repeats`` of call times."""
    ms = np.asarray(seconds) * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"p50_ms": round(float(p50), 4), "p90_ms": round(float(p90), 4), "p99_ms": round(float(p99), 4),
            "mean_ms": round(float(ms.mean()), 4), "min_ms": round(float(ms.min()), 4), "repeats": len(ms)}  # fmt: skip


def interleaved_stats(fns: dict[str, Callable[[], object]], warmup: int = 3, repeats: int = 30, rounds: int = 3,
                      sync: Callable[[], None] | None = None,
                      settle_s: float = SETTLE_S) -> dict[str, dict[str, float]]:  # fmt: skip
    """Time several callables under the same conditions: each is warmed up ``warmup`` times, then
    the ``repeats`` timed calls of each are spread over ``rounds`` rounds; in every round each
    callable runs its share back to back, after a pause of ``settle_s`` seconds and one more
    untimed call. The rounds spread a load that comes and goes on a shared machine over all of
    them alike; the pause lets the previous runtime's worker threads stop spinning (ONNX Runtime's
    keep a core busy for some 50 ms after a run, which slowed the next PyTorch call up to 4x on a
    2-core machine). ``sync`` (e.g. ``torch.cuda.synchronize``) is called after every call, inside
    the timed region. Returns :func:`summarise` per name."""
    if repeats < 1 or warmup < 0 or rounds < 1:
        raise ValueError(f"need repeats >= 1, warmup >= 0, rounds >= 1; got {repeats}, {warmup}, {rounds}")
    for fn in fns.values():
        time.sleep(settle_s)
        _timed(fn, warmup, sync)
    rounds = min(rounds, repeats)
    shares = [repeats // rounds + (i < repeats % rounds) for i in range(rounds)]
    times: dict[str, list[float]] = {name: [] for name in fns}
    for share in shares:
        for name, fn in fns.items():
            time.sleep(settle_s)
            _timed(fn, 1, sync)
            times[name] += _timed(fn, share, sync)
    return {name: summarise(seconds) for name, seconds in times.items()}


def latency_stats(fn: Callable[[], object], warmup: int = 3, repeats: int = 30,
                  sync: Callable[[], None] | None = None) -> dict[str, float]:  # fmt: skip
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed one by one; returns
    :func:`summarise` of the timed calls."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    _timed(fn, warmup, sync)
    return summarise(_timed(fn, repeats, sync))


@cache
def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` / machine elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()
