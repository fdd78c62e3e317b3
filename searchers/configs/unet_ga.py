"""The U-Net translator GA's config (``nasseg search unet-ga``) and what it builds."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

from pydantic import field_validator

from nasseg.searchers.base import Budget, Fidelity, SearchError
from nasseg.searchers.configs.base import RAY_HELP, WORKERS_HELP, BuiltSearch, SearchConfig, comma_ints, option
from nasseg.searchers.unet_ga.space import default_layers

#: steps per candidate below which a short training ranks U-Nets poorly (search_fidelity.json: Spearman 0.90 at 100)
SEGMENTATION_MIN_STEPS = 100


class UNetGAConfig(SearchConfig):
    """Every setting of a GA search (or its random-sampling counterpart, ``random_search``)."""

    searcher: Literal["unet-ga"] = "unet-ga"
    summary: ClassVar[str] = (
        "Evolve U-Net encoder widths and skip connections (GA of seed 002; resume with --resume RUN)."
    )
    task: Literal["segmentation", "translation"] = option(
        "segmentation", "segmentation (masks) or translation (pix2pix on A/B pairs)."
    )
    population: int = option(32, "Population size K.", "--population", "-K", ge=2)
    generations: int = option(100, "Generations T.", "--generations", "-T", ge=0)
    gamma: float = option(0.01, "FLOPs weight in f = 1/(L_gen + gamma * GFLOPs).", ge=0)
    fitness: Literal["iou", "loss"] | None = option(
        None, "L_gen of the fitness: iou (1 - val IoU; default for segmentation) or loss (the paper's)."
    )
    widths: tuple[int, ...] = option((64, 128, 256, 512), "S1: the encoder widths to choose from.")
    layers: int | None = option(None, "Encoder levels L (default: 8, fewer for small sizes).", ge=2)
    flops_size: int | None = option(None, "Count FLOPs at this image side (default: search size).", ge=8)
    dropout: float | None = option(
        None,
        "Decoder dropout (default: 0 for segmentation; pix2pix's 0.5 for translation, where it is the "
        "generator's noise).",
        ge=0,
        le=0.95,
    )
    lam: float = option(100.0, "L1 weight lambda (translation).", "--lambda", ge=0)
    disc_width: int = option(64, "PatchGAN width (pix2pix: 64; translation).", ge=1)
    selection: Literal["rank", "roulette"] = option(
        "rank", "Parent selection: rank (default) or roulette (the paper's eq. 4)."
    )
    elite_evaluations: int = option(3, "Re-score the elite until its fitness averages N seeds (1: the paper).", ge=1)
    random_search: bool = option(
        False, "Random sampling from the same space instead (the GA's evaluation count).", "--random"
    )
    halving: int = option(
        0,
        "Successive halving after the search: N rungs, each retraining the best third of the one "
        "before 3x longer; the pick is the best of the last rung (0: off, the paper's).",
        ge=0,
    )
    evaluations: int | None = option(None, "Stop after N evaluations.", ge=1)
    epochs: int = option(1, "Training epochs per candidate (fidelity).", ge=1)
    image_size: int = option(256, "Training crop side while searching.", ge=8)
    batch_size: int = option(4, "Training batch size per candidate.", ge=2)
    lr: float | None = option(None, "Learning rate (default 1e-3; pix2pix's 2e-4).", ge=0)
    min_steps: int | None = option(
        None,
        "Optimiser steps per candidate at least (default: 100 for segmentation, where a shorter "
        "training ranks nets poorly; 20 for translation).",
        ge=1,
    )
    workers: int | None = option(None, WORKERS_HELP, ge=1)
    ray: str | None = option(None, RAY_HELP)

    _widths = field_validator("widths", mode="before")(comma_ints)

    @field_validator("widths")
    @classmethod
    def _positive(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or min(value) < 1:
            raise ValueError("give positive integers, e.g. 64,128,256,512")
        return value

    @property
    def levels(self) -> int:
        return self.layers or default_layers(self.image_size)

    @property
    def fidelity(self) -> Fidelity:
        translation = self.task == "translation"
        lr = self.lr if self.lr is not None else (2e-4 if translation else 1e-3)
        low = self.min_steps if self.min_steps is not None else (20 if translation else SEGMENTATION_MIN_STEPS)
        return Fidelity(epochs=self.epochs, image_size=(self.image_size, self.image_size), batch_size=self.batch_size,
                        max_images=self.max_images, max_val_images=self.max_val_images,
                        max_steps_per_epoch=self.max_steps, lr=lr, min_steps_per_epoch=low)  # fmt: skip

    def space(self, task: dict[str, Any]) -> Any:
        """The U-Net space these settings search, for ``task``."""
        from nasseg.searchers.unet_ga import UNetSpace

        return UNetSpace(widths=self.widths, layers=self.levels, task=task, dropout=self.decoder_dropout)

    @property
    def decoder_dropout(self) -> float:
        """The decoder's dropout: as set, else pix2pix's 0.5 for translation and none for segmentation.

        pix2pix (seed 002 builds on it) gives its generator noise only as dropout on the three inner
        decoder layers, since a GAN's output should vary; a segmenter's should not, and the zoo's
        U-Nets (``unet-small``, the tuned grid) have none. A departure from the paper for segmentation.
        """
        if self.dropout is not None:
            return self.dropout
        return 0.5 if self.task == "translation" else 0.0

    def most_evaluations(self) -> int:
        """The GA's evaluations at most: P_0, then K - 1 children and one elite re-scoring per generation."""
        return self.population + self.generations * (self.population - 1 + (self.elite_evaluations > 1))

    def halving_evaluations(self, ranked: int) -> int:
        """Evaluations of the successive-halving rungs at most, after ``ranked`` architectures."""
        total = 0
        for _ in range(self.halving):
            ranked = math.ceil(ranked / 3) if ranked > 1 else 0
            total += ranked
        return total

    def build(self) -> BuiltSearch:
        from nasseg.searchers import SegmentationEvaluator
        from nasseg.searchers.evaluators import search_task
        from nasseg.searchers.halving import SuccessiveHalving
        from nasseg.searchers.unet_ga import TranslationEvaluator, UNetGAStrategy, UNetRandomStrategy
        from nasseg.searchers.unet_ga.translation import paired_root

        self.check_data()
        size = (self.image_size, self.image_size)
        if self.levels < 2:
            raise SearchError(f"--image-size {self.image_size}: a U-Net needs a size divisible by 4 at least")
        fitness = self.fitness or ("loss" if self.task == "translation" else "iou")
        if self.task == "translation" and fitness == "iou":
            raise SearchError("--fitness iou: translation has no masks; use loss")
        if self.task == "translation":
            paired_root(self.data)  # fails early, in one line, without pairs
            task: dict[str, Any] = {"kind": "translation", "in_channels": 3, "num_classes": 3, "input_size": list(size)}
            evaluator: Any = TranslationEvaluator(self.data, self.fidelity, device=self.device, lam=self.lam,
                                                  disc_width=self.disc_width)  # fmt: skip
        else:
            task = search_task(self.data, size, in_channels=3)
            evaluator = SegmentationEvaluator(self.data, self.fidelity, device=self.device)
        space = self.space(task)
        flops = (self.flops_size, self.flops_size) if self.flops_size else None
        halving = SuccessiveHalving(self.halving, rate=3, epochs=self.epochs) if self.halving else None
        if self.random_search:
            most = self.most_evaluations()
            total = min(most, self.evaluations) if self.evaluations else most
            strategy: Any = UNetRandomStrategy(space, per_step=self.population, seed=self.seed, gamma=self.gamma,
                                               flops_size=flops, total=total, metric=fitness,
                                               halving=halving)  # fmt: skip
            budget = Budget(evaluations=total + self.halving_evaluations(total), seconds=self.max_seconds)
        else:
            strategy = UNetGAStrategy(space, self.population, self.generations, self.gamma, seed=self.seed,
                                      flops_size=flops, selection=self.selection,
                                      elite_evaluations=self.elite_evaluations, metric=fitness,
                                      halving=halving)  # fmt: skip
            budget = Budget(steps=self.generations + 1 + self.halving, evaluations=self.evaluations,
                            seconds=self.max_seconds)  # fmt: skip
        return BuiltSearch(strategy, evaluator, budget, strategy.name, strategy.name, {"task": self.task},
                           epilogue=lambda _: flops_line(strategy))  # fmt: skip


def flops_line(strategy: Any) -> str | None:
    """How much the FLOPs term can move the GA's ranking (None for the random counterpart)."""
    report = strategy.flops_report() if hasattr(strategy, "flops_report") else None
    if report is None:
        return None
    return (f"gamma * GFLOPs: {report['gamma_p_mean']:.4g} +- {report['gamma_p_std']:.3g} against a loss spread "
            f"(std) of {report['loss_std']:.3g}: ratio {report['gamma_p_over_loss_std']:.3g} (near 0: FLOPs cannot "
            "change the ranking; raise --gamma to trade quality for FLOPs)")  # fmt: skip
