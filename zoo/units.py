"""Human-readable numbers for reports and model cards (one formatting for the CLI and the cards)."""

from __future__ import annotations

__all__ = ["human", "mib"]


def human(value: float, unit: str = "") -> str:
    """``5398069248`` -> ``'5.398 G'`` (``unit`` appended: ``'5.398 GB'``); below 1000 as an integer."""
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3f} {suffix}{unit}"
    return f"{value:.0f} {unit}".strip()


def mib(nbytes: float) -> str:
    """Bytes as mebibytes with two decimals: ``25821184`` -> ``'24.62 MiB'``."""
    return f"{nbytes / 2**20:.2f} MiB"
