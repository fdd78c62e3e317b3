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
from nasseg.zoo.training.trainer import evaluate


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

    def inherit_parent(self, model: nn.Module, proposal: Proposal) -> tuple[list[str] | None, dict[str, int]]:
        """Copy the parent's weights into ``model`` when the proposal's plan names them: (the names of
        the parameters that are new, None when every one is at the base rate; the counts)."""
        plan = TrainingPlan.of_proposal(proposal)
        if plan.parent_weights is None:
            return None, {}
        state = load_parent(Path(plan.parent_weights))
        inherited, new = inherit(model, state, [list(edge) for edge in plan.new_edges])
        named = dict(model.named_parameters())
        counts = {"inherited_params": sum(named[n].numel() for n in set(inherited) if n in named),
                  "new_params": sum(named[n].numel() for n in set(new) if n in named)}  # fmt: skip
        return new, counts

    def optimizer(self, model: nn.Module, new: list[str] | None = None,
                  weight_decay: float = 1e-4) -> torch.optim.Optimizer:  # fmt: skip
        """The fidelity's optimiser; with inheritance (``new``: the new parameters' names), the new
        parameters at ``new_lr_factor`` x ``lr``."""
        lr = self.fidelity.lr
        if new is None:
            groups: list[dict[str, Any]] = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]
        else:
            groups = parameter_groups(model, new, lr, self.new_lr_factor)
        if self.fidelity.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=weight_decay)
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)

    # -- evaluation ------------------------------------------------------------------------------

    def evaluate(self, proposal: Proposal, seed: int, workdir: Path) -> EvalResult:
        evaluator = self.for_proposal(proposal)
        if evaluator is not self:  # the copy runs this method itself (not a subclass' wrapper twice)
            return RenasEvaluator.evaluate(evaluator, proposal, seed, workdir)
        start = time.perf_counter()
        model = self.build(proposal, seed, workdir)
        new, counts = self.inherit_parent(model, proposal)
        if self.task == "classification":
            result = self._evaluate_classifier(proposal, model, new, seed, workdir)
        else:
            self.check_outputs(proposal)
            trainer = self.make_trainer(model, proposal, seed, workdir,
                                        optimizer=lambda net, config: self.optimizer(net, new, config.weight_decay))
            result = self.train_and_score(proposal, model, trainer, workdir, start)
            # a graded score for fidelities at which every thresholded IoU is 0
            dice_loss = evaluate(model, self.folder(), "val", next(model.parameters()).device, loss="dice")["loss"]
            result.metrics["soft_dice"] = 1.0 - float(dice_loss)
        result.extra.update(counts, epochs=self.fidelity.epochs)
        result.seconds = time.perf_counter() - start
        return result

    def _evaluate_classifier(self, proposal: Proposal, model: nn.Module, new: list[str] | None, seed: int,
                             workdir: Path) -> EvalResult:  # fmt: skip
        folder = self.folder()
        optimizer = self.optimizer(model, new)
        config = self.train_config(seed)
        for epoch in range(self.fidelity.epochs):
            train_classifier_epoch(model, folder, config, optimizer, epoch)
        metrics = evaluate_classifier(model, folder, "val")
        self.after_training(model, proposal, workdir)
        macs, params = measure(proposal.genotype, self.fidelity.image_size)
        return EvalResult(key=proposal.key, genotype=proposal.genotype, metrics=metrics, macs=macs, params=params)
