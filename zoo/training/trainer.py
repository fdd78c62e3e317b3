"""The trainer: fit a zoo model on a checked dataset folder, checkpoint every epoch, resume.

One class serves the CLI (``nasseg train``), the demo and the searchers' evaluators. A run
directory holds ``checkpoint.pt`` (written atomically after every epoch: model, optimiser,
scheduler, epoch, best score, history, early-stopping counter), ``history.jsonl`` and, at the
end, ``best.safetensors`` with the weights of the best validation epoch. ``fit(resume=True)``
continues from the checkpoint; the shuffling and augmentation of every epoch are drawn from
``(seed, epoch)``, so a resumed run sees the same data as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader

from nasseg.zoo import checkpoint
from nasseg.zoo.data.augment import Augment
from nasseg.zoo.data.dataset import SegmentationDataset
from nasseg.zoo.data.folder import SegmentationFolder
from nasseg.zoo.errors import NassegError
from nasseg.zoo.io import atomic_write_bytes
from nasseg.zoo.modes import evaluating
from nasseg.zoo.sizing import crop_to_original, pad_to_multiple
from nasseg.zoo.training.batches import passes, planned_steps
from nasseg.zoo.training.losses import default_loss, flatten_outputs, predict_classes, segmentation_loss, total_loss
from nasseg.zoo.training.metrics import ConfusionMatrix


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (defaults suit a small net on CPU).

    ``scheduler="cosine"`` is cosine annealing with warm restarts (SGDR: first period
    ``restart_epochs``, doubling); ``patience`` stops after that many epochs without a better
    validation ``monitor`` score; ``amp`` uses bfloat16 autocast on CUDA (float16 with a
    gradient scaler where the GPU has no bfloat16); on CPU it does nothing.
    """

    epochs: int = 20
    batch_size: int = 8
    crop: tuple[int, int] = (128, 128)
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    scheduler: Literal["cosine", "none"] = "cosine"
    restart_epochs: int = 10
    clip_grad_norm: float | None = 5.0
    loss: str | None = None
    monitor: str = "iou"
    patience: int | None = None
    amp: bool = True
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"
    freeze_base: bool = False
    max_steps_per_epoch: int | None = None
    min_steps_per_epoch: int | None = None
    channels_last: bool = False
    augment: dict[str, Any] = field(default_factory=lambda: {"flip": True, "rotate": True, "intensity": 0.1})


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns: the best validation metrics, their epoch, the history."""

    best_epoch: int
    best_metrics: dict[str, Any]
    history: list[dict[str, Any]]
    stopped_early: bool
    seconds: float


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; a device this machine lacks is a one-line NassegError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise NassegError(f"--device {name!r} is no device name (auto, cpu, cuda, cuda:1, mps ...)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise NassegError(f"--device {name}: torch finds no CUDA GPU on this machine; use --device cpu or auto")
        if device.index is not None and device.index >= count:
            raise NassegError(f"--device {name}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise NassegError(f"--device {name}: MPS is not available on this machine; use --device cpu or auto")
    return device


#: what a training checkpoint holds (:meth:`Trainer.state_dict`)
TRAIN_CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "epoch", "best_score", "best_epoch", "best_metrics",
                         "bad_epochs", "history", "arch_hash")  # fmt: skip


def read_train_checkpoint(path: Path, map_location: Any = "cpu") -> dict[str, Any]:
    """A training run's ``checkpoint.pt``, read weights-only (``CheckpointError`` for anything else)."""
    return checkpoint.load_checkpoint(path, "train", TRAIN_CHECKPOINT_KEYS, map_location)


#: makes a trainer's optimiser for its model and config (default: :func:`default_optimizer`)
OptimizerFactory = Callable[[nn.Module, "TrainConfig"], torch.optim.Optimizer]


def default_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum) or Adam over the trainable parameters, as ``config`` says."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


Batch = tuple[torch.Tensor, torch.Tensor]


class BatchSource(Protocol):
    """Where a trainer's batches come from: how many whole batches one pass holds, and the batches of
    pass ``number`` of ``epoch`` (each pass drawn from its own numbers, so a resumed run sees the same)."""

    def batches_per_pass(self) -> int: ...

    def loader(self, epoch: int, number: int) -> Iterable[Batch]: ...


class TrainSplitBatches:
    """The default source: the training split with the config's crop and augmentation, shuffled per
    ``(seed, epoch, pass)``; the last partial batch is dropped (BatchNorm needs 2+ samples)."""

    def __init__(self, train_set: SegmentationDataset, config: TrainConfig) -> None:
        self.train_set = train_set
        self.batch_size = config.batch_size
        self.seed = config.seed
        self.num_workers = config.num_workers

    def batches_per_pass(self) -> int:
        return len(self.train_set) // self.batch_size

    def loader(self, epoch: int, number: int) -> DataLoader:
        self.train_set.set_epoch(epoch + 1_000_003 * number)
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch + 7_919 * number)
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, drop_last=True,
                          generator=generator, num_workers=self.num_workers)  # fmt: skip


#: called with the step number before each optimiser step (the bi-level search's architecture step)
BeforeStep = Callable[[int], None]


class Trainer:
    """Train ``model`` on ``data`` (train split) and select on the val split.

    Extension points, for the searchers: ``run_dir=None`` trains in memory (no files; :meth:`fit`
    needs a folder), ``optimizer`` makes the optimiser (per-group rates), ``batches`` replaces the
    training split as the source of batches, and ``before_step`` runs before every optimiser step
    (a supernet's architecture step: the bi-level alternation of :mod:`nasseg.searchers.differentiable`
    is this loop with that hook). Gradients are clipped over the parameters the optimiser steps.
    """

    def __init__(self, model: nn.Module, data: SegmentationFolder, config: TrainConfig,
                 run_dir: str | Path | None = None,
                 on_step: Callable[[dict[str, Any]], None] | None = None,
                 optimizer: OptimizerFactory | None = None, batches: BatchSource | None = None,
                 before_step: BeforeStep | None = None):  # fmt: skip
        self.model = model
        self.data = data
        self.config = config
        self._run_dir = None if run_dir is None else Path(run_dir)  # None: epochs in memory, no files (supernets)
        self.on_step = on_step
        self.device = resolve_device(config.device)
        self.model.to(self.device)
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.in_channels = model.genotype.task.in_channels
        if model.genotype.task.kind != "segmentation":
            raise NassegError(
                f"model {model.genotype.name!r} is a {model.genotype.task.kind} net; the trainer fits segmentation "
                "nets (pick a segmentation model, e.g. `nasseg list`)"
            )
        outputs = model.genotype.task.num_classes
        if outputs != data.model_classes:
            raise NassegError(
                f"model {model.genotype.name!r} has {outputs} output channel(s), but {data.root} has "
                f"{data.num_classes} classes (needs {data.model_classes}); "
                f"create it with num_classes={data.model_classes}"
            )
        self.loss_name = config.loss or default_loss(outputs)
        divisor = getattr(model, "divisor", 1)
        if config.crop[0] % divisor or config.crop[1] % divisor:
            raise NassegError(f"crop {config.crop} is not a multiple of the model's input divisor {divisor}")
        if config.freeze_base:
            freeze = getattr(model, "freeze_base", None)
            if freeze is None:
                raise NassegError(f"model {model.genotype.name!r} has no frozen-base mode (IAC implants have one)")
            freeze()
        if batches is None:
            augment = Augment(crop=tuple(config.crop), **config.augment)
            train_set = SegmentationDataset(data.splits["train"], data.num_classes, self.in_channels, augment,
                                            seed=config.seed)  # fmt: skip
            batches = TrainSplitBatches(train_set, config)
        self.batches = batches
        self.before_step = before_step
        self.optimizer = (optimizer or default_optimizer)(model, config)
        steps = self.steps_per_epoch()
        self.scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
                self.optimizer, T_0=config.restart_epochs * steps, T_mult=2
            )
            if config.scheduler == "cosine"
            else None
        )
        self.epoch = 0
        self.best_score = -math.inf
        self.best_epoch = -1
        self.best_metrics: dict[str, Any] = {}
        self.bad_epochs = 0
        self.history: list[dict[str, Any]] = []

    def steps_per_epoch(self) -> int:
        """Optimiser steps per epoch (the last partial batch is dropped, BatchNorm needs 2+ samples):
        one pass, raised to ``min_steps_per_epoch`` and capped by ``max_steps_per_epoch``."""
        batches = self.batches.batches_per_pass()
        return max(1, planned_steps(batches, self.config.min_steps_per_epoch, self.config.max_steps_per_epoch))

    # -- checkpoints -------------------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        """The folder of checkpoints, history and best weights (:meth:`fit` needs one)."""
        if self._run_dir is None:
            raise NassegError("this trainer has no run folder: fit() and checkpoints need one (Trainer(..., run_dir))")
        return self._run_dir

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume after the current epoch."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "epoch": self.epoch,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "best_metrics": self.best_metrics,
            "bad_epochs": self.bad_epochs,
            "history": self.history,
            "config": asdict(self.config),
            "arch_hash": self.model.genotype.arch_hash,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint made by :meth:`state_dict` for the same architecture."""
        if state.get("arch_hash") != self.model.genotype.arch_hash:
            raise NassegError(
                f"{self.checkpoint_path}: checkpoint is for architecture {state.get('arch_hash')}, "
                f"not {self.model.genotype.arch_hash}"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler and state["scheduler"]:
            self.scheduler.load_state_dict(state["scheduler"])
        for key in ("epoch", "best_score", "best_epoch", "best_metrics", "bad_epochs", "history"):
            setattr(self, key, state[key])

    def save_checkpoint(self) -> None:
        """Write the checkpoint atomically (a kill during the write leaves the previous one)."""
        checkpoint.save_checkpoint(self.checkpoint_path, "train", self.state_dict())

    def _write_history(self) -> None:
        """Rewrite ``history.jsonl`` from the checkpointed history, after the checkpoint: a kill at
        any point leaves it equal to the checkpoint's or one epoch behind, never ahead or doubled."""
        text = "".join(json.dumps(record) + "\n" for record in self.history)
        atomic_write_bytes(self.run_dir / "history.jsonl", text.encode())

    def _save_best(self) -> None:
        atomic_write_bytes(self.run_dir / "best_state.pt", checkpoint.tensors_to_bytes(self.model.state_dict()))

    # -- loops -------------------------------------------------------------------------------------

    def epoch_batches(self) -> Any:
        """The epoch's batches: pass after pass of the batch source (only the first pass unless
        ``min_steps_per_epoch`` asks for more steps than one pass has)."""
        return passes(lambda number: self.batches.loader(self.epoch, number))

    def stepped_parameters(self) -> list[torch.Tensor]:
        """The parameters the optimiser steps (the ones whose gradients are clipped)."""
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def train_epoch(self, limit: int | None = None) -> float:
        """One epoch of optimiser steps (the first ``limit`` of them, when given); returns the mean loss."""
        self.model.train()
        torch.manual_seed(self.config.seed * 1_000_003 + self.epoch)  # dropout / drop-path draws
        use_amp = self.config.amp and self.device.type == "cuda"
        amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
        losses = []
        steps = self.steps_per_epoch() if limit is None else min(limit, self.steps_per_epoch())
        clipped = self.stepped_parameters()
        for step, (images, masks) in enumerate(self.epoch_batches()):
            if step >= steps:
                break
            if self.before_step is not None:
                self.before_step(step)
            images = images.to(self.device).contiguous(memory_format=self.memory_format)
            masks = masks.to(self.device)
            self.optimizer.zero_grad(set_to_none=True)
            try:
                with torch.autocast(self.device.type, dtype=amp_dtype, enabled=use_amp):
                    loss = total_loss(self.model(images), masks, self.loss_name)
                scaler.scale(loss).backward()
            except RuntimeError as exc:  # shapes, memory: say where, keep torch's first line (--debug: all)
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise NassegError(
                    f"model {self.model.genotype.name!r}: training step failed at epoch {self.epoch + 1}, step "
                    f"{step + 1}, batch {tuple(images.shape)}: {first}"
                ) from exc
            if self.config.clip_grad_norm:
                scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(clipped, self.config.clip_grad_norm)
            scaler.step(self.optimizer)
            scaler.update()
            if self.scheduler:
                self.scheduler.step()
            losses.append(loss.item())
            if not math.isfinite(losses[-1]):
                raise NassegError(f"training diverged at epoch {self.epoch + 1}, step {step + 1} (loss {losses[-1]})")
            if self.on_step:
                self.on_step({"epoch": self.epoch + 1, "step": step + 1, "loss": losses[-1]})
        return sum(losses) / max(len(losses), 1)

    def train_epochs(self, epochs: int) -> list[float]:
        """``epochs`` epochs of optimiser steps from the current one, without validation or files
        (a search's candidate at its fidelity); returns each epoch's mean loss."""
        losses = []
        for _ in range(epochs):
            losses.append(self.train_epoch())
            self.epoch += 1
        return losses

    def train_steps(self, steps: int) -> list[float]:
        """``steps`` optimiser steps from the current epoch on, epoch after epoch (the last one cut
        short), without validation or files; returns each epoch's mean loss. Training a net for
        ``a`` steps, then ``b`` more, is training it ``a + b`` steps when ``a`` ends an epoch."""
        losses = []
        while steps > 0:
            take = min(steps, self.steps_per_epoch())
            losses.append(self.train_epoch(limit=take))
            self.epoch += 1
            steps -= take
        return losses

    def fit(self, resume: bool = False) -> TrainResult:
        """Train for ``config.epochs`` (from the checkpoint when ``resume``); keep the best weights."""
        start = time.perf_counter()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            if not self.checkpoint_path.is_file():
                raise NassegError(f"{self.run_dir}: nothing to resume (no checkpoint.pt)")
            self.load_state_dict(read_train_checkpoint(self.checkpoint_path, self.device))
        stopped_early = False
        while self.epoch < self.config.epochs:
            loss = self.train_epoch()
            metrics = evaluate(self.model, self.data, "val", self.device)
            self.epoch += 1
            record = {"epoch": self.epoch, "loss": loss, "lr": self.optimizer.param_groups[0]["lr"],
                      **{k: v for k, v in metrics.items() if k != "per_class"}}  # fmt: skip
            self.history.append(record)
            score = float(metrics[self.config.monitor])
            if score > self.best_score:
                self.best_score, self.best_epoch, self.best_metrics, self.bad_epochs = score, self.epoch, metrics, 0
                self._save_best()
            else:
                self.bad_epochs += 1
            self.save_checkpoint()
            self._write_history()
            if self.on_step:
                self.on_step({"epoch": self.epoch, "end_of_epoch": True, **record})
            if self.config.patience is not None and self.bad_epochs >= self.config.patience:
                stopped_early = True
                break
        best = self.run_dir / "best_state.pt"
        if best.is_file():
            self.model.load_state_dict(checkpoint.state_from_bytes(best, best, self.device))
        self.model.pretrained = True  # trained weights now: an export of it says so
        return TrainResult(self.best_epoch, self.best_metrics, self.history, stopped_early, time.perf_counter() - start)


EVAL_BATCH_PIXELS = 16 * 256 * 256


@torch.no_grad()
def evaluate(model: nn.Module, data: SegmentationFolder, split: str = "test", device: torch.device | str = "cpu",
             threshold: float = 0.5, loss: str | None = None, batch_size: int = 16) -> dict[str, Any]:  # fmt: skip
    """Metrics of ``model`` on a split: each full image padded to the net's divisor, cropped back.

    Consecutive images of one size go through the net ``batch_size`` at a time, at most
    ``EVAL_BATCH_PIXELS`` pixels a batch (the same numbers as one at a time, in eval mode, and
    several times faster for small nets on a CPU; large images still go one by one). With ``loss``
    (a name of :mod:`zoo.training.losses`) the mean per-image loss of the main output is added as
    ``metrics["loss"]`` (the U-Net GA's fitness needs it).
    """
    device = torch.device(device)
    dataset = SegmentationDataset(data.splits[split], data.num_classes, model.genotype.task.in_channels)
    matrix = ConfusionMatrix(data.num_classes)
    divisor = getattr(model, "divisor", 1)
    losses: list[float] = []
    pending: list[tuple[torch.Tensor, torch.Tensor]] = []

    def flush() -> None:
        if not pending:
            return
        images = torch.cat([p[0] for p in pending])
        padded, padding = pad_to_multiple(images, divisor)
        logits = crop_to_original(flatten_outputs(model(padded.to(device)))[0], padding)
        target = torch.stack([p[1] for p in pending]).to(device)
        matrix.update(predict_classes(logits, threshold).cpu(), target.cpu())
        if loss is not None:
            losses.extend(float(segmentation_loss(logits[i : i + 1].float(), target[i : i + 1], loss))
                          for i in range(len(pending)))  # fmt: skip
        pending.clear()

    with evaluating(model):
        for index in range(len(dataset)):
            image, mask = dataset[index]
            room = max(1, min(batch_size, EVAL_BATCH_PIXELS // (image.shape[-1] * image.shape[-2])))
            if pending and (pending[0][0].shape != image.unsqueeze(0).shape or len(pending) >= room):
                flush()
            pending.append((image.unsqueeze(0), mask))
        flush()
    metrics = matrix.compute(data.classes)
    if loss is not None:
        metrics["loss"] = sum(losses) / max(len(losses), 1)
    return metrics
