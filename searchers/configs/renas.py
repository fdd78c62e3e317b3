"""RENAS' config (``nasseg search renas``) and what it builds."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from nasseg.searchers.base import Budget, Fidelity, SearchError
from nasseg.searchers.configs.base import RAY_HELP, WORKERS_HELP, BuiltSearch, SearchConfig, option

#: steps per child below which a short training ranks RENAS cells poorly (search_fidelity.json: Spearman 0.83 at 200)
SEGMENTATION_MIN_STEPS = 200


class RenasConfig(SearchConfig):
    """Every setting of a RENAS search (its ablations: ``mutation`` random or sample)."""

    searcher: Literal["renas"] = "renas"
    summary: ClassVar[str] = (
        "Evolve a RENAS cell (tournament selection, reinforced mutation, parameter inheritance; --resume RUN)."
    )
    task: Literal["segmentation", "classification"] = option(
        "segmentation",
        "segmentation (DeepLabv3/ASPP head) or classification (proxy: 'has a defect' labels from the masks).",
    )
    population: int = option(20, "Population size P.", "--population", "-P", ge=2)
    sample: int | None = option(None, "Tournament size S (default P/4).", "--sample", "-S", ge=2)
    steps: int = option(20, "Evolution steps E (one child each).", "--steps", "-E", ge=0)
    mutation: Literal["controller", "random", "sample"] = option(
        "controller", "controller (RENAS), random (plain EA) or sample (random sampling): the paper's ablation."
    )
    children: int = option(1, "Tournaments (children) per step; >1 feeds --workers.", ge=1)
    inherit: bool = option(
        True, "Parameter inheritance (off: every child trains from scratch).", "--inherit/--no-inherit"
    )
    finetune_epochs: int = option(1, "Fine-tuning passes of an inheriting child.", ge=1)
    final_epochs: int = option(
        5, "Retrain the final population from scratch for this many epochs on all images; 0 skips it.", ge=0
    )
    blocks: int = option(5, "Blocks per cell #B.", ge=1)
    cells: int = option(2, "Cells between reductions #N.", ge=1)
    filters: int = option(24, "Filters of the first cell #F.", ge=2)
    aspp_channels: int = option(256, "ASPP branch width (DeepLabv3: 256).", ge=1)
    output_stride: Literal[8, 16] | None = option(
        None, "ASPP output stride 8 or 16 (default: 16 where features stay >= 8x8, else 8)."
    )
    bn_recalibration: int = option(8, "Re-estimate BatchNorm statistics on N training batches before scoring.", ge=0)
    entropy_weight: float | None = option(0.01, "Controller entropy bonus in the reward (paper 0.1).", ge=0)
    final_steps: int | None = option(
        None,
        "Optimiser steps per epoch of the final retraining, at least and at most (default: every training "
        "image once, at least 20).",
        ge=1,
    )
    final_val_images: int | None = option(None, "Validation images the final retraining scores (default: all).", ge=1)
    fitness: str | None = option(
        None,
        "Validation metric maximised (default: iou; classification: balanced_accuracy; soft_dice for tiny fidelities).",
    )
    evaluations: int | None = option(None, "Stop after N evaluations.", ge=1)
    epochs: int = option(1, "Training epochs per candidate (fidelity).", ge=1)
    image_size: int = option(64, "Training crop side while searching.", ge=8)
    batch_size: int = option(4, "Training batch size per candidate.", ge=2)
    lr: float = option(1e-3, "Learning rate of inherited (and from-scratch) parameters; new ones get 10x.", ge=0)
    min_steps: int | None = option(
        None,
        "Optimiser steps per child at least (default: 200 for segmentation, where fewer rank cells "
        "poorly (search_fidelity.json: Spearman 0.83 at 200); 20 otherwise).",
        ge=1,
    )
    workers: int | None = option(None, WORKERS_HELP, ge=1)
    ray: str | None = option(None, RAY_HELP)

    @property
    def search_fidelity(self) -> Fidelity:
        """A child's training while searching: the search's image and step limits."""
        low = self.min_steps if self.min_steps is not None else (
            SEGMENTATION_MIN_STEPS if self.task == "segmentation" else 20)  # fmt: skip
        return Fidelity(epochs=self.epochs, image_size=(self.image_size, self.image_size), batch_size=self.batch_size,
                        max_images=self.max_images, max_val_images=self.max_val_images,
                        max_steps_per_epoch=self.max_steps, lr=self.lr, min_steps_per_epoch=low)  # fmt: skip

    @property
    def final_fidelity(self) -> Fidelity:
        """The final population's retraining: every training image, ``final_epochs`` epochs."""
        return Fidelity(epochs=max(self.final_epochs, 1), image_size=(self.image_size, self.image_size),
                        batch_size=self.batch_size, lr=self.lr, max_val_images=self.final_val_images,
                        max_steps_per_epoch=self.final_steps, min_steps_per_epoch=self.final_steps or 20)  # fmt: skip

    def build(self) -> BuiltSearch:
        from nasseg.searchers.evaluators import search_task
        from nasseg.searchers.renas import RenasEvaluator, RenasStrategy

        self.check_data()
        size = (self.image_size, self.image_size)
        if self.task == "segmentation":
            if self.image_size % 16:
                raise SearchError(f"--image-size {self.image_size}: the DeepLabv3 net has output stride 16; give a "
                                  "multiple of 16")  # fmt: skip
            task: dict[str, Any] = search_task(self.data, size)
        else:
            task = {"kind": "classification", "num_classes": 2, "input_size": list(size)}
        space = self.space(task)
        strategy = RenasStrategy(space, population=self.population, sample_size=self.sample, steps=self.steps,
                                 mutation=self.mutation, children=self.children, finetune_epochs=self.finetune_epochs,
                                 inherit=self.inherit, final=self.final_epochs > 0, seed=self.seed,
                                 metric=self.fitness, controller=self.controller_options)  # fmt: skip
        evaluator = RenasEvaluator(self.data, self.search_fidelity, device=self.device, task=self.task,
                                   final_fidelity=self.final_fidelity,
                                   bn_recalibration=self.bn_recalibration)  # fmt: skip
        budget = Budget(steps=self.total_steps, evaluations=self.evaluations, seconds=self.max_seconds)
        return BuiltSearch(strategy, evaluator, budget, "renas", f"renas ({self.mutation})", {"task": self.task})

    def space(self, task: dict[str, Any]) -> Any:
        """The RENAS cell space these settings search, for ``task``."""
        from nasseg.searchers.renas import RenasSpace

        return RenasSpace(task, blocks=self.blocks, cells=self.cells, init_channels=self.filters,
                          aspp_channels=self.aspp_channels, output_stride=self.output_stride)  # fmt: skip

    @property
    def controller_options(self) -> dict[str, float]:
        """The controller's settings (none given: its defaults)."""
        return {} if self.entropy_weight is None else {"entropy_weight": self.entropy_weight}

    @property
    def total_steps(self) -> int:
        """The initial population, the evolution steps and the final retraining (when asked)."""
        return 1 + self.steps + (1 if self.final_epochs > 0 else 0)
