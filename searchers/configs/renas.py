"""RENAS' config (``nasseg search renas``) and what it builds."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from nasseg.searchers.base import Budget, Fidelity, SearchError
from nasseg.searchers.configs.base import BuiltSearch, SearchConfig

#: steps per child below which a short training ranks RENAS cells poorly (search_fidelity.json: Spearman 0.83 at 200)
SEGMENTATION_MIN_STEPS = 200


class RenasConfig(SearchConfig):
    """Every setting of a RENAS search (its ablations: ``mutation`` random or sample)."""

    searcher: Literal["renas"] = "renas"
    task: Literal["segmentation", "classification"] = "segmentation"
    population: int = Field(20, ge=2)
    sample: int | None = Field(None, ge=2)
    steps: int = Field(20, ge=0)
    mutation: Literal["controller", "random", "sample"] = "controller"
    children: int = Field(1, ge=1)
    inherit: bool = True
    finetune_epochs: int = Field(1, ge=1)
    final_epochs: int = Field(5, ge=0)
    blocks: int = Field(5, ge=1)
    cells: int = Field(2, ge=1)
    filters: int = Field(24, ge=2)
    aspp_channels: int = Field(256, ge=1)
    output_stride: Literal[8, 16] | None = None
    bn_recalibration: int = Field(8, ge=0)
    entropy_weight: float = Field(0.01, ge=0)
    fitness: str | None = None
    evaluations: int | None = Field(None, ge=1)
    epochs: int = Field(1, ge=1)
    image_size: int = Field(64, ge=8)
    batch_size: int = Field(4, ge=2)
    lr: float = Field(1e-3, ge=0)
    min_steps: int | None = Field(None, ge=1)
    workers: int | None = Field(None, ge=1)
    ray: str | None = None

    def fidelity(self, epochs: int | None = None, capped: bool = True) -> Fidelity:
        """A child's training (``capped``: the search's image and step limits; the final retraining
        uses all images for ``epochs``)."""
        low = self.min_steps if self.min_steps is not None else (
            SEGMENTATION_MIN_STEPS if self.task == "segmentation" else 20)  # fmt: skip
        size = (self.image_size, self.image_size)
        if not capped:
            return Fidelity(epochs=epochs or self.epochs, image_size=size, batch_size=self.batch_size, lr=self.lr,
                            min_steps_per_epoch=20)  # fmt: skip
        return Fidelity(epochs=self.epochs, image_size=size, batch_size=self.batch_size, max_images=self.max_images,
                        max_val_images=self.max_val_images, max_steps_per_epoch=self.max_steps, lr=self.lr,
                        min_steps_per_epoch=low)  # fmt: skip

    def build(self) -> BuiltSearch:
        from nasseg.searchers.evaluators import search_task
        from nasseg.searchers.renas import RenasEvaluator, RenasSpace, RenasStrategy

        self.check_data()
        size = (self.image_size, self.image_size)
        if self.task == "segmentation":
            if self.image_size % 16:
                raise SearchError(f"--image-size {self.image_size}: the DeepLabv3 net has output stride 16; give a "
                                  "multiple of 16")  # fmt: skip
            task: dict[str, Any] = search_task(self.data, size)
        else:
            task = {"kind": "classification", "num_classes": 2, "input_size": list(size)}
        final = self.fidelity(max(self.final_epochs, 1), capped=False)
        space = RenasSpace(task, blocks=self.blocks, cells=self.cells, init_channels=self.filters,
                           aspp_channels=self.aspp_channels, output_stride=self.output_stride)  # fmt: skip
        strategy = RenasStrategy(space, population=self.population, sample_size=self.sample, steps=self.steps,
                                 mutation=self.mutation, children=self.children, finetune_epochs=self.finetune_epochs,
                                 inherit=self.inherit, final=self.final_epochs > 0, seed=self.seed,
                                 metric=self.fitness, controller={"entropy_weight": self.entropy_weight})  # fmt: skip
        evaluator = RenasEvaluator(self.data, self.fidelity(), device=self.device, task=self.task,
                                   final_fidelity=final, bn_recalibration=self.bn_recalibration)  # fmt: skip
        budget = Budget(steps=self.total_steps, evaluations=self.evaluations, seconds=self.max_seconds)
        return BuiltSearch(strategy, evaluator, budget, "renas", f"renas ({self.mutation})", {"task": self.task})

    @property
    def total_steps(self) -> int:
        """The initial population, the evolution steps and the final retraining (when asked)."""
        return 1 + self.steps + (1 if self.final_epochs > 0 else 0)
