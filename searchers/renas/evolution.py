"""RENAS' evolution (seed 001, section 4.1, Algorithm 1): tournament selection with reinforced mutation.

Step 0 trains a random population of ``P`` (paper 20). Each evolution step samples ``S`` individuals,
the best becomes a parent and the worst leaves the population; the parent is mutated (one mutation
per block, Algorithm 2), the child inherits the parent's parameters, is fine-tuned for one pass and
evaluated; its fitness (validation IoU, or the proxy's balanced accuracy; ``metric`` picks another
validation metric) puts it into the population.
After ``steps`` evolution steps, a final step retrains the population's architectures from scratch
at full fidelity and the best of them is the answer (4.3, "Deriving Architectures").

``mutation`` chooses the ablation of the paper's Fig. 4 (5.3): ``controller`` (RENAS), ``random``
(plain EA: the same actions drawn uniformly, "EA is conduct with the same settings to RENAS, except
that mutation actions are made randomly") and ``sample`` (every child a uniformly random
architecture trained from scratch; the population is kept by the same tournament).

``sample_size`` is not given in the text: the default is a quarter of the population (AmoebaNet's
ratio, 25 of 100, its ref. [28]), at least 2. ``children`` tournaments per step (default 1, as
Algorithm 1) let a Ray executor evaluate children in parallel.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from nasseg.searchers.base import (
    AskTellStrategy,
    EvalResult,
    Proposal,
    SearchError,
    derived_seed,
    rng_state,
    set_rng_state,
)
from nasseg.searchers.latency import scaled
from nasseg.searchers.renas.controller import ControllerTrainer, MutationController
from nasseg.searchers.renas.plan import TrainingPlan
from nasseg.searchers.renas.space import PARTS, CellSpec, Mutation, RenasSpace

if TYPE_CHECKING:
    from nasseg.searchers.run_dir import RunDirectory
    from nasseg.searchers.searcher import SearchContext

MutationMode = Literal["controller", "random", "sample"]
FITNESS_METRIC = {"segmentation": "iou", "classification": "balanced_accuracy"}
#: Validation metrics in [0, 1] (the reward tan(f * pi / 2) needs that), per task.
METRICS = {"segmentation": ("iou", "dice", "miou", "pixel_accuracy", "soft_dice"),
           "classification": ("balanced_accuracy", "accuracy")}  # fmt: skip


def new_edges(parent: CellSpec, mutations: list[Mutation]) -> list[list[int]]:
    """``[block, edge]`` of every op a mutation changed (edge 0 is ``(o1, i1)``, edge 1 ``(o2, i2)``)."""
    return [[m.block, 0 if m.part == "o1" else 1] for m in mutations
            if m.part in ("o1", "o2") and parent[m.block][PARTS.index(m.part)] != m.value]  # fmt: skip


class RenasStrategy(AskTellStrategy):
    """Algorithm 1 with the reinforced mutation controller (or its ablations); see the module docstring."""

    name = "renas"

    def __init__(self, space: RenasSpace, population: int = 20, sample_size: int | None = None, steps: int = 20,
                 mutation: MutationMode = "controller", children: int = 1, finetune_epochs: int = 1,
                 inherit: bool = True, final: bool = True, seed: int = 0, metric: str | None = None,
                 controller: dict[str, Any] | None = None) -> None:  # fmt: skip
        if mutation not in ("controller", "random", "sample"):
            raise SearchError(f"renas: --mutation must be controller, random or sample, not {mutation!r}")
        if population < 2:
            raise SearchError(f"renas: the population needs at least 2 individuals, got {population}")
        self.space = space
        self.population_size = population
        self.sample_size = sample_size or max(2, population // 4)
        if not 2 <= self.sample_size <= population:
            raise SearchError(f"renas: --sample must be in 2..{population} (the population), got {self.sample_size}")
        if children < 1 or children > population - 1:
            raise SearchError(f"renas: --children must be in 1..{population - 1}, got {children}")
        self.steps = steps
        self.mutation = mutation
        self.children = children
        self.finetune_epochs = finetune_epochs
        self.inherit = inherit and mutation != "sample"
        self.final = final
        self.seed = seed
        self.metric = metric or FITNESS_METRIC[space.kind]
        if self.metric not in METRICS[space.kind]:
            raise SearchError(f"renas: --fitness {self.metric!r} is not a {space.kind} metric in [0, 1] "
                              f"({', '.join(METRICS[space.kind])})")  # fmt: skip
        self.rng = random.Random(derived_seed(seed, "renas"))
        self.controller_options = dict(controller or {})
        options = dict(self.controller_options)
        lr = options.pop("lr", 1e-3)
        entropy_weight = options.pop("entropy_weight", 0.01)
        with torch.random.fork_rng(devices=[]):  # the controller's N(0, 0.01) draws come from the run seed alone
            torch.manual_seed(derived_seed(seed, "controller"))
            self.controller = MutationController(space.blocks, space.ops, **options)
        self.trainer = ControllerTrainer(self.controller, lr=lr, entropy_weight=entropy_weight)
        #: alive individuals: {"key", "cell", "fitness"}
        self.population: list[dict[str, Any]] = []
        self.evolution_steps = 0
        self.evaluations = 0
        self.dead: list[str] = []
        self.curve: list[dict[str, Any]] = []
        self.controller_log: list[dict[str, float]] = []
        self.final_done = False
        self._pending: dict[str, dict[str, Any]] = {}
        self.run: RunDirectory | None = None

    # -- the phases ------------------------------------------------------------------------------

    def phase(self, step: int) -> str:
        """``init`` (step 0), ``evolve`` (steps 1..steps) or ``final``."""
        if step == 0:
            return "init"
        return "evolve" if self.evolution_steps < self.steps else "final"

    def done(self) -> bool:
        return self.final_done or (not self.final and self.evolution_steps >= self.steps and bool(self.population))

    def fitness(self, result: EvalResult) -> float:
        return scaled(float(result.metrics.get(self.metric, float("-inf"))), result.extra)

    def ask(self, step: int) -> list[Proposal]:
        phase = self.phase(step)
        if phase == "init":
            return [Proposal(f"s000-{i:02d}", self.space.genotype(self.space.sample_cell(self.rng)),
                             extra=TrainingPlan("init").to_extra()) for i in range(self.population_size)]  # fmt: skip
        if not self.population:
            raise SearchError("renas: every individual of the population failed; nothing to evolve")
        if phase == "final":
            return [Proposal(f"final-{i:02d}", self.space.genotype(tuple(map(tuple, ind["cell"]))),
                             extra=TrainingPlan("final", of=ind["key"]).to_extra())
                    for i, ind in enumerate(sorted(self.population, key=lambda ind: ind["key"]))]  # fmt: skip
        proposals = []
        for child in range(min(self.children, len(self.population) - 1)):
            parent = self.tournament()
            key = f"s{step:03d}-{child:02d}"
            proposals.append(self.make_child(key, parent))
        return proposals

    def tournament(self) -> dict[str, Any]:
        """Sample ``S`` alive individuals; remove the worst, return the best (Algorithm 1, lines 3-4)."""
        sample = self.rng.sample(self.population, min(self.sample_size, len(self.population)))
        ranked = sorted(sample, key=lambda ind: ind["fitness"])  # stable: ties keep sampling order
        worst, best = ranked[0], ranked[-1]
        self.population.remove(worst)
        self.dead.append(worst["key"])
        return best

    def mutations(self, key: str, cell: CellSpec) -> list[Mutation]:
        """One mutation per block: from the controller, or uniformly random (plain EA)."""
        if self.mutation == "controller":
            generator = torch.Generator().manual_seed(derived_seed(self.seed, "mutate", key))
            return self.controller.sample(cell, generator)[0]
        out = []
        for b in range(self.space.blocks):
            part = self.rng.choice(PARTS)
            out.append(Mutation(b, part, self.rng.choice(self.space.choices(b, part))))
        return out

    def make_child(self, key: str, parent: dict[str, Any]) -> Proposal:
        """The child of ``parent`` (or, for ``sample``, a random architecture)."""
        cell: CellSpec = tuple(map(tuple, parent["cell"]))  # type: ignore[assignment]
        if self.mutation == "sample":
            child = self.space.sample_cell(self.rng)
            self._pending[key] = {"parent": parent["key"], "cell": cell, "mutations": []}
            return Proposal(key, self.space.genotype(child), extra=TrainingPlan("child", mode="sample").to_extra())
        mutations = self.mutations(key, cell)
        child = self.space.mutate(cell, mutations)
        weights = self.run.candidate_weights(parent["key"]) if self.inherit and self.run is not None else None
        if self.inherit and weights is None:
            raise SearchError("renas: inheritance needs the run folder (the strategy runs inside a Searcher)")
        plan = TrainingPlan("child", mode=self.mutation, mutations=tuple(tuple(m.to_list()) for m in mutations),
                            new_edges=tuple(tuple(e) for e in new_edges(cell, mutations)),
                            parent_weights=str(weights) if weights is not None else None,
                            epochs=self.finetune_epochs if self.inherit else None)  # fmt: skip
        self._pending[key] = {"parent": parent["key"], "cell": cell, "mutations": mutations}
        extra = plan.to_extra()
        return Proposal(key, self.space.genotype(child), parent=parent["key"], extra=extra)

    def tell(self, step: int, results: list[EvalResult]) -> None:
        phase = self.phase(step)
        self.evaluations += len(results)
        if phase == "final":
            self.final_done = True
            return
        for result in results:
            if result.ok:
                self.population.append({"key": result.key, "cell": [list(b) for b in self.space.cell(result.genotype)],
                                        "fitness": float(result.fitness)})  # fmt: skip
        if phase == "evolve":
            self.evolution_steps += 1
            episodes = [(self._pending[r.key]["cell"], self._pending[r.key]["mutations"],
                         r.fitness if r.ok else 0.0) for r in results if r.key in self._pending]  # fmt: skip
            if self.mutation == "controller" and episodes:
                self.controller_log.append({"step": step, **self.trainer.update(episodes)})
        self._pending.clear()
        fitnesses = [ind["fitness"] for ind in self.population]
        self.curve.append({"step": step, "evaluations": self.evaluations, "size": len(fitnesses),
                           "mean": sum(fitnesses) / max(len(fitnesses), 1),
                           "best": max(fitnesses, default=float("nan"))})  # fmt: skip

    def step(self, context: SearchContext) -> list[EvalResult]:
        """Delete the weights of individuals dead before the last checkpoint, run the step, plot."""
        self.run = context.run  # where the parents' weights are (a child's plan names its parent's file)
        self.prune(context.run.candidates_dir)
        results = super().step(context)
        from nasseg.searchers.renas.report import plot_population

        plot_population({self.mutation: [self.curve]}, context.run.plots_dir / "population.png", self.metric)
        return results

    def prune(self, candidates: Path) -> None:
        """Remove ``weights.pt`` of individuals that left the population (no child can inherit them)."""
        for key in self.dead:
            (candidates / key / "weights.pt").unlink(missing_ok=True)
        self.dead = []

    def best(self, history: list[EvalResult]) -> EvalResult | None:
        """The best retrained individual once the final step ran, else the best evaluated candidate."""
        final = [r for r in history if r.ok and r.extra.get("kind") == "final"]
        return max(final, key=lambda r: r.fitness) if final else super().best(history)

    # -- resume ----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_state(self.rng), "population": self.population, "evolution_steps": self.evolution_steps,
                "evaluations": self.evaluations, "dead": self.dead, "curve": self.curve,
                "controller_log": self.controller_log, "final_done": self.final_done,
                "trainer": self.trainer.state_dict()}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        set_rng_state(self.rng, state["rng"])
        for key in ("population", "evolution_steps", "evaluations", "dead", "curve", "controller_log", "final_done"):
            setattr(self, key, state[key])
        self.trainer.load_state_dict(state["trainer"])

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "space": self.space.describe(), "population": self.population_size,
                "sample_size": self.sample_size, "steps": self.steps, "mutation": self.mutation,
                "children": self.children, "finetune_epochs": self.finetune_epochs, "inherit": self.inherit,
                "final": self.final, "metric": self.metric, "controller": self.controller_options}  # fmt: skip
