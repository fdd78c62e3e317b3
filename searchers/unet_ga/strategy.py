"""The U-Net GA (seed 002, Alg. 1) as an ask/tell strategy, its fitness, and its random baseline.

Step 0 evaluates the initial population P_0 (K bootstrap samples of the space); step t >= 1 breeds
P_t from the scored P_{t-1}: the best individual is kept (Alg. 1 line 8), and each further
offspring comes from selection (copy of a roulette pick, probability s1 = 0.2), crossover (two
roulette picks swap pieces, both children kept while there is room, s2 = 0.7) or mutation (one
roulette pick, s3 = 0.1). ``generations`` = T: the search ends after P_T is scored (T + 1 steps).

Alg. 1 retrains every individual of each generation. Our evaluations are deterministic per
architecture and key-seeded, so an architecture is trained once and its fitness cached: copies
(selection, the elite, a repeated child) cost no evaluation. A generation therefore has at most
K (after P_0: K - 1) evaluations, and the budget counts evaluations actually run.

Options beyond the paper (seed 002 has neither; both chosen by what the search-quality benchmark
and the measurements of issue 14 showed: at search fidelity the spread between seeds of one
architecture is as large as the spread between architectures, and roulette over fitnesses within
15 % of each other barely prefers the best):

- ``selection="rank"`` (default) draws parents by linear rank; ``"roulette"`` is the paper's eq. 4.
- ``elite_evaluations=k`` (default 3) re-scores the elite with a fresh seed in each generation until
  its fitness is the mean of ``k`` evaluations, so one lucky seed does not stay best for the rest
  of the search; ``1`` is the paper's single evaluation. Re-scorings count as evaluations.
- ``halving`` (off by default): after P_T, successive halving over every architecture the GA
  scored (:mod:`nasseg.searchers.halving`): the best third retrained 3x longer, the best third of
  those 9x, ...; the pick is the best of the last rung. The paper picks from P_T at the search's
  fidelity, which favours nets that learn fast over nets that end better.

:meth:`UNetGAStrategy.flops_report` gives gamma * p beside the spread of the losses, so a user can
see whether the FLOPs term can change a ranking at all.
"""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nasseg.searchers.base import AskTellStrategy, EvalResult, Proposal, SearchError, rng_state, set_rng_state
from nasseg.searchers.halving import Ranked, SuccessiveHalving
from nasseg.searchers.latency import scaled
from nasseg.searchers.random_search import RandomStrategy
from nasseg.searchers.unet_ga.operators import SELECTIONS, crossover, mutate
from nasseg.searchers.unet_ga.space import Codes, UNetSpace, code_key, decode_key

FITNESS_METRICS = ("iou", "loss")


@dataclass
class UNetFitness:
    """f(q) = 1 / (L_gen + gamma * p(q)) (eq. 7).

    ``L_gen`` is, with ``metric="loss"`` (the paper's), ``metrics["loss"]`` of the evaluator
    (segmentation loss, or L_GAN + lambda L1 for translation) on the mini-validation set; with
    ``metric="iou"`` (the default for segmentation, a departure: issue 14's study found the loss
    ranked trained nets worse than IoU, and IoU is what users pick a net by) it is ``1 - val IoU``,
    so eq. 7 keeps its form and its FLOPs trade-off. ``p(q)`` is in **GFLOPs = 2 x GMACs** (the zoo's
    counting convention, one image) at ``flops_size`` (default: the genotype's search size). For
    this fully convolutional family MACs scale exactly with the pixel count, so ``p`` is the
    evaluator's MACs at the search size scaled by the area ratio. (The paper's Table 1 gives
    18147M "FLOPs" for pix2pix unet_256, which the zoo counts as 6048 GMACs = 12.1 GFLOPs: its
    convention is not ours, so gamma values do not transfer one to one.) Failed candidates, and a
    non-positive denominator, get fitness 0: they are never selected.
    """

    gamma: float = 0.01
    flops_size: tuple[int, int] | None = None
    metric: str = "loss"

    def __post_init__(self) -> None:
        if self.metric not in FITNESS_METRICS:
            raise SearchError(f"unet-ga: fitness metric {self.metric!r} is not one of {', '.join(FITNESS_METRICS)}")

    def generator_loss(self, result: EvalResult) -> float:
        """L_gen of eq. 7: the evaluator's loss, or 1 - val IoU."""
        if self.metric == "iou":
            return 1.0 - float(result.metrics.get("iou", math.nan))
        return float(result.metrics.get("loss", math.nan))

    def flops(self, result: EvalResult) -> float:
        """p(q) in GFLOPs."""
        macs = float(result.macs or 0)
        if self.flops_size is not None:
            h, w = result.genotype.task.input_size
            macs *= self.flops_size[0] * self.flops_size[1] / (h * w)
        return 2.0 * macs / 1e9

    def __call__(self, result: EvalResult) -> float:
        if not result.ok:
            return 0.0
        denominator = self.generator_loss(result) + self.gamma * self.flops(result)
        if not math.isfinite(denominator) or denominator <= 0:
            return 0.0
        return 1.0 / denominator


class UNetGAStrategy(AskTellStrategy):
    """Roulette-wheel GA over :class:`UNetSpace` (K = 32, T = 100, s = 0.2 / 0.7 / 0.1 as in section 4)."""

    name = "unet-ga"

    @property
    def fitness_words(self) -> str:
        loss = "1 - val IoU" if self.scorer.metric == "iou" else "val loss"
        return f"1 / ({loss} + {self.scorer.gamma:g} x GFLOPs)"

    def __init__(self, space: UNetSpace, population: int = 32, generations: int = 100, gamma: float = 0.01,
                 probabilities: tuple[float, float, float] = (0.2, 0.7, 0.1), seed: int = 0,
                 flops_size: tuple[int, int] | None = None, selection: str = "rank",
                 elite_evaluations: int = 3, metric: str = "loss",
                 halving: SuccessiveHalving | None = None) -> None:  # fmt: skip
        if population < 2:
            raise SearchError(f"unet-ga: population K must be at least 2, got {population}")
        if generations < 0:
            raise SearchError(f"unet-ga: generations T must be >= 0, got {generations}")
        if min(probabilities) < 0 or not math.isclose(sum(probabilities), 1.0):
            raise SearchError(f"unet-ga: s1 + s2 + s3 must be 1 with none negative, got {probabilities}")
        if selection not in SELECTIONS:
            raise SearchError(f"unet-ga: selection {selection!r} is not one of {', '.join(SELECTIONS)}")
        if elite_evaluations < 1:
            raise SearchError(f"unet-ga: elite evaluations must be >= 1, got {elite_evaluations}")
        self.selection = selection
        self.select = SELECTIONS[selection]
        self.elite_evaluations = elite_evaluations
        self.space = space
        self.population_size = population
        self.generations = generations
        self.probabilities = tuple(probabilities)
        self.scorer = UNetFitness(gamma, flops_size, metric)
        self.rng = random.Random(seed)
        self.generation = 0  # the next population to score
        self.population: list[dict[str, Any]] = []  # scored P_{generation - 1}: {"c1", "c2", "key", "fitness"}
        self.cache: dict[str, dict[str, Any]] = {}  # code_key -> {"key", "fitness", "scores", "losses", "flops"}
        self._pending: list[Codes] = []
        self.halving = halving

    # -- the strategy --------------------------------------------------------------------------

    def fitness(self, result: EvalResult) -> float:
        return scaled(self.scorer(result), result.extra)

    def evolving(self) -> bool:
        """Still breeding generations (not yet in the successive-halving rungs)."""
        return self.generation <= self.generations

    def done(self) -> bool:
        return not self.evolving() and (self.halving is None or self.halving.done())

    def ranking(self) -> list[Ranked]:
        """Every architecture scored so far with its mean fitness (rung 0 of successive halving)."""
        return [Ranked(code, self.space.genotype(*decode_key(code)).to_dict(), entry["fitness"])
                for code, entry in self.cache.items()]  # fmt: skip

    def best(self, history: Sequence[EvalResult]) -> EvalResult | None:
        """The architecture with the highest mean fitness (over its re-scorings), as its first result;
        the fitness is the one selection ranks by (with the latency factor where a target is set).
        After successive halving: the best of its last rung."""
        promoted = self.halving.best(history) if self.halving is not None else None
        if promoted is not None:
            return promoted
        finished = [r for r in history if r.ok and not r.extra.get("rescore") and not r.extra.get("rung")]
        if not finished:
            return None

        def mean_fitness(result: EvalResult) -> float:
            entry = self.cache.get(result.extra.get("code") or "")
            return entry["fitness"] if entry is not None else result.fitness

        best = max(finished, key=mean_fitness)
        return dataclasses.replace(best, fitness=mean_fitness(best))

    def ask(self, step: int) -> list[Proposal]:
        if not self.evolving():  # successive halving
            return self.halving.next_rung(self.ranking)
        if not self.population:
            self._pending = [self.space.sample_codes(self.rng) for _ in range(self.population_size)]
        else:
            self._pending = self.breed()
        proposals, proposed = [], set()
        for index, (c1, c2) in enumerate(self._pending):
            key = code_key(c1, c2)
            if key in self.cache or key in proposed:
                continue
            proposed.add(key)
            proposals.append(Proposal(f"g{self.generation:03d}-{index:02d}", self.space.genotype(c1, c2),
                                      extra={"code": key}))  # fmt: skip
        elite = self._elite_to_rescore()
        if elite is not None:
            c1, c2 = elite
            proposals.append(Proposal(f"g{self.generation:03d}-elite", self.space.genotype(c1, c2),
                                      extra={"code": code_key(c1, c2), "rescore": True}))  # fmt: skip
        return proposals

    def _elite_to_rescore(self) -> Codes | None:
        """The elite of the scored population when it has fewer than ``elite_evaluations`` scores."""
        if not self.population or self.elite_evaluations <= 1:
            return None
        best = max(self.population, key=lambda m: m["fitness"])
        entry = self.cache.get(code_key(best["c1"], best["c2"]))
        if entry is None or best["fitness"] <= 0 or len(entry.get("scores", [1])) >= self.elite_evaluations:
            return None
        return list(best["c1"]), list(best["c2"])

    def tell(self, step: int, results: list[EvalResult]) -> None:
        if not self.evolving():
            if results:
                self.halving.tell(results, self.fitness)
            return
        for result in results:
            code = result.extra.get("code") or code_key(*self.space.encode(result.genotype))
            score = self.fitness(result)  # one objective: selection, the elite and best() rank by this
            entry = self.cache.get(code) if result.extra.get("rescore") else None
            if entry is None:
                entry = self.cache[code] = {"key": result.key, "scores": [], "losses": [],
                                            "flops": self.scorer.flops(result)}  # fmt: skip
            entry["scores"].append(score)
            entry["losses"].append(self.scorer.generator_loss(result))
            entry["fitness"] = statistics.fmean(entry["scores"])
        self.population = []
        for c1, c2 in self._pending:
            entry = self.cache[code_key(c1, c2)]
            self.population.append({"c1": list(c1), "c2": list(c2), "key": entry["key"], "fitness": entry["fitness"]})
        self._pending = []
        self.generation += 1

    def breed(self) -> list[Codes]:
        """P_t from the scored P_{t-1}: the elite, then offspring by selection / crossover / mutation."""
        fitnesses = [m["fitness"] for m in self.population]
        parents = [(list(m["c1"]), list(m["c2"])) for m in self.population]
        elite = max(range(len(parents)), key=lambda i: fitnesses[i])
        children: list[Codes] = [parents[elite]] if fitnesses[elite] > 0 else []
        s1, s2, _ = self.probabilities
        while len(children) < self.population_size:
            first = self.select(self.rng, fitnesses)
            if first is None:  # every parent failed: start again from the space
                children.append(self.space.sample_codes(self.rng))
                continue
            draw = self.rng.random()
            if draw < s1:
                children.append(parents[first])
            elif draw < s1 + s2:
                second = self.select(self.rng, fitnesses)
                one, two = crossover(self.rng, parents[first], parents[second])
                children.extend([one, two][: self.population_size - len(children)])
            else:
                children.append(mutate(self.rng, parents[first], self.space.widths))
        return children

    def flops_report(self) -> dict[str, float] | None:
        """gamma * p against the spread of L_gen over every architecture scored so far: the FLOPs
        term changes a ranking only where its spread is comparable to the losses' spread."""
        entries = [e for e in self.cache.values() if e.get("losses") and math.isfinite(e["losses"][0])]
        if len(entries) < 2:
            return None
        losses = [statistics.fmean(e["losses"]) for e in entries]
        terms = [self.scorer.gamma * e["flops"] for e in entries]
        loss_std, term_std = statistics.pstdev(losses), statistics.pstdev(terms)
        return {"gamma": self.scorer.gamma, "loss_mean": statistics.fmean(losses), "loss_std": loss_std,
                "gamma_p_mean": statistics.fmean(terms), "gamma_p_std": term_std,
                "gamma_p_over_loss_std": term_std / loss_std if loss_std > 0 else math.inf}  # fmt: skip

    def final_population(self) -> list[dict[str, Any]]:
        """The last scored population (``c1``, ``c2``, ``key``, ``fitness`` per individual)."""
        return [dict(m) for m in self.population]

    # -- resume --------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        state = {"generation": self.generation, "rng": rng_state(self.rng), "population": self.final_population(),
                 "cache": {k: dict(v) for k, v in self.cache.items()}}  # fmt: skip
        if self.halving is not None:
            state["halving"] = self.halving.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generation = int(state["generation"])
        set_rng_state(self.rng, state["rng"])
        self.population = [dict(m) for m in state["population"]]
        self.cache = {k: {"scores": [v["fitness"]], "losses": [], "flops": 0.0, **v} for k, v in state["cache"].items()}
        self._pending = []
        if self.halving is not None:
            self.halving.load_state_dict(state.get("halving", {}))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "space": self.space.describe(), "population": self.population_size,
                "generations": self.generations, "gamma": self.scorer.gamma, "probabilities": list(self.probabilities),
                "selection": self.selection, "elite_evaluations": self.elite_evaluations,
                "metric": self.scorer.metric,
                "flops_unit": "GFLOPs = 2 x GMACs, one image",
                "flops_size": list(self.scorer.flops_size) if self.scorer.flops_size else None,
                **({"halving": self.halving.describe()} if self.halving is not None else {})}  # fmt: skip


class UNetRandomStrategy(RandomStrategy):
    """Random sampling from the same space, scored with the GA's fitness (the benchmark's baseline);
    ``total`` caps the number of candidates (the GA's evaluation count)."""

    name = "unet-ga-random"

    def __init__(self, space: UNetSpace, per_step: int = 32, seed: int = 0, gamma: float = 0.01,
                 flops_size: tuple[int, int] | None = None, total: int | None = None,
                 metric: str = "loss", halving: SuccessiveHalving | None = None) -> None:  # fmt: skip
        super().__init__(space, per_step=per_step, seed=seed)
        if halving is not None and total is None:
            raise SearchError("unet-ga random: successive halving needs a number of samples to end")
        self.scorer = UNetFitness(gamma, flops_size, metric)
        self.total = total
        self.asked = 0
        self.halving = halving
        self.scored: dict[str, float] = {}  # code_key -> fitness of its first sample (rung 0 of halving)

    def fitness(self, result: EvalResult) -> float:
        return scaled(self.scorer(result), result.extra)

    def sampled(self) -> bool:
        """Every sample asked for (what comes next is successive halving, if any)."""
        return self.total is not None and self.asked >= self.total

    def ranking(self) -> list[Ranked]:
        return [Ranked(code, self.space.genotype(*decode_key(code)).to_dict(), fitness)
                for code, fitness in self.scored.items()]  # fmt: skip

    def ask(self, step: int) -> list[Proposal]:
        if self.sampled() and self.halving is not None:
            return self.halving.next_rung(self.ranking)
        count = self.per_step if self.total is None else max(0, min(self.per_step, self.total - self.asked))
        self.asked += count
        return [Proposal(f"s{step:03d}-{i:02d}", self.space.sample(self.rng)) for i in range(count)]

    def tell(self, step: int, results: list[EvalResult]) -> None:
        if self.halving is not None and self.halving.rung >= 0:
            if results:
                self.halving.tell(results, self.fitness)
            return
        if self.halving is None:
            return  # random search learns nothing from scores; only successive halving ranks them
        for result in results:
            self.scored.setdefault(code_key(*self.space.encode(result.genotype)), self.fitness(result))

    def done(self) -> bool:
        return self.sampled() and (self.halving is None or self.halving.done())

    def best(self, history: Sequence[EvalResult]) -> EvalResult | None:
        promoted = self.halving.best(history) if self.halving is not None else None
        return promoted or super().best([r for r in history if not r.extra.get("rung")])

    def state_dict(self) -> dict[str, Any]:
        state = {**super().state_dict(), "asked": self.asked}
        if self.halving is not None:
            state |= {"scored": dict(self.scored), "halving": self.halving.state_dict()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.asked = int(state.get("asked", 0))
        if self.halving is not None:
            self.scored = dict(state.get("scored", {}))
            self.halving.load_state_dict(state.get("halving", {}))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "name": self.name, "gamma": self.scorer.gamma, "total": self.total,
                "metric": self.scorer.metric,
                "flops_size": list(self.scorer.flops_size) if self.scorer.flops_size else None,
                **({"halving": self.halving.describe()} if self.halving is not None else {})}  # fmt: skip
