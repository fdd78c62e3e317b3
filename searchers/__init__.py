"""Searchers: space, strategy and evaluator as separate objects, one loop, one run directory.

``Searcher(strategy, evaluator, budget, run_dir, executor).run()`` -> :class:`SearchResult`.
See :mod:`searchers.base` for the objects and :mod:`searchers.run_dir` for the files a run writes.
"""

from nasseg.searchers.base import (
    AskTellStrategy,
    Budget,
    EvalResult,
    Evaluator,
    Fidelity,
    Proposal,
    SearchError,
    SearchSpace,
    Strategy,
    derived_seed,
)
from nasseg.searchers.evaluators import SegmentationEvaluator
from nasseg.searchers.executors import AutoExecutor, InProcessExecutor, PoolExecutor, RayExecutor, make_executor
from nasseg.searchers.random_search import RandomStrategy
from nasseg.searchers.run_dir import RunDirectory
from nasseg.searchers.searcher import SearchContext, Searcher, SearchResult, StepReport

__all__ = [
    "AutoExecutor",
    "AskTellStrategy",
    "Budget",
    "EvalResult",
    "Evaluator",
    "Fidelity",
    "InProcessExecutor",
    "Proposal",
    "RandomStrategy",
    "PoolExecutor",
    "RayExecutor",
    "RunDirectory",
    "SearchContext",
    "SearchError",
    "SearchResult",
    "SearchSpace",
    "Searcher",
    "SegmentationEvaluator",
    "Strategy",
    "StepReport",
    "derived_seed",
    "make_executor",
]
