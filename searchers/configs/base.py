"""What every searcher's config shares, and what building one gives.

A search is data: a :class:`SearchConfig` subclass per searcher holds every setting of its space,
strategy, fidelity, budget, latency objective and data (the ``nasseg search STRATEGY`` options,
by the same names), and its :meth:`SearchConfig.build` returns the strategy, evaluator and budget.
The CLI only fills a config from its options; ``run.json`` records it (``config``) with the
versions it ran under, so ``nasseg search --config RUN/run.json --out NEW`` replays the search.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nasseg.searchers.base import Budget, Evaluator, SearchError, Strategy
from nasseg.searchers.latency import DEFAULT_WEIGHT, LatencyObjective, check_size


def comma_ints(value: Any) -> Any:
    """``"7,4,2,1"`` -> (7, 4, 2, 1); sequences pass through (pydantic checks their items)."""
    if isinstance(value, str):
        try:
            return tuple(int(part) for part in value.split(",") if part.strip())
        except ValueError:
            raise ValueError(f"{value!r}: give comma-separated integers, e.g. 64,128,256") from None
    return value


class LatencySettings(BaseModel):
    """``--latency-table/-target/-weight/-size``: the latency objective (none without a table)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: Path | None = None
    target: float | None = Field(None, gt=0)
    weight: float = Field(DEFAULT_WEIGHT, ge=0)
    size: str = "256x256"

    def objective(self) -> LatencyObjective | None:
        from nasseg.zoo.sizing import parse_size

        return LatencyObjective.from_options(self.table, self.target, self.weight, check_size(parse_size(self.size)))


@dataclass
class BuiltSearch:
    """What a config builds: the parts of a :class:`searchers.Searcher` and how to talk about it."""

    strategy: Strategy
    evaluator: Evaluator | None
    budget: Budget
    name: str  # the default run folder is runs/search-NAME
    label: str  # the progress bar's
    record: dict[str, Any] = field(default_factory=dict)  # extra run.json keys (descriptive)
    epilogue: Callable[[Any], str | None] | None = None  # a line about the result, for people


class SearchConfig(BaseModel):
    """Settings every searcher has; subclasses add their own and set ``searcher``."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())
    searcher: str
    data: Path
    seed: int = 0
    device: str = Field("cpu", pattern="^(cpu|cuda|auto)$")
    image_size: int = Field(ge=8)
    max_images: int | None = Field(None, ge=2)
    max_val_images: int | None = Field(None, ge=1)
    max_steps: int | None = Field(None, ge=1)
    max_seconds: float | None = Field(None, ge=1)
    latency: LatencySettings = LatencySettings()

    #: option names the CLI has that are not settings of the search (where it runs, how it prints)
    RUN_OPTIONS: ClassVar[frozenset[str]] = frozenset({"out", "resume", "as_json", "print_config"})

    @field_validator("data")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return Path(value).expanduser().absolute()

    def build(self) -> BuiltSearch:
        raise NotImplementedError

    def check_data(self) -> None:
        if not self.data.is_dir():
            raise SearchError(f"--data {self.data}: no such dataset folder")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> SearchConfig:
        """The config a command's options make (``options``: the command's arguments by name; the
        ``latency_*`` ones fill :class:`LatencySettings`)."""
        latency = {key[len("latency_") :]: value for key, value in options.items() if key.startswith("latency_")}
        values = {key: value for key, value in options.items()
                  if key in cls.model_fields and key not in ("searcher", "latency")}  # fmt: skip
        values |= {"searcher": cls.model_fields["searcher"].default, "latency": latency}
        return validated(cls, values, "options")


def validated(model: type[SearchConfig], values: dict[str, Any], where: str) -> SearchConfig:
    """``model(**values)``, its validation errors as one :class:`SearchError` line that names ``where``
    (a file) or, for ``where="options"``, the options (``--mutation: ...``)."""
    try:
        return model(**values)
    except ValidationError as exc:
        if where == "options":  # the command line's names: --mutation, --latency-target
            problems = "; ".join(f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}"
                                 for e in exc.errors())  # fmt: skip
            raise SearchError(problems) from None
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors())
        raise SearchError(f"{where}: {problems}") from None


def versions() -> dict[str, str]:
    """The versions a run ran under (recorded beside its config in ``run.json``)."""
    import numpy
    import torch

    from nasseg.zoo._version import __version__

    return {"nasseg": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}  # fmt: skip
