"""AutoSegNet's config (``nasseg search autosegnet``) and what it builds."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from nasseg.searchers.base import Budget
from nasseg.searchers.configs.base import BuiltSearch, SearchConfig


class AutoSegNetSearchConfig(SearchConfig):
    """Every setting of an AutoSegNet search (the strategy's :class:`AutoSegNetConfig` and the space's)."""

    searcher: Literal["autosegnet"] = "autosegnet"
    cells_per_layer: int = Field(3, ge=1)
    ops_per_cell: int = Field(2, ge=1)
    epochs_max: int = Field(200, ge=1)
    target_iou: float | None = Field(None, ge=0, le=1)
    target_loss: float | None = Field(None, ge=0)
    controller: Literal["lstm", "uniform"] = "lstm"
    controller_steps: int = Field(20, ge=0)
    controller_lr: float = Field(5e-4, ge=0)
    entropy_weight: float = Field(1e-4, ge=0)
    baseline_decay: float = Field(0.99, ge=0, le=1)
    derive_samples: int = Field(8, ge=1)
    rerank_top: int = Field(4, ge=0)
    rerank_steps: int = Field(100, ge=1)
    reward_images: int | None = Field(None, ge=1)
    lr: float = Field(0.5, ge=0)
    loss: str | None = None
    clip: float = Field(0.5, ge=0)
    stem_channels: int = Field(32, ge=1)
    min_size: int = Field(16, ge=1)
    min_ratio: float = Field(1 / 32, ge=0, le=1)
    in_channels: int = Field(3, ge=1)
    image_size: int = Field(64, ge=8)
    batch_size: int = Field(8, ge=2)
    reward: Literal["soft_iou", "soft_dice", "iou"] = "soft_iou"
    warmup_epochs: int = Field(10, ge=0)
    min_steps: int = Field(20, ge=1)

    def build(self) -> BuiltSearch:
        from nasseg.searchers.autosegnet import AutoSegNetConfig, AutoSegNetSpace, AutoSegNetStrategy
        from nasseg.searchers.evaluators import search_task

        self.check_data()
        size = (self.image_size, self.image_size)
        task = search_task(self.data, size, self.in_channels)
        space = AutoSegNetSpace(size, self.in_channels, task["num_classes"], self.cells_per_layer, self.ops_per_cell,
                                stem_channels=self.stem_channels, min_size=self.min_size, min_ratio=self.min_ratio,
                                genotype_name=f"autosegnet-{self.data.name}-s{self.seed}")  # fmt: skip
        config = AutoSegNetConfig(
            image_size=size, batch_size=self.batch_size, max_images=self.max_images,
            max_val_images=self.max_val_images, max_steps_per_epoch=self.max_steps, lr=self.lr,
            clip_grad_norm=self.clip, loss=self.loss, controller=self.controller,
            controller_steps=self.controller_steps, controller_lr=self.controller_lr,
            baseline_decay=self.baseline_decay, entropy_weight=self.entropy_weight,
            derive_samples=self.derive_samples, reward_images=self.reward_images, epochs_max=self.epochs_max,
            target_iou=self.target_iou, target_loss=self.target_loss, device=self.device, reward=self.reward,
            warmup_epochs=self.warmup_epochs, min_steps_per_epoch=self.min_steps, rerank_top=self.rerank_top,
            rerank_steps=self.rerank_steps,
        )  # fmt: skip
        strategy = AutoSegNetStrategy(self.data, space, config, seed=self.seed)

        def stopped(_: object) -> str | None:
            reason = strategy.stop_reason()
            return f"stopped: {reason}; depth {space.depth} at {size[0]}x{size[1]}" if reason else None

        record = {"stop_rule": {"epochs_max": self.epochs_max, "target_iou": self.target_iou,
                                "target_loss": self.target_loss}}  # fmt: skip
        return BuiltSearch(strategy, None, Budget(steps=self.epochs_max, seconds=self.max_seconds), "autosegnet",
                           "autosegnet", record, epilogue=stopped)  # fmt: skip
