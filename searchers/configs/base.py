"""What every searcher's config shares, and what building one gives.

A search is data: a :class:`SearchConfig` subclass per searcher holds every setting of its space,
strategy, fidelity, budget, latency objective and data (the ``nasseg search STRATEGY`` options,
by the same names), and its :meth:`SearchConfig.build` returns the strategy, evaluator and budget.
The CLI only fills a config from its options; ``run.json`` records it (``config``) with the
versions it ran under, so ``nasseg search --config RUN/run.json --out NEW`` replays the search.
"""

from __future__ import annotations

import platform
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nasseg.searchers.base import Budget, Evaluator, SearchError, Strategy

if TYPE_CHECKING:
    from nasseg.searchers.searcher import Searcher
from nasseg.searchers.latency import DEFAULT_WEIGHT, LatencyObjective, check_size

WORKERS_HELP = ("Evaluate N candidates at once in one-thread worker processes (1: all in this process). Default: "
                "one per CPU core for a batch of candidates, a lone candidate here on every thread; 1 on a GPU; "
                "NASSEG_SEARCH_WORKERS sets it.")
RAY_HELP = "Evaluate as Ray tasks: 'local' (with --workers N) or a cluster's address."


def option(default: Any, help: str, *flags: str, **constraints: Any) -> Any:
    """A config field that is also an option of its ``nasseg search`` command: ``help`` is its help
    text and ``flags`` its names where they are not ``--field-name`` (``"-K"``, ``"--random"``); a
    boolean that defaults to true is ``--name/--no-name``."""
    extra = {"flags": list(flags)} if flags else None
    return Field(default, description=help, json_schema_extra=extra, **constraints)


def selection_option(default: str) -> Any:
    """``--selection``, how a differentiable search derives its final cells (both DARTS-family searchers)."""
    return option(default, "How the final cells are chosen: alpha (the paper's largest weight) or perturbation "
                  "(DARTS-PT: the ops and edges whose removal hurts the supernet's objective most).")  # fmt: skip


def perturbation_batches_option() -> Any:
    """``--perturbation-batches``: the validation batches each perturbation score is measured on."""
    return option(8, "Validation batches each perturbation score is measured on (cost: about 100 supernet passes "
                  "each).", ge=1)  # fmt: skip


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

    table: Path | None = option(
        None,
        "Latency table of the target machine (`nasseg latency table`): every "
        "candidate's predicted latency is recorded, and --latency-target penalises slow ones.",
    )
    target: float | None = option(
        None,
        "Latency budget in ms at --latency-size (MnasNet's soft constraint: a "
        "score is multiplied by (LAT / target) ** -weight over it).",
        gt=0,
    )
    weight: float = option(
        DEFAULT_WEIGHT, "The penalty's exponent (0.07: MnasNet; 0.5 or more is nearly a hard limit).", ge=0
    )
    size: str = option("256x256", "Frame size HxW the latency is for.")

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


class SearchConfig(BaseModel, ABC):
    """Settings every searcher has; subclasses add their own and set ``searcher``."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())
    searcher: str
    data: Path = Field(description="Dataset folder (ROOT/{train,val,test}/{images,masks}).")
    seed: int = option(0, "One seed fixes the search on CPU.")
    device: str = option("cpu", "cpu, cuda, auto.", pattern="^(cpu|cuda|auto)$")
    image_size: int = option(..., "Training crop side while searching.", ge=8)
    max_images: int | None = option(None, "Training images per candidate.", ge=2)
    max_val_images: int | None = option(None, "Validation images scored.", ge=1)
    max_steps: int | None = option(None, "Optimiser steps per epoch at most.", ge=1)
    max_seconds: float | None = option(None, "Stop after this much search time.", ge=1)
    latency: LatencySettings = LatencySettings()

    #: the ``nasseg search NAME`` command's help (its first line is the listing's)
    summary: ClassVar[str] = ""

    @field_validator("data")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return Path(value).expanduser().absolute()

    @abstractmethod
    def build(self) -> BuiltSearch:
        """The strategy, evaluator and budget these settings make (each searcher's config says how)."""

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


def make_searcher(config: SearchConfig, run_dir: str | Path, built: BuiltSearch | None = None,
                  latency: LatencyObjective | None = None) -> Searcher:  # fmt: skip
    """The :class:`Searcher` of ``config`` (``built``: what :meth:`SearchConfig.build` gave, if it
    ran already) in ``run_dir``, with the executor and the latency objective the config asks for
    (``latency``: an objective made elsewhere, e.g. from a table in memory); its ``run.json``
    records the config and the versions it ran under."""
    from nasseg.searchers.executors import make_executor
    from nasseg.searchers.searcher import Searcher

    built = built or config.build()
    latency = latency or config.latency.objective()
    record = {**built.record, "config": config.model_dump(mode="json"), "versions": versions()}
    if latency is not None:
        built.strategy.latency = latency
        record["latency"] = latency.describe()
    # a searcher whose config has no --workers trains its own supernet: its evaluations run here
    workers = getattr(config, "workers", 1)
    executor = make_executor(workers, getattr(config, "ray", None), str(getattr(config, "device", "cpu")))
    return Searcher(built.strategy, built.evaluator, built.budget, run_dir, executor=executor, seed=config.seed,
                    dataset=str(config.data), config=record)  # fmt: skip


def versions() -> dict[str, str]:
    """The versions a run ran under (recorded beside its config in ``run.json``)."""
    import numpy
    import torch

    from nasseg.zoo._version import __version__

    return {"nasseg": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}  # fmt: skip
