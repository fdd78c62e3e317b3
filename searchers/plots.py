"""Plots of a search's history: fitness per step, and IoU against MACs and against predicted latency
with the Pareto front."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nasseg.searchers.base import EvalResult
from nasseg.zoo.io import save_figure


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points ``(cost, quality)`` no other point beats on both (lower cost, higher quality), by cost."""
    front: list[tuple[float, float]] = []
    for cost, quality in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or quality > front[-1][1]:
            front.append((cost, quality))
    return front


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def write_plots(folder: Path, history: Sequence[EvalResult], answer: float | None = None) -> list[Path]:
    """Write ``fitness.png``, and ``iou_vs_macs.png`` / ``iou_vs_latency.png`` where the history has
    MACs / predicted latencies; returns the paths. ``answer``: the fitness of the strategy's pick
    (``best.json`` and the final line), drawn as a line beside the best single scoring."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in history if r.ok and _finite(r.fitness)]
    if not ok:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    written = []

    by_step: dict[int, list[float]] = defaultdict(list)
    for result in ok:
        by_step[result.step].append(result.fitness)
    steps = sorted(by_step)
    best_so_far, running = [], -math.inf
    for step in steps:
        running = max(running, max(by_step[step]))
        best_so_far.append(running)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    ax.scatter([r.step for r in ok], [r.fitness for r in ok], s=10, alpha=0.4, label="candidates")
    ax.plot(steps, [sum(by_step[s]) / len(by_step[s]) for s in steps], label="mean of step")
    ax.plot(steps, best_so_far, label="best single scoring so far")
    if _finite(answer):
        ax.axhline(answer, color="black", linestyle="--", linewidth=1,
                   label=f"answer {answer:.4f} (best.json; a mean where re-scored)")  # fmt: skip
    ax.set_xlabel("step (generation / epoch)")
    ax.set_ylabel("fitness")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    written.append(folder / "fitness.png")
    save_figure(fig, written[-1])
    plt.close(fig)

    macs = [(r.macs / 1e9, r.metrics["iou"]) for r in ok if r.macs and _finite(r.metrics.get("iou"))]
    if macs:
        written.append(_pareto_plot(plt, macs, "GMACs (multiply-accumulates, one image at the search size)",
                                    folder / "iou_vs_macs.png"))  # fmt: skip
    latency = [(r.extra["latency"]["predicted_ms"], r.metrics["iou"]) for r in ok
               if (r.extra.get("latency") or {}).get("predicted_ms") and _finite(r.metrics.get("iou"))]  # fmt: skip
    if latency:
        record = next(r.extra["latency"] for r in ok if r.extra.get("latency"))
        label = (f"predicted latency, ms ({record['size'][0]}x{record['size'][1]}, {record['runtime']}, "
                 f"{record['threads']} threads)")  # fmt: skip
        target = record.get("target_ms")
        written.append(_pareto_plot(plt, latency, label, folder / "iou_vs_latency.png", target))
    return written


def _pareto_plot(plt: Any, points: list[tuple[float, float]], xlabel: str, path: Path,
                 budget: float | None = None) -> Path:  # fmt: skip
    """Validation IoU against a cost, the Pareto front joined (and the cost budget, if any)."""
    front = pareto_front(points)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    ax.scatter(*zip(*points, strict=True), s=12, alpha=0.5, label="candidates")
    ax.step(*zip(*front, strict=True), where="post", color="C3", label="Pareto front")
    ax.scatter(*zip(*front, strict=True), s=22, color="C3")
    if budget is not None:
        ax.axvline(budget, color="black", linestyle="--", linewidth=0.8, label=f"target {budget:g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation IoU")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path
