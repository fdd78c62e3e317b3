"""IAC's config (``nasseg search iac``) and what it builds."""

from __future__ import annotations

from pathlib import Path
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


class IacSearchConfig(SearchConfig):
    """Every setting of an IAC search, stages I-III (the strategy's :class:`IacConfig`)."""

    searcher: Literal["iac"] = "iac"
    summary: ClassVar[str] = (
        "Run IAC stages I-III: base U-Net, cell search on the frozen base, cell training; report vs the base."
    )
    base: str = option("iac-base-unet-small", "Base U-Net: an iac-base-* model name or base genotype .json.")
    from_stage: int = option(1, "1: train the base; 2: load it (--base-weights).", ge=1, le=2)
    base_weights: Path | None = option(None, "Trained base weights (.safetensors) for stage 2.")
    image_size: int = option(128, "Training crop side while searching.", ge=8)
    base_epochs: int = option(200, "Stage I epochs (paper 200).", ge=1)
    warmup_epochs: int = option(15, "Stage II cell-weights-only epochs (paper 15).", ge=0)
    search_epochs: int = option(200, "Stage II search epochs after warm-up (paper 200).", ge=1)
    cell_epochs: int = option(200, "Stage III epochs (paper 200).", ge=1)
    batch_size: int = option(16, "Batch size (paper 128 on a GPU).", ge=2)
    cell_channels: int = option(16, "Channels inside each cell.", ge=1)
    partial_channels: int = option(4, "1/K of the channels go through the mixed ops.", "-K", "--partial-channels", ge=1)
    record_epochs: tuple[int, ...] = option((25, 50, 100, 150, 200), "Stage II epochs whose genotype is saved.")
    select_epoch: int | None = option(None, "Stage II epoch whose cell stage III trains (default: the last).", ge=1)
    max_skip: int | None = option(None, "Cap skip_connect edges in the derived cell.", ge=0)
    implant: Literal["residual", "replace"] = option(
        "residual", "residual (skip + zero-initialised cell: starts at the base) or replace (the paper)."
    )
    keep_base: bool = option(True, "Fall back to the base when it is better on val.", "--keep-base/--no-keep-base")
    cell_lr: float = option(3e-3, "Stage III learning rate (set by benchmarks/iac_stage3.py).", ge=0)
    cell_flips: bool = option(True, "Random flips in stage III (the paper: none).", "--cell-flips/--no-cell-flips")
    min_steps: int = option(20, "Optimiser steps per epoch at least (small sets are reused).", ge=1)
    random_cell: bool = option(False, "Random counterpart: no stage II, a random cell through stage III.", "--random")
    search_align: Literal["zero", "random"] = option(
        "zero", "Stage II's align init: zero (the supernet starts at the base) or random (its cells matter at once)."
    )
    selection: Literal["alpha", "perturbation"] = selection_option("alpha")
    perturbation_batches: int = perturbation_batches_option()

    _record_epochs = field_validator("record_epochs", mode="before")(comma_ints)

    def strategy_config(self) -> Any:
        """The strategy's :class:`IacConfig` for these settings."""
        from nasseg.searchers.iac import IacConfig

        return IacConfig(base=self.base, from_stage=self.from_stage,
                         base_weights=str(self.base_weights) if self.base_weights else None,
                         base_epochs=self.base_epochs, warmup_epochs=self.warmup_epochs,
                         search_epochs=self.search_epochs, cell_epochs=self.cell_epochs,
                         batch_size=self.batch_size, image_size=(self.image_size, self.image_size),
                         cell_channels=self.cell_channels, partial_channels=self.partial_channels,
                         record_epochs=self.record_epochs, select_epoch=self.select_epoch,
                         max_steps_per_epoch=self.max_steps, max_images=self.max_images,
                         max_val_images=self.max_val_images, max_skip=self.max_skip, implant=self.implant,
                         keep_base=self.keep_base, cell_lr=self.cell_lr, cell_flips=self.cell_flips,
                         min_steps_per_epoch=self.min_steps, random_cell=self.random_cell,
                         selection=self.selection, perturbation_batches=self.perturbation_batches,
                         search_align=self.search_align)  # fmt: skip

    def build(self) -> BuiltSearch:
        from nasseg.searchers.iac import IacStrategy

        self.check_data()
        config = self.strategy_config()
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
