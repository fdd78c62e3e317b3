"""AutoSegNet's config (``nasseg search autosegnet``) and what it builds."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import field_validator

from nasseg.searchers.base import Budget
from nasseg.searchers.configs.base import BuiltSearch, SearchConfig, option

#: the paper's op set, as ``zoo.ops.AUTOSEGNET_OPS`` (written out: reading a config imports no torch)
PAPER_OPS = ("sep_conv_3x3", "sep_conv_5x5", "hdc_3x3", "skip_connect")


class AutoSegNetSearchConfig(SearchConfig):
    """Every setting of an AutoSegNet search (the strategy's :class:`AutoSegNetConfig` and the space's)."""

    searcher: Literal["autosegnet"] = "autosegnet"
    summary: ClassVar[str] = """Search an AutoSegNet (down/bridge/up layer cells and long skips) on a dataset folder.

The depth follows from --image-size (min size 16, ratio 1/32, an HDC layer instead of the last
downsampling); train the result at another size with `nasseg train RUN/best.json --crop H W`."""
    cells_per_layer: int = option(3, "Cells per searched layer (paper: 3).", ge=1)
    ops_per_cell: int = option(2, "Ops per cell (paper: 2).", ge=1)
    epochs_max: int = option(200, "MAX_EPOCH of the stop rule.", ge=1)
    target_iou: float | None = option(None, "Stop once the derived child's val IoU reaches this.", ge=0, le=1)
    target_loss: float | None = option(None, "Stop once the shared weights' training loss falls to this.", ge=0)
    controller: Literal["lstm", "uniform"] = option("lstm", "lstm (the paper's) or uniform (random sampling).")
    controller_steps: int = option(20, "REINFORCE updates per epoch.", ge=0)
    controller_lr: float = option(5e-4, "Adam lr of the controller.", ge=0)
    entropy_weight: float = option(1e-4, "Entropy bonus of the controller loss.", ge=0)
    baseline_decay: float = option(0.99, "Moving-average baseline decay.", ge=0, le=1)
    derive_samples: int = option(8, "Children sampled to derive the answer.", ge=1)
    rerank_top: int = option(
        4,
        "At the end, train the best N derived children alone; the best on val is the answer (0: the "
        "paper's, the controller's child as it is).",
        ge=0,
    )
    rerank_steps: int = option(100, "Adam steps of each reranked child.", ge=1)
    reward_images: int | None = option(None, "Validation images per reward (default: all of --max-val-images).", ge=1)
    lr: float = option(0.5, "SGD lr of the shared weights (paper: 0.5).", ge=0)
    loss: str | None = option(None, "Shared-weight loss (default: cross-entropy, bce for one-channel nets).")
    clip: float = option(0.5, "Gradient-norm clip of the shared weights.", ge=0)
    ops: tuple[str, ...] = option(PAPER_OPS, "The op set, comma-separated (paper: all four).")
    long_skips: Literal["searched", "all"] = option(
        "searched", "searched (the paper: one bit per level) or all (every level keeps its U-Net long skip)."
    )
    stem_channels: int = option(32, "Stem width (widths double per level).", ge=1)
    min_size: int = option(16, "Minimum downsampled side (paper: 16).", ge=1)
    min_ratio: float = option(1 / 32, "Maximum downsampling ratio (paper: 1/32).", ge=0, le=1)
    in_channels: int = option(3, "Input channels of the searched net.", ge=1)
    image_size: int = option(64, "Training crop side while searching.", ge=8)
    batch_size: int = option(8, "Minibatch of the shared weights.", ge=2)
    reward: Literal["soft_iou", "soft_dice", "iou"] = option(
        "soft_iou", "Controller reward: soft_iou (default), soft_dice or iou (the paper's, thresholded)."
    )
    warmup_epochs: int = option(10, "First epochs train the shared weights on uniform children, no controller.", ge=0)
    name: str | None = option(None, "Name of the searched genotype (default: autosegnet-DATA-sSEED).")
    min_steps: int = option(20, "Optimiser steps per epoch at least (small sets are reused).", ge=1)

    @field_validator("ops", mode="before")
    @classmethod
    def _comma_ops(cls, value: Any) -> Any:
        return tuple(part.strip() for part in value.split(",") if part.strip()) if isinstance(value, str) else value

    @field_validator("ops")
    @classmethod
    def _known_ops(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [op for op in value if op not in PAPER_OPS]
        if not value or unknown or len(set(value)) != len(value):
            raise ValueError(f"give distinct ops from {','.join(PAPER_OPS)}, got {','.join(value) or 'none'}")
        return value

    def space(self, num_classes: int, size: tuple[int, int] | None = None) -> Any:
        """The AutoSegNet space these settings search (its depth follows ``size``, default the search size)."""
        from nasseg.searchers.autosegnet import AutoSegNetSpace

        size = size or (self.image_size, self.image_size)
        return AutoSegNetSpace(size, self.in_channels, num_classes, self.cells_per_layer, self.ops_per_cell,
                               ops=self.ops, stem_channels=self.stem_channels, min_size=self.min_size,
                               min_ratio=self.min_ratio, long_skips=self.long_skips,
                               genotype_name=self.name or f"autosegnet-{self.data.name}-s{self.seed}")  # fmt: skip

    def build(self) -> BuiltSearch:
        from nasseg.searchers.autosegnet import AutoSegNetConfig, AutoSegNetStrategy
        from nasseg.searchers.evaluators import search_task

        self.check_data()
        size = (self.image_size, self.image_size)
        task = search_task(self.data, size, self.in_channels)
        space = self.space(task["num_classes"])
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
