"""Successive halving after a search: the best architectures promoted to longer trainings.

A search ranks its candidates at a low fidelity, and a short training favours nets that learn fast
(small ones) over nets that end better: at loose latency budgets the GA's pick stayed at about
5 ms whatever the budget (``benchmarks/results/latency_budgets.json``). Successive halving
(Jamieson & Talwalkar 2016; Hyperband's inner loop, Li et al. 2017) spends more training where
the ranking is close: rung 0 is the search's own ranking; rung ``r`` trains the best
``1 / rate`` of rung ``r - 1``'s architectures from scratch for ``rate ** r`` times the search's
epochs, and the pick is the best of the last rung. Each promotion is one evaluation with its own
key (``h1-00``), so it is in the history, resumes and replays like any candidate; the fitness is
the search's own (its latency factor included: one objective).

The evaluator reads a promoted candidate's epochs from ``Proposal.extra["epochs"]``
(:func:`proposal_epochs`), the one override of a fidelity a proposal may carry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nasseg.searchers.base import EvalResult, Proposal, SearchError
from nasseg.zoo.genotype import Genotype


def proposal_epochs(proposal: Proposal, default: int) -> int:
    """The epochs ``proposal`` asks to be trained for (a promotion), else ``default``."""
    epochs = proposal.extra.get("epochs")
    if epochs is None:
        return default
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise SearchError(f"candidate {proposal.key}: epochs {epochs!r} is not a whole number >= 1")
    return epochs


@dataclass(frozen=True)
class Ranked:
    """One architecture of a rung: its identity in the search (``code``), genotype and fitness."""

    code: str
    genotype: dict[str, Any]
    fitness: float


class SuccessiveHalving:
    """``rungs`` promotions at ``rate`` (keep the best ``ceil(n / rate)``, train ``rate`` x longer).

    :meth:`start` takes the search's ranking; then :meth:`ask` / :meth:`tell` run one rung each
    until :meth:`done`; :meth:`best` is the best of the last rung told.
    """

    def __init__(self, rungs: int, rate: int = 3, epochs: int = 1) -> None:
        if rungs < 0 or rate < 2 or epochs < 1:
            raise SearchError(f"successive halving: rungs >= 0, rate >= 2 and epochs >= 1 needed, got "
                              f"{rungs}, {rate}, {epochs}")  # fmt: skip
        self.rungs, self.rate, self.epochs = rungs, rate, epochs
        self.ladder: list[list[Ranked]] = []  # rung 0 (the search's ranking), then each rung told

    @property
    def rung(self) -> int:
        """The last rung ranked (-1 before :meth:`start`)."""
        return len(self.ladder) - 1

    def start(self, ranking: Sequence[Ranked]) -> None:
        """Rung 0: the search's architectures, any order (failed ones, fitness <= 0, never promoted)."""
        self.ladder = [sorted((r for r in ranking if r.fitness > 0), key=lambda r: -r.fitness)]

    def promoted(self) -> list[Ranked]:
        """The architectures the next rung trains."""
        last = self.ladder[-1]
        return last[: math.ceil(len(last) / self.rate)]

    def done(self) -> bool:
        return bool(self.ladder) and (self.rung >= self.rungs or len(self.ladder[-1]) <= 1)

    def next_rung(self, ranking: Callable[[], Sequence[Ranked]]) -> list[Proposal]:
        """The next rung's proposals, starting from the search's ``ranking()`` on the first call
        (none when nothing is left to promote)."""
        if self.rung < 0:
            self.start(ranking())
        return [] if self.done() else self.ask()

    def ask(self) -> list[Proposal]:
        rung = self.rung + 1
        epochs = self.epochs * self.rate**rung
        return [Proposal(f"h{rung}-{i:02d}", Genotype.from_dict(r.genotype),
                         extra={"code": r.code, "rung": rung, "epochs": epochs})
                for i, r in enumerate(self.promoted())]  # fmt: skip

    def tell(self, results: Sequence[EvalResult], fitness: Callable[[EvalResult], float]) -> None:
        told = [Ranked(r.extra["code"], r.genotype.to_dict(), fitness(r) if r.ok else 0.0) for r in results]
        self.ladder.append(sorted(told, key=lambda r: -r.fitness))

    def best(self, history: Sequence[EvalResult]) -> EvalResult | None:
        """The last rung's best result (None before a rung is told)."""
        if self.rung < 1 or not self.ladder[-1] or self.ladder[-1][0].fitness <= 0:
            return None
        rung, code = self.rung, self.ladder[-1][0].code
        found = [r for r in history if r.extra.get("rung") == rung and r.extra.get("code") == code and r.ok]
        return found[-1] if found else None

    def describe(self) -> dict[str, Any]:
        return {"rungs": self.rungs, "rate": self.rate, "epochs": self.epochs}

    def state_dict(self) -> dict[str, Any]:
        return {"ladder": [[r.__dict__ for r in rung] for rung in self.ladder]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ladder = [[Ranked(**r) for r in rung] for rung in state.get("ladder", [])]
