"""NAS-ASDet's config (``nasseg search nas-asdet``) and what it builds."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from nasseg.searchers.base import Budget
from nasseg.searchers.configs.base import BuiltSearch, SearchConfig, comma_ints


class NasAsdetSearchConfig(SearchConfig):
    """Every setting of a NAS-ASDet search (the strategy's :class:`NasAsdetConfig`)."""

    searcher: Literal["nas-asdet"] = "nas-asdet"
    image_size: int = Field(128, ge=8)
    epochs_per_stage: int = Field(70, ge=1)
    warmup_epochs: int = Field(20, ge=0)
    keep: tuple[int, ...] = (7, 4, 2, 1)
    batch_size: int = Field(4, ge=2)
    init_channels: int = Field(16, ge=1)
    stem_multiplier: int = Field(3, ge=1)
    max_skip: int | None = Field(None, ge=0)
    min_steps: int = Field(20, ge=1)
    derive_weights: Literal["all", "active"] = "all"

    _keep = field_validator("keep", mode="before")(comma_ints)

    def build(self) -> BuiltSearch:
        from nasseg.searchers.nas_asdet import NasAsdetConfig, NasAsdetStrategy

        self.check_data()
        config = NasAsdetConfig(keep=self.keep, epochs_per_stage=self.epochs_per_stage,
                                warmup_epochs=self.warmup_epochs, batch_size=self.batch_size,
                                image_size=(self.image_size, self.image_size), init_channels=self.init_channels,
                                stem_multiplier=self.stem_multiplier, max_steps_per_epoch=self.max_steps,
                                max_images=self.max_images, max_val_images=self.max_val_images,
                                max_skip=self.max_skip, min_steps_per_epoch=self.min_steps,
                                derive_weights=self.derive_weights)  # fmt: skip
        strategy = NasAsdetStrategy(self.data, config, seed=self.seed, device=self.device)

        def skips(result: Any) -> str | None:
            if result.best is None:
                return None
            return (f"skip connections in the derived cells: {result.best.extra.get('skip_connects', {})}; "
                    f"arch-weight heat maps in {result.run_dir / 'plots'}")  # fmt: skip

        budget = Budget(steps=config.total_epochs, seconds=self.max_seconds)
        return BuiltSearch(strategy, None, budget, "nas-asdet", "nas-asdet", epilogue=skips)
