"""Random sampling from a search space: the baseline every searcher is compared against."""

from __future__ import annotations

import random
from typing import Any

from nasseg.searchers.base import AskTellStrategy, EvalResult, Proposal, SearchSpace, rng_state, set_rng_state


class RandomStrategy(AskTellStrategy):
    """``per_step`` uniformly sampled genotypes per step; the best evaluated one wins."""

    name = "random"

    def __init__(self, space: SearchSpace, per_step: int = 4, seed: int = 0) -> None:
        self.space = space
        self.per_step = per_step
        self.rng = random.Random(seed)

    def ask(self, step: int) -> list[Proposal]:
        return [Proposal(f"s{step:03d}-{i:02d}", self.space.sample(self.rng)) for i in range(self.per_step)]

    def tell(self, step: int, results: list[EvalResult]) -> None:
        """Random search learns nothing from scores."""

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_state(self.rng)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        set_rng_state(self.rng, state["rng"])

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "space": self.space.name, "per_step": self.per_step}
