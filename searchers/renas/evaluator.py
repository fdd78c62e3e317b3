"""The RENAS evaluator: initial individuals from scratch, children by inheritance and fine-tuning.

A proposal's :class:`~nasseg.searchers.renas.plan.TrainingPlan` says how to train it (set by
:class:`searchers.renas.evolution.RenasStrategy`):

- no ``inherit``: a random initialisation trained at the fidelity (the initial population, random
  sampling, or every child when inheritance is off);
- ``parent_weights`` given: the parent's ``weights.pt`` (the file the plan names) is copied in
  (:func:`searchers.renas.inheritance.inherit`)
  and the child is fine-tuned for ``epochs`` passes (paper: one) with the new parameters at
  ``new_lr_factor`` (10) times the learning rate of the inherited ones;
- ``final`` true: retrained from scratch at ``final_fidelity`` (section 4.3, "Deriving Architectures").

``epochs`` overrides the fidelity's epoch count. Departure (an option): ``bn_recalibration``
(default 8 batches) re-estimates every child's BatchNorm statistics on training batches before it
is scored; RENAS scores children after a single fine-tuning pass, when the running statistics
still hold their initial values and every child put out one constant (issue 14).
Segmentation candidates also get ``soft_dice`` (1 - the soft Dice loss on the validation images,
sigmoid probabilities, no threshold): at the tiny fidelities of a CPU search every thresholded
IoU can be 0, and ``--fitness soft_dice`` ranks them.

Every candidate's trained weights are written to
its folder (``keep_weights``) so children, and a resumed search, can inherit them. Segmentation
candidates train with the zoo ``Trainer``; classification-proxy candidates with
:mod:`searchers.renas.classification`.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasseg.searchers.base import EvalResult, Fidelity, Proposal
from nasseg.searchers.evaluators import SegmentationEvaluator, measure
from nasseg.searchers.renas.classification import evaluate_classifier, train_classifier_epoch
from nasseg.searchers.renas.inheritance import inherit, load_parent, parameter_groups
from nasseg.searchers.renas.plan import TrainingPlan
from nasseg.zoo.training.trainer import Trainer, evaluate


class RenasEvaluator(SegmentationEvaluator):
    """:class:`SegmentationEvaluator` with parameter inheritance, per-group learning rates and the proxy task."""

    def __init__(self, data: str | Path, fidelity: Fidelity, device: str = "cpu", loss: str | None = None,
                 task: str = "segmentation", new_lr_factor: float = 10.0,
                 final_fidelity: Fidelity | None = None, bn_recalibration: int = 8) -> None:  # fmt: skip
        super().__init__(data, fidelity, device, loss, keep_weights=True, bn_recalibration=bn_recalibration)
        self.task = task
        self.new_lr_factor = new_lr_factor
        self.final_fidelity = final_fidelity or fidelity

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "task": self.task, "new_lr_factor": self.new_lr_factor,
                "final_fidelity": dataclasses.asdict(self.final_fidelity)}  # fmt: skip

    def for_proposal(self, proposal: Proposal) -> RenasEvaluator:
        """This evaluator, or a copy at the fidelity the proposal asks for (final retraining, epochs)."""
        plan = TrainingPlan.of_proposal(proposal)
        fidelity = self.final_fidelity if plan.final else self.fidelity
        if plan.epochs:
            fidelity = dataclasses.replace(fidelity, epochs=plan.epochs)
        if fidelity == self.fidelity:
            return self
        clone = copy.copy(self)
        clone.fidelity = fidelity
        if (fidelity.max_images, fidelity.max_val_images) != (self.fidelity.max_images, self.fidelity.max_val_images):
            clone._folder = None
        return clone

    # -- hooks -----------------------------------------------------------------------------------

    def build(self, proposal: Proposal, seed: int, workdir: Path) -> nn.Module:
        model = super().build(proposal, seed, workdir)
        model.renas_new = None  # type: ignore[attr-defined]  (None: every parameter at the base rate)
        plan = TrainingPlan.of_proposal(proposal)
        if plan.parent_weights is not None:
            state = load_parent(Path(plan.parent_weights))
            inherited, new = inherit(model, state, [list(edge) for edge in plan.new_edges])
            model.renas_new = new  # type: ignore[attr-defined]
            model.renas_counts = {  # type: ignore[attr-defined]
                "inherited_params": sum(p.numel() for n, p in model.named_parameters() if n in set(inherited)),
                "new_params": sum(p.numel() for n, p in model.named_parameters() if n in set(new)),
            }
        return model

    def optimizer(self, model: nn.Module, weight_decay: float = 1e-4) -> torch.optim.Optimizer:
        """The fidelity's optimiser; with inheritance, new parameters at ``new_lr_factor`` x ``lr``."""
        lr = self.fidelity.lr
        new = getattr(model, "renas_new", None)
        if new is None:
            groups: list[dict[str, Any]] = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]
        else:
            groups = parameter_groups(model, new, lr, self.new_lr_factor)
        if self.fidelity.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=weight_decay)
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)

    def make_trainer(self, model: nn.Module, proposal: Proposal, seed: int, workdir: Path) -> Trainer:
        trainer = super().make_trainer(model, proposal, seed, workdir)
        trainer.optimizer = self.optimizer(model, trainer.config.weight_decay)
        return trainer

    # -- evaluation ------------------------------------------------------------------------------

    def evaluate(self, proposal: Proposal, seed: int, workdir: Path) -> EvalResult:
        evaluator = self.for_proposal(proposal)
        if evaluator is not self:  # the copy runs this method itself (not a subclass' wrapper twice)
            return RenasEvaluator.evaluate(evaluator, proposal, seed, workdir)
        start = time.perf_counter()
        self._counts: dict[str, int] = {}
        if self.task == "classification":
            result = self._evaluate_classifier(proposal, seed, workdir)
        else:
            result = super().evaluate(proposal, seed, workdir)
        soft_dice = self._counts.pop("soft_dice", None)
        if soft_dice is not None:
            result.metrics["soft_dice"] = soft_dice
        result.extra.update(self._counts, epochs=self.fidelity.epochs)
        result.seconds = time.perf_counter() - start
        return result

    def after_training(self, model: nn.Module, proposal: Proposal, workdir: Path) -> None:
        super().after_training(model, proposal, workdir)
        self._counts = dict(getattr(model, "renas_counts", {}))
        if self.task == "segmentation":  # a graded score for fidelities at which every thresholded IoU is 0
            dice_loss = evaluate(model, self.folder(), "val", next(model.parameters()).device, loss="dice")["loss"]
            self._counts["soft_dice"] = 1.0 - float(dice_loss)

    def _evaluate_classifier(self, proposal: Proposal, seed: int, workdir: Path) -> EvalResult:
        folder = self.folder()
        model = self.build(proposal, seed, workdir)
        optimizer = self.optimizer(model)
        config = self.train_config(seed)
        for epoch in range(self.fidelity.epochs):
            train_classifier_epoch(model, folder, config, optimizer, epoch)
        metrics = evaluate_classifier(model, folder, "val")
        self.after_training(model, proposal, workdir)
        macs, params = measure(proposal.genotype, self.fidelity.image_size)
        return EvalResult(key=proposal.key, genotype=proposal.genotype, metrics=metrics, macs=macs, params=params)
