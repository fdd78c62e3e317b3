"""The three objects every search is made of, and what passes between them.

A **space** samples genotypes; a **strategy** decides what to try next (it never trains a net
for a candidate itself: that is the evaluator's job); an **evaluator** trains and scores one
candidate at a chosen fidelity; an **executor** runs evaluations in-process or on Ray. This is
NNI's split (``nas/strategy``, ``nas/evaluator``) without its depth of machinery.

The frame runs a strategy step by step (:class:`searchers.searcher.Searcher`). Sample-based
strategies (GA, RENAS, random) subclass :class:`AskTellStrategy`: ``ask`` proposes candidates,
``tell`` receives their scores. One-shot strategies (DARTS-style supernets, ENAS shared weights)
subclass :class:`Strategy` directly: their ``step`` trains the supernet for one epoch through the
context and reports the genotype derived at that point as the step's candidate.
"""

from __future__ import annotations

import hashlib
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from nasseg.zoo.errors import NassegError
from nasseg.zoo.genotype import Genotype

if TYPE_CHECKING:
    from nasseg.searchers.searcher import SearchContext


class SearchError(NassegError):
    """A search cannot run as asked (bad budget, unknown strategy, nothing to resume, ...)."""


@dataclass
class Proposal:
    """One candidate a strategy wants scored.

    ``key`` is unique within the run (e.g. ``"g3-07"``: generation 3, child 7) and names the
    candidate's work folder; ``parent`` is the key of the candidate it was derived from (for
    parameter inheritance); ``extra`` carries what the evaluator needs beyond the genotype
    (e.g. which parts were mutated). Everything must be JSON-serialisable.
    """

    key: str
    genotype: Genotype
    parent: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalResult:
    """The score of one candidate: one line of ``history.jsonl``."""

    key: str
    genotype: Genotype
    step: int = 0
    status: Literal["ok", "failed"] = "ok"
    fitness: float = float("-inf")
    metrics: dict[str, float] = field(default_factory=dict)
    macs: int | None = None
    params: int | None = None
    seconds: float = 0.0
    error: str | None = None
    parent: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_record(self) -> dict[str, Any]:
        """The JSON line written to ``history.jsonl``."""
        record = asdict(self)
        record["genotype"] = self.genotype.to_dict()
        record["arch_hash"] = self.genotype.arch_hash
        if record["fitness"] == float("-inf"):
            record["fitness"] = None
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> EvalResult:
        data = {k: v for k, v in record.items() if k in cls.__dataclass_fields__}
        data["genotype"] = Genotype.from_dict(record["genotype"], source=f"history line {record.get('key')!r}")
        if data.get("fitness") is None:
            data["fitness"] = float("-inf")
        return cls(**data)


@dataclass
class Fidelity:
    """How hard a candidate is trained while searching (the papers search at low fidelity).

    ``epochs`` over at most ``max_images`` training images (all when ``None``), random crops of
    ``image_size``, ``max_steps_per_epoch`` optimiser steps at most and ``min_steps_per_epoch`` at
    least (a mini-set of a few images is passed over again until the floor is reached: one optimiser
    step per epoch cannot tell architectures apart), scored on at most ``max_val_images``
    validation images; ``channels_last`` trains in NHWC (faster on CPUs for most candidates).
    """

    epochs: int = 1
    image_size: tuple[int, int] = (64, 64)
    batch_size: int = 4
    max_images: int | None = None
    max_val_images: int | None = None
    max_steps_per_epoch: int | None = None
    min_steps_per_epoch: int | None = 20
    channels_last: bool = True
    lr: float = 1e-3
    optimizer: Literal["adam", "sgd"] = "adam"

    def __post_init__(self) -> None:
        self.image_size = tuple(self.image_size)  # type: ignore[assignment]
        if self.epochs < 1 or self.batch_size < 2 or min(self.image_size) < 8:
            raise SearchError(f"fidelity: epochs >= 1, batch size >= 2 and image size >= 8 needed, got {self}")


@dataclass
class Budget:
    """When a search stops: after ``steps`` strategy steps (generations, epochs), ``evaluations``
    candidates, or ``seconds`` of search time, whichever comes first (``None``: no limit)."""

    steps: int | None = None
    evaluations: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.steps is None and self.evaluations is None and self.seconds is None:
            raise SearchError("budget: give at least one of steps, evaluations or seconds")
        for name in ("steps", "evaluations", "seconds"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise SearchError(f"budget: {name} must be positive, got {value}")

    def exhausted(self, steps: int, evaluations: int, seconds: float) -> bool:
        return (
            (self.steps is not None and steps >= self.steps)
            or (self.evaluations is not None and evaluations >= self.evaluations)
            or (self.seconds is not None and seconds >= self.seconds)
        )


@runtime_checkable
class SearchSpace(Protocol):
    """Samples genotypes of one family; strategies mutate and cross what it samples."""

    name: str

    def sample(self, rng: random.Random) -> Genotype:
        """A uniformly random genotype of the space."""
        ...


class Evaluator(ABC):
    """Trains and scores one candidate; must be picklable (Ray ships it to workers)."""

    @abstractmethod
    def evaluate(self, proposal: Proposal, seed: int, workdir: Path) -> EvalResult:
        """Score ``proposal`` (``metrics`` filled; ``fitness`` is set by the strategy afterwards).

        ``seed`` fixes every random choice of the evaluation; ``workdir`` is the candidate's own
        folder in the run directory (weights a child may inherit go there). Raise on failure: the
        executor records the error and the search goes on.
        """

    def describe(self) -> dict[str, Any]:
        """What the evaluator does, for the run's provenance."""
        return {"type": type(self).__name__}


class Strategy(ABC):
    """Decides what to try next; ``step`` is one generation / epoch of the search."""

    name: str = "strategy"
    space: SearchSpace | None = None
    #: a :class:`searchers.latency.LatencyObjective` when the search has a latency table
    latency: Any = None

    @abstractmethod
    def step(self, context: SearchContext) -> list[EvalResult]:
        """Run one step (evaluations go through ``context.evaluate``); return its results."""

    def fitness(self, result: EvalResult) -> float:
        """The number a strategy maximises (default: validation IoU)."""
        return float(result.metrics.get("iou", float("-inf")))

    def done(self) -> bool:
        """True when the strategy has nothing more to do (besides the budget)."""
        return False

    def latency_genotype(self, genotype: Genotype) -> Genotype:
        """``genotype`` as the latency predictor can build it (IAC points its base at the run's file)."""
        return genotype

    def best(self, history: Sequence[EvalResult]) -> EvalResult | None:
        """The result to report as the search's answer (default: highest fitness in the history)."""
        finished = [r for r in history if r.ok]
        return max(finished, key=lambda r: r.fitness) if finished else None

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue after the last finished step (random state included)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""

    def describe(self) -> dict[str, Any]:
        """Hyper-parameters of the strategy, for the run's provenance."""
        return {"name": self.name}


class AskTellStrategy(Strategy):
    """A sample-based strategy: ``ask`` what to score, ``tell`` the scores (GA, evolution, random)."""

    @abstractmethod
    def ask(self, step: int) -> list[Proposal]:
        """Candidates of step ``step`` (their keys must be unique in the run)."""

    @abstractmethod
    def tell(self, step: int, results: list[EvalResult]) -> None:
        """Receive the scored candidates of step ``step`` (failed ones included, ``ok`` False)."""

    def step(self, context: SearchContext) -> list[EvalResult]:
        proposals = self.ask(context.step)
        results = context.evaluate(proposals)
        self.tell(context.step, results)
        return results


def derived_seed(seed: int, *parts: object) -> int:
    """A stable 31-bit seed from the run seed and a candidate key (same on every machine and run)."""
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


def rng_state(rng: random.Random) -> list[Any]:
    """A JSON-friendly ``random.Random`` state."""
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def set_rng_state(rng: random.Random, state: Sequence[Any]) -> None:
    """Restore :func:`rng_state`."""
    version, internal, gauss = state
    rng.setstate((version, tuple(internal), gauss))
