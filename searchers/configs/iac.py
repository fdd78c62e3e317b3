"""IAC's config (``nasseg search iac``) and what it builds."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from nasseg.searchers.base import Budget
from nasseg.searchers.configs.base import BuiltSearch, SearchConfig, comma_ints


class IacSearchConfig(SearchConfig):
    """Every setting of an IAC search, stages I-III (the strategy's :class:`IacConfig`)."""

    searcher: Literal["iac"] = "iac"
    base: str = "iac-base-unet-small"
    from_stage: int = Field(1, ge=1, le=2)
    base_weights: Path | None = None
    image_size: int = Field(128, ge=8)
    base_epochs: int = Field(200, ge=1)
    warmup_epochs: int = Field(15, ge=0)
    search_epochs: int = Field(200, ge=1)
    cell_epochs: int = Field(200, ge=1)
    batch_size: int = Field(16, ge=2)
    cell_channels: int = Field(16, ge=1)
    partial_channels: int = Field(4, ge=1)
    record_epochs: tuple[int, ...] = (25, 50, 100, 150, 200)
    select_epoch: int | None = Field(None, ge=1)
    max_skip: int | None = Field(None, ge=0)
    implant: Literal["residual", "replace"] = "residual"
    keep_base: bool = True
    cell_lr: float = Field(3e-3, ge=0)
    cell_flips: bool = True
    min_steps: int = Field(20, ge=1)
    random_cell: bool = False

    _record_epochs = field_validator("record_epochs", mode="before")(comma_ints)

    def build(self) -> BuiltSearch:
        from nasseg.searchers.iac import IacConfig, IacStrategy

        self.check_data()
        config = IacConfig(base=self.base, from_stage=self.from_stage,
                           base_weights=str(self.base_weights) if self.base_weights else None,
                           base_epochs=self.base_epochs, warmup_epochs=self.warmup_epochs,
                           search_epochs=self.search_epochs, cell_epochs=self.cell_epochs,
                           batch_size=self.batch_size, image_size=(self.image_size, self.image_size),
                           cell_channels=self.cell_channels, partial_channels=self.partial_channels,
                           record_epochs=self.record_epochs, select_epoch=self.select_epoch,
                           max_steps_per_epoch=self.max_steps, max_images=self.max_images,
                           max_val_images=self.max_val_images, max_skip=self.max_skip, implant=self.implant,
                           keep_base=self.keep_base, cell_lr=self.cell_lr, cell_flips=self.cell_flips,
                           min_steps_per_epoch=self.min_steps, random_cell=self.random_cell)  # fmt: skip
        strategy = IacStrategy(self.data, config, seed=self.seed, device=self.device)
        budget = Budget(steps=config.total_steps, seconds=self.max_seconds)
        return BuiltSearch(strategy, None, budget, "iac", "iac", epilogue=implant_line)


def implant_line(result: Any) -> str | None:
    """Stage III's implant against the base, on val."""
    implant = next((r for r in result.history if r.key == "implant"), None)
    if implant is None:
        return None
    base_iou = implant.extra["base"].get("iou", float("nan"))
    kept = " (the base was better on val: the implant is reset to it)" if implant.extra["kept_base"] else ""
    return (f"stage III implant (cell of epoch {implant.extra['selected_epoch']}, "
            f"{implant.extra['skip_connects']['cell']} skip connections): val IoU "
            f"{implant.metrics.get('iou', float('nan')):.4f} vs base {base_iou:.4f}{kept}")  # fmt: skip
