"""NAS-ASDet's config (``nasseg search nas-asdet``) and what it builds."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import field_validator

from nasseg.searchers.base import Budget
from nasseg.searchers.configs.base import (
    BuiltSearch,
    SearchConfig,
    comma_ints,
    option,
    perturbation_batches_option,
    selection_option,
)


class NasAsdetSearchConfig(SearchConfig):
    """Every setting of a NAS-ASDet search (the strategy's :class:`NasAsdetConfig`)."""

    searcher: Literal["nas-asdet"] = "nas-asdet"
    summary: ClassVar[str] = (
        "Search NAS-ASDet cells (11 ops, 4 normal + 4 reduction cells, fusion head) on a dataset folder."
    )
    image_size: int = option(128, "Training crop side while searching.", ge=8)
    epochs_per_stage: int = option(70, "Supernet epochs per stage (paper 70).", ge=1)
    warmup_epochs: int = option(20, "Weights-only epochs at each stage start (paper 20).", ge=0)
    keep: tuple[int, ...] = option((7, 4, 2, 1), "Ops kept per edge after each stage (paper 7,4,2,1).")
    batch_size: int = option(4, "Batch size (paper 4).", ge=2)
    init_channels: int = option(16, "Channels of the first cells.", ge=1)
    stem_multiplier: int = option(3, "Stem width = this x init channels.", ge=1)
    max_skip: int | None = option(None, "Cap skip_connect edges per derived cell.", ge=0)
    min_steps: int = option(20, "Optimiser steps per epoch at least (small sets are reused).", ge=1)
    derive_weights: Literal["all", "active"] = option(
        "all", "Rank edges by op weights over all ops (eq. 14: all) or the survivors (active)."
    )
    selection: Literal["alpha", "perturbation"] = selection_option("perturbation")
    perturbation_batches: int = perturbation_batches_option()

    _keep = field_validator("keep", mode="before")(comma_ints)

    def strategy_config(self) -> Any:
        """The strategy's :class:`NasAsdetConfig` for these settings."""
        from nasseg.searchers.nas_asdet import NasAsdetConfig

        return NasAsdetConfig(keep=self.keep, epochs_per_stage=self.epochs_per_stage,
                                warmup_epochs=self.warmup_epochs, batch_size=self.batch_size,
                                image_size=(self.image_size, self.image_size), init_channels=self.init_channels,
                                stem_multiplier=self.stem_multiplier, max_steps_per_epoch=self.max_steps,
                                max_images=self.max_images, max_val_images=self.max_val_images,
                                max_skip=self.max_skip, min_steps_per_epoch=self.min_steps,
                                derive_weights=self.derive_weights, selection=self.selection,
                                perturbation_batches=self.perturbation_batches)  # fmt: skip

    def build(self) -> BuiltSearch:
        from nasseg.searchers.nas_asdet import NasAsdetStrategy

        self.check_data()
        config = self.strategy_config()
        strategy = NasAsdetStrategy(self.data, config, seed=self.seed, device=self.device)

        def skips(result: Any) -> str | None:
            if result.best is None:
                return None
            return (f"skip connections in the derived cells: {result.best.extra.get('skip_connects', {})}; "
                    f"arch-weight heat maps in {result.run_dir / 'plots'}")  # fmt: skip

        budget = Budget(steps=config.total_epochs, seconds=self.max_seconds)
        return BuiltSearch(strategy, None, budget, "nas-asdet", "nas-asdet", epilogue=skips)
