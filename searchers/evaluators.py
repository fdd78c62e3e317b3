"""Evaluators that train a candidate at a search fidelity and score it on the validation split.

:class:`SegmentationEvaluator` trains with the zoo's :class:`~zoo.training.trainer.Trainer` (the
same training steps ``nasseg train`` runs), at ``fidelity.image_size`` crops for
``fidelity.epochs`` on at most ``fidelity.max_images`` training images, then scores the net on
the validation split (IoU, Dice, the segmentation loss) and measures its MACs and parameters at
the search size. Subclasses change how the net is made (``build``) or what happens to the trained
weights (``after_training``), e.g. for parameter inheritance. ``bn_recalibration=N`` re-estimates
the BatchNorm statistics on ``N`` training batches before scoring
(:func:`zoo.training.batchnorm.recalibrate_batchnorm`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasseg import zoo
from nasseg.searchers.base import EvalResult, Evaluator, Fidelity, Proposal, SearchError
from nasseg.searchers.halving import proposal_epochs
from nasseg.zoo.checkpoint import tensors_to_bytes
from nasseg.zoo.data.folder import SegmentationFolder, open_folder
from nasseg.zoo.genotype import Genotype
from nasseg.zoo.io import atomic_write_bytes
from nasseg.zoo.training.batchnorm import recalibrate_batchnorm
from nasseg.zoo.training.losses import default_loss
from nasseg.zoo.training.trainer import OptimizerFactory, TrainConfig, Trainer, evaluate

METRIC_KEYS = ("iou", "dice", "miou", "pixel_accuracy", "loss")


def subset(folder: SegmentationFolder, max_train: int | None, max_val: int | None) -> SegmentationFolder:
    """The first ``max_train`` training and ``max_val`` validation samples (the search's mini-sets)."""
    splits = dict(folder.splits)
    if max_train is not None:
        splits["train"] = splits["train"][:max_train]
    if max_val is not None:
        splits["val"] = splits["val"][:max_val]
    return dataclasses.replace(folder, splits=splits)


def search_task(data: str | Path, image_size: tuple[int, int], in_channels: int | None = None) -> dict[str, Any]:
    """The genotype ``task`` a search on ``data`` at ``image_size`` needs (classes from the folder)."""
    folder = open_folder(data)
    task: dict[str, Any] = {"kind": "segmentation", "num_classes": folder.model_classes, "input_size": list(image_size),
                            "class_names": list(folder.classes)}  # what served defects are called
    if in_channels is not None:
        task["in_channels"] = in_channels
    return task


def measure(genotype: Genotype, image_size: tuple[int, int]) -> tuple[int, int]:
    """(MACs, parameters) of one image at ``image_size`` (the zoo's counting convention)."""
    model = zoo.build_model(genotype)
    report = zoo.profile(model, input_size=(1, genotype.task.in_channels, *image_size))
    return int(report.macs), int(report.params_total - report.params_auxiliary)


class SegmentationEvaluator(Evaluator):
    """Train a candidate briefly and score it on the validation split (picklable, for Ray)."""

    def __init__(self, data: str | Path, fidelity: Fidelity, device: str = "cpu", loss: str | None = None,
                 keep_weights: bool = False, bn_recalibration: int = 0) -> None:  # fmt: skip
        self.data = Path(data)
        self.bn_recalibration = bn_recalibration
        self.fidelity = fidelity
        self.device = device
        self.loss = loss
        self.keep_weights = keep_weights
        self._folder: SegmentationFolder | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_folder": None}

    def folder(self) -> SegmentationFolder:
        """The dataset, cut to the fidelity's mini-sets (opened once per process)."""
        if self._folder is None:
            self._folder = subset(open_folder(self.data), self.fidelity.max_images, self.fidelity.max_val_images)
        return self._folder

    def describe(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "data": str(self.data), "fidelity": dataclasses.asdict(self.fidelity),
                "device": self.device, "loss": self.loss, "bn_recalibration": self.bn_recalibration}  # fmt: skip

    def train_config(self, seed: int) -> TrainConfig:
        """The trainer's hyper-parameters at this fidelity."""
        f = self.fidelity
        return TrainConfig(epochs=f.epochs, batch_size=f.batch_size, crop=f.image_size, optimizer=f.optimizer, lr=f.lr,
                           scheduler="none", loss=self.loss, seed=seed, device=self.device,
                           max_steps_per_epoch=f.max_steps_per_epoch,
                           min_steps_per_epoch=f.min_steps_per_epoch, channels_last=f.channels_last)  # fmt: skip

    def build(self, proposal: Proposal, seed: int, workdir: Path) -> nn.Module:
        """The net to train (random initialisation from ``seed``)."""
        torch.manual_seed(seed)
        return zoo.build_model(proposal.genotype)

    def make_trainer(self, model: nn.Module, proposal: Proposal, seed: int, workdir: Path,
                     optimizer: OptimizerFactory | None = None) -> Trainer:  # fmt: skip
        """The trainer, in memory (the weights are kept by :meth:`after_training`); ``optimizer``:
        a factory for another optimiser (e.g. per-parameter learning rates)."""
        return Trainer(model, self.folder(), self.train_config(seed), optimizer=optimizer)

    def after_training(self, model: nn.Module, proposal: Proposal, workdir: Path) -> None:
        """Keep the trained weights in the candidate's folder when asked (children may inherit them)."""
        if self.keep_weights:
            atomic_write_bytes(workdir / "weights.pt", tensors_to_bytes(model.state_dict()))

    def evaluate(self, proposal: Proposal, seed: int, workdir: Path) -> EvalResult:
        start = time.perf_counter()
        self.check_outputs(proposal)
        model = self.build(proposal, seed, workdir)
        return self.train_and_score(proposal, model, self.make_trainer(model, proposal, seed, workdir), workdir, start)

    def check_outputs(self, proposal: Proposal) -> None:
        """A candidate's outputs must match the dataset's classes (one line that says both)."""
        outputs, needed = proposal.genotype.task.num_classes, self.folder().model_classes
        if outputs != needed:
            raise SearchError(f"candidate {proposal.key}: {outputs} output(s), but {self.data} needs {needed}")

    def train_and_score(self, proposal: Proposal, model: nn.Module, trainer: Trainer, workdir: Path,
                        start: float) -> EvalResult:  # fmt: skip
        """Train ``model`` for the fidelity's epochs (a promotion: its own), re-estimate BatchNorm (if
        asked) and score it on val."""
        genotype = proposal.genotype
        trainer.train_epochs(proposal_epochs(proposal, self.fidelity.epochs))
        if self.bn_recalibration:
            batches = (
                images for _, (images, _) in zip(range(self.bn_recalibration), trainer.epoch_batches(), strict=False)
            )
            recalibrate_batchnorm(model, batches, trainer.device)
        loss_name = self.loss or default_loss(genotype.task.num_classes)
        metrics = evaluate(model, self.folder(), "val", trainer.device, loss=loss_name)
        self.after_training(model, proposal, workdir)
        macs, params = measure(genotype, self.fidelity.image_size)
        scores = {k: float(metrics[k]) for k in METRIC_KEYS if k in metrics}
        return EvalResult(key=proposal.key, genotype=genotype, metrics=scores, macs=macs, params=params,
                          seconds=time.perf_counter() - start)  # fmt: skip


