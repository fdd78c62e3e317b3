"""The search-quality report's statistics and its presentation: paired-difference intervals, the
README's table and the figure (``search_quality.py`` computes the rows)."""

from __future__ import annotations

import json
import math
import random
import statistics
from pathlib import Path
from typing import Any

SEARCHERS = ("unet-ga", "renas", "nas-asdet", "iac", "autosegnet")
#: rows of a searcher run with settings its own row did not have: (the searcher, what differs; ``data``:
#: another data set);
#: ``unet-ga-d0``: the GA without pix2pix's decoder dropout, the segmentation default since issue 29;
#: ``iac-defects``: IAC (live aligns) on synth-defects, where the base leaves more to gain than on
#: synth-membranes; ``renas-scratch``: RENAS's children trained from scratch (no inheritance), so
#: fitness compares architectures and not training age; ``autosegnet-unet``: AutoSegNet with every U-Net
#: long skip kept and no ``skip_connect`` op (its
#: controller settled on shallow, skip-heavy cells and dropped the long skips in 2 of 5 searches)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "unet-ga-d0": ("unet-ga", {"dropout": 0.0}),
    "autosegnet-unet": ("autosegnet", {"long_skips": "all", "ops": ("sep_conv_3x3", "sep_conv_5x5", "hdc_3x3")}),
    "nas-asdet-pt": ("nas-asdet", {"selection": "perturbation"}),
    "iac-live": ("iac", {"search_align": "random"}),
    "iac-live-pt": ("iac", {"search_align": "random", "selection": "perturbation"}),
    "iac-defects": ("iac", {"data": "synth-defects", "search_align": "random"}),
    "iac-defects-pt": ("iac", {"data": "synth-defects", "search_align": "random", "selection": "perturbation"}),
    "renas-scratch": ("renas", {"inherit": False}),
}
#: variants whose random arm is their searcher's, unit for unit (the change is in the search alone)
SHARED_RANDOM = {"nas-asdet-pt": "nas-asdet", "iac-live": "iac", "iac-live-pt": "iac", "iac-defects-pt": "iac-defects",
                 "renas-scratch": "renas"}  # fmt: skip
#: the report's rows, each variant after its searcher
ROWS = tuple(row for name in SEARCHERS for row in (name, *(v for v, (base, _) in VARIANTS.items() if base == name)))
CONTROLS = ("unet-small", "smp-unet-resnet18")


def searcher_of(name: str) -> str:
    """The searcher a row runs: its own name, or a variant's searcher."""
    return VARIANTS[name][0] if name in VARIANTS else name


def arm_unit(name: str, arm: str) -> str:
    """Whose units an arm of row ``name`` are: its own, or (a shared random arm) its searcher's."""
    return SHARED_RANDOM.get(name, name) if arm == "random" else name


def bootstrap_ci(values: list[float], level: float = 0.90, draws: int = 10_000, seed: int = 0) -> list[float]:
    """Percentile bootstrap interval of the mean of ``values``."""
    if len(values) < 2:
        return [math.nan, math.nan]
    rng = random.Random(seed)
    means = sorted(statistics.fmean(rng.choices(values, k=len(values))) for _ in range(draws))
    low, high = (1 - level) / 2, 1 - (1 - level) / 2
    return [means[int(low * (draws - 1))], means[int(high * (draws - 1))]]


def student_t_ci(values: list[float], level: float = 0.90) -> list[float]:
    """Student t interval of the mean of ``values`` (n - 1 degrees of freedom): the honest interval
    for a handful of paired differences, where a bootstrap can only resample the few numbers there are."""
    from scipy import stats

    if len(values) < 2:
        return [math.nan, math.nan]
    mean, sem = statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))
    half = float(stats.t.ppf(1 - (1 - level) / 2, len(values) - 1)) * sem
    return [mean - half, mean + half]


def difference_interval(values: list[float]) -> tuple[list[float], str]:
    """The 90 % interval of paired differences and its method: Student t under 10 seeds, bootstrap from 10."""
    if len(values) >= 10:
        return bootstrap_ci(values), "percentile bootstrap"
    return student_t_ci(values), "Student t"


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def number(value: float | None, spec: str) -> str:
    """``value`` formatted, or ``-`` where a row has no such number yet (one arm only: null or NaN)."""
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def markdown_table(report: dict[str, Any]) -> str:
    """The README's table: searcher, random counterpart, paired difference, controls, MACs, minutes."""
    controls = report.get("controls", {})
    lines = ["| searcher (data) | search seeds x retrain seeds | searcher test IoU | random counterpart | difference "
             "(90 % CI) | controls (same recipe) | MACs searcher / random | minutes |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name in ROWS:
        row = report.get("searchers", {}).get(name)
        if row is None:
            continue
        low, high = (math.nan if v is None else v for v in row["difference_ci90"])
        interval = f"[{low:+.3f}, {high:+.3f}]" if math.isfinite(low) else "(under two seeds: no interval)"
        data = row["data"]
        ctrl = ", ".join(f"{m} {controls[f'{data}/{m}']['test_iou_mean']:.3f}" for m in CONTROLS
                         if f"{data}/{m}" in controls)  # fmt: skip
        if searcher_of(name) == "iac":
            ctrl += f"; base {row.get('base_iou_mean', math.nan):.3f}, base fine-tuned "
            ctrl += f"{row.get('base_finetuned_iou_mean', math.nan):.3f}"
        mega = {arm: None if row[f"{arm}_macs_mean"] is None else row[f"{arm}_macs_mean"] / 1e6
                for arm in ("searcher", "random")}  # fmt: skip
        lines.append(
            f"| {name} ({data}) | {row['complete_seeds']} x {len(row['retrain_seeds'])} | "
            f"{number(row['searcher_iou_mean'], '.3f')} +- {number(row['searcher_iou_std'], '.3f')} | "
            f"{number(row['random_iou_mean'], '.3f')} +- {number(row['random_iou_std'], '.3f')} | "
            f"{number(row['difference_mean'], '+.3f')} {interval} | {ctrl} | "
            f"{number(mega['searcher'], '.1f')} M / {number(mega['random'], '.1f')} M | {row['minutes']:.0f} |"
        )
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    """Per searcher: test IoU of every retrained pick (searcher vs random counterpart, paired by
    search seed) and the paired difference with its 90 % interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(n, report["searchers"][n]) for n in ROWS if n in report.get("searchers", {})]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (_, row) in enumerate(rows):
        for seed_row in row["per_seed"]:
            for arm, dx, color in (("search", -0.12, "tab:blue"), ("random", 0.12, "tab:gray")):
                values = seed_row.get(f"{arm}_test_iou", [])
                left.scatter([i + dx] * len(values), values, color=color, s=14,
                             label=arm if i == 0 and seed_row is row["per_seed"][0] else None)  # fmt: skip
        low, high = row["difference_ci90"]
        mean = row["difference_mean"]
        if low is None or high is None or not math.isfinite(low):  # one seed: the mean alone
            right.plot([i], [mean], "o", color="tab:blue", fillstyle="none")
            continue
        right.errorbar([i], [mean], yerr=[[mean - low], [high - mean]], fmt="o", color="tab:blue", capsize=4)
    for ax, title in ((left, "test IoU of retrained picks"), (right, "searcher - random, mean and 90 % CI")):
        ax.set_xticks(range(len(rows)), [f"{n}\n({r['data']})" for n, r in rows], fontsize=8)
        ax.set_title(f"{title} ({report.get('scale')} scale)", fontsize=9)
        ax.grid(alpha=0.3)
    right.axhline(0, color="black", linewidth=0.8)
    left.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _finite(value: Any) -> Any:
    """``value`` with NaN (an interval of one seed) as ``null``: strict JSON readers reject NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: list(v) if isinstance(v, tuple) else str(v)))
