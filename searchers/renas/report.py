"""Plots of a RENAS search: mean and best population fitness over evaluations (the paper's Fig. 4 axes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nasseg.zoo.io import save_figure


def population_stats(curves: Sequence[Sequence[Mapping[str, Any]]]) -> dict[str, list[float]]:
    """Mean over runs (seeds) of the population mean and best, per step (runs cut to the shortest)."""
    length = min(len(c) for c in curves)
    pick = lambda field: np.array([[float(point[field]) for point in c[:length]] for c in curves])  # noqa: E731
    mean, best = pick("mean"), pick("best")
    return {"evaluations": pick("evaluations").mean(axis=0).tolist(), "mean": mean.mean(axis=0).tolist(),
            "mean_std": mean.std(axis=0).tolist(), "best": best.mean(axis=0).tolist(),
            "best_std": best.std(axis=0).tolist()}  # fmt: skip


def plot_population(runs: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]], path: str | Path,
                    metric: str = "fitness", title: str | None = None) -> Path:  # fmt: skip
    """One line pair per label (solid: population mean, dashed: population best), shaded +-1 std over runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for index, (label, curves) in enumerate(runs.items()):
        curves = [c for c in curves if c]
        if not curves:
            continue
        stats = population_stats(curves)
        x, color = stats["evaluations"], f"C{index}"
        for field, style in (("mean", "-"), ("best", "--")):
            y, std = np.array(stats[field]), np.array(stats[f"{field}_std"])
            ax.plot(x, y, style, color=color, label=f"{label} ({field})")
            if len(curves) > 1:
                ax.fill_between(x, y - std, y + std, color=color, alpha=0.12)
    ax.set_xlabel("evaluations")
    ax.set_ylabel(f"population {metric}")
    ax.set_title(title or "RENAS: population fitness")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path
