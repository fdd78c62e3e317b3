"""The search loop shared by every strategy: steps, history, checkpoints, best genotype, plots.

``Searcher(strategy, evaluator, budget, executor, run_dir).run()`` runs ``strategy.step`` until the
budget is spent or the strategy is done. After every step it writes ``best.json``, the plots and,
last, the checkpoint (see :mod:`searchers.run_dir` for why that order loses nothing). On resume
the strategy's state comes back from the checkpoint and the evaluations a killed step had already
finished are taken from the history, so on CPU with the same seed a resumed search ends with the
same best genotype as an uninterrupted one (each candidate's seed comes from the run seed and its
key, not from the order things ran in).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasseg.searchers.base import Budget, EvalResult, Evaluator, Proposal, SearchError, Strategy, derived_seed
from nasseg.searchers.executors import InProcessExecutor, Job, PoolExecutor, RayExecutor
from nasseg.searchers.run_dir import RunDirectory
from nasseg.zoo.genotype import Genotype


@dataclass
class StepReport:
    """What the progress display shows after each step."""

    step: int
    evaluations: int
    seconds: float
    best_fitness: float | None
    results: list[EvalResult]


@dataclass
class SearchResult:
    """The answer of a search: the best genotype (as written to ``best.json``) and the history."""

    genotype: Genotype | None
    best: EvalResult | None
    history: list[EvalResult]
    run_dir: Path
    seconds: float
    steps: int


@dataclass
class SearchContext:
    """What a strategy's ``step`` may use: the evaluator (through :meth:`evaluate`), the run, the seed."""

    run: RunDirectory
    strategy: Strategy
    evaluator: Evaluator | None
    executor: InProcessExecutor | PoolExecutor | RayExecutor
    seed: int
    step: int = 0
    history: list[EvalResult] = field(default_factory=list)
    replay: dict[str, EvalResult] = field(default_factory=dict)
    on_result: Callable[[EvalResult], None] | None = None

    def evaluate(self, proposals: Sequence[Proposal], evaluator: Evaluator | None = None) -> list[EvalResult]:
        """Score ``proposals`` with the search's evaluator, or ``evaluator`` (a one-shot strategy's own,
        e.g. AutoSegNet's stand-alone retraining of its top children); candidates a killed run already
        scored come from the history."""
        evaluator = evaluator or self.evaluator
        if evaluator is None:
            raise SearchError(f"strategy {self.strategy.name!r} asked for evaluations but the search has no evaluator")
        keys = [p.key for p in proposals]
        if len(set(keys)) != len(keys):
            raise SearchError(f"strategy {self.strategy.name!r} proposed duplicate keys in step {self.step}")
        results: dict[str, EvalResult] = {}
        jobs = []
        for proposal in proposals:
            done = self.replay.pop(proposal.key, None)
            if done is not None and done.genotype.arch_hash == proposal.genotype.arch_hash:
                self.history.append(done)
                results[proposal.key] = done
            else:
                seed = derived_seed(self.seed, proposal.key)
                jobs.append(Job(proposal, seed, self.run.candidate_dir(proposal.key)))
        for result in self.executor.map(evaluator, jobs, on_result=self.record):
            results[result.key] = result
        return [results[key] for key in keys]

    def record(self, result: EvalResult) -> EvalResult:
        """Score and log one finished candidate (one-shot strategies call this for their derived genotypes)."""
        result.step = self.step
        latency = self.strategy.latency
        if latency is not None and result.ok and "latency" not in result.extra:
            result.extra["latency"] = latency.record(self.strategy.latency_genotype(result.genotype))
        result.fitness = self.strategy.fitness(result) if result.ok else float("-inf")
        replayed = self.replay.pop(result.key, None)
        if replayed is None:  # not already in history.jsonl from before a kill
            self.run.append(result)
            self.run.write_candidate(result)
        self.history.append(result)
        if self.on_result:
            self.on_result(result)
        return result


class Searcher:
    """Runs a strategy against an evaluator under a budget, in a run directory."""

    def __init__(
        self,
        strategy: Strategy,
        evaluator: Evaluator | None,
        budget: Budget,
        run_dir: str | Path,
        executor: InProcessExecutor | PoolExecutor | RayExecutor | None = None,
        seed: int = 0,
        dataset: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.strategy = strategy
        self.evaluator = evaluator
        self.budget = budget
        self.run_dir = RunDirectory(run_dir)
        self.executor = executor or InProcessExecutor()
        self.seed = seed
        self.dataset = dataset
        self.config = config or {}

    def describe(self) -> dict[str, Any]:
        """``run.json``: what this search was asked to do."""
        return {
            "strategy": self.strategy.describe(),
            "evaluator": self.evaluator.describe() if self.evaluator else None,
            "budget": vars(self.budget),
            "executor": self.executor.describe(),
            "seed": self.seed,
            "dataset": self.dataset,
            **self.config,
        }

    def run(
        self,
        resume: bool = False,
        on_step: Callable[[StepReport], None] | None = None,
        on_result: Callable[[EvalResult], None] | None = None,
    ) -> SearchResult:
        """Search until the budget is spent; ``resume`` continues the run directory's last checkpoint."""
        run = self.run_dir
        run.create(self.describe(), resume)
        step, prior_seconds = 0, 0.0
        state = run.load_checkpoint() if resume else None
        if state is not None:
            self.strategy.load_state_dict(state["strategy"])
            step, prior_seconds = int(state["step"]), float(state["seconds"])
        run.truncate_torn_line()
        history = run.history()
        context = SearchContext(run, self.strategy, self.evaluator, self.executor, self.seed, step,
                                history=[r for r in history if r.step < step],
                                replay={r.key: r for r in history if r.step >= step}, on_result=on_result)  # fmt: skip
        start = time.perf_counter()

        def elapsed() -> float:
            return prior_seconds + time.perf_counter() - start

        try:
            while not self.budget.exhausted(step, len(context.history), elapsed()) and not self.strategy.done():
                context.step = step
                results = self.strategy.step(context)
                step += 1
                best = self.strategy.best(context.history)
                if best is not None:
                    run.write_best(best, self.strategy.name, self.dataset, self.seed, elapsed())
                _write_plots(run, context.history, best.fitness if best is not None else None)
                run.save_checkpoint({"strategy": self.strategy.state_dict(), "step": step, "seconds": elapsed()})
                if on_step:
                    on_step(StepReport(step, len(context.history), elapsed(), best.fitness if best else None, results))
        finally:
            self.executor.shutdown()
        best = self.strategy.best(context.history)
        genotype = Genotype.from_json(run.best_path) if best is not None and run.best_path.is_file() else None
        return SearchResult(genotype, best, context.history, run.path, elapsed(), step)


def _write_plots(run: RunDirectory, history: list[EvalResult], answer: float | None = None) -> None:
    from nasseg.searchers.plots import write_plots

    write_plots(run.plots_dir, history, answer)
