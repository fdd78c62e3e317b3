"""Where weight files and user genotypes live (no torch: listing models must stay cheap)."""

from __future__ import annotations

import os
from pathlib import Path

from nasseg.zoo.errors import WeightsError
from nasseg.zoo.genotype import Genotype


def nasseg_home() -> Path:
    """The user directory for weights and genotypes: ``$NASSEG_HOME`` or ``~/.cache/nasseg``."""
    return Path(os.environ.get("NASSEG_HOME", "~/.cache/nasseg")).expanduser()


def find_weights(genotype: Genotype) -> Path:
    """Where the genotype's weight file is; :class:`WeightsError` listing the places searched."""
    if genotype.weights is None:
        raise WeightsError(f"model {genotype.name!r} has no weights (its genotype names no weights file)")
    name = Path(genotype.weights.file)
    candidates = [name] if name.is_absolute() else []
    if genotype.source is not None and not name.is_absolute():
        candidates.append(genotype.source.parent / name)
    candidates += [nasseg_home() / "weights" / name, nasseg_home() / name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise WeightsError(f"model {genotype.name!r}: weight file {str(name)!r} not found (searched {searched})")


__all__ = ["find_weights", "nasseg_home"]
