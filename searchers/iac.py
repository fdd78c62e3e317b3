"""IAC (seed 004): Implantable Adaptive Cells searched inside the skips of a frozen, pre-trained U-Net.

Three stages, one strategy (``step`` 0 = stage I, one ``step`` per stage II epoch, one for stage III):

- **Stage I** (section IV-B.1): the base U-Net of the ``iac-unet`` family (``--base NAME``: any
  ``genotypes/iac-base-*.json`` or a base genotype file) is trained on the training split with the
  zoo :class:`~zoo.training.trainer.Trainer` (Adam, constant lr 0.001, Dice loss, no augmentation,
  section IV-A) and written to ``RUN/base.json`` + ``RUN/base.safetensors``; or, from stage II,
  a trained base is loaded (``--base-weights FILE``, checked against the base's arch hash).
- **Stage II** (section III-B, IV-B.2, Algorithms 1-2): the supernet is the family's
  :class:`~zoo.families.iac_unet.IACImplant` around the frozen base, its cell factory giving a
  :class:`~searchers.differentiable.BoundMixedCell` (4 nodes, 14 edges, the 8 DARTS ops, partial
  channels 1/K with channel shuffle, K = 4) in every skip. One ``alpha`` / ``beta`` set is shared by
  all levels ("a single architecture shared across all levels"), each level has its own cell
  weights. ``alpha`` and ``beta`` start at ones; edges are normalised with the tan-rescaled,
  0.5-capped softmax of eqs. 6-10 (:func:`zoo.supernet.tan_capped_softmax`). ``train_search`` /
  ``val_search`` are two equal halves of the training split; the first ``warmup_epochs`` (paper 15)
  train the cell weights only, then every step updates ``(alpha, beta)`` on a ``val_search`` batch
  and then ``omega`` on a ``train_search`` batch (Algorithm 1, lines 6-9). SGD for ``omega`` (lr
  0.01, momentum 0, no weight decay) under cosine power annealing (Hundt et al., sharpDARTS,
  the paper's [40]: ``p ** ((1 + cos(pi e / E)) / 2)`` rescaled, ``p = 10``; ``p = 1`` is plain
  cosine) over the stage's epochs; Adam for ``alpha, beta`` (lr 0.001, constant). Dice loss. The
  genotype derived after each epoch is recorded (fitness: the supernet's validation IoU); the
  epochs in ``record_epochs`` (paper: 25/50/100/150/200) are also written as implant genotypes to
  ``RUN/genotypes/``. Derivation (section III-B.3): per edge the strongest non-zero op, per node the
  two edges with the largest (op weight x edge weight), PC-DARTS' rule.
- **Stage III** (section IV-B.3, Algorithm 3): the discrete cell of the chosen epoch (default: the
  last) is implanted into the base (``RUN/implant.json``, a plain ``iac-unet`` genotype), its cell
  weights freshly initialised, the base loaded and frozen, and the cells trained with the Stage I
  hyper-parameters (the Trainer's ``freeze_base``). The result is reported against the base.

Departures from the paper, each an option (chosen by what issue 14 measured at search scale):

- ``implant="residual"`` (default): every cell, continuous or discrete, is added to its skip
  through a zero-initialised 1x1 align, so the implant starts exactly at the base (see
  :class:`zoo.families.iac_unet.AdaptiveCell`). ``"replace"`` is the paper's reading: a
  randomly initialised implant scored val IoU 0.016 at stage III step 0 against its base's 0.709.
- ``keep_base=True`` (default, residual implants only): the base itself stays a candidate of stage
  III. If the trained implant's best validation IoU is below the base's, its aligns are zeroed
  and the implant computes exactly the base, so the chosen implant is never below the base on val.
- ``cell_lr`` (default 3e-3, not stage I's 1e-3) and ``cell_flips`` (default True: random flips in
  stage III, where the paper uses no augmentation) were set by ``benchmarks/iac_stage3.py``
  (``results/iac_stage3.json``: 3 search seeds, 4 learning rates x 8-48 epochs of 25 steps, with and
  without flips): without flips no learning rate and length gained more than +0.004 test IoU over the
  base, and the val-best epoch was often the first; with flips at 3e-3 and 32 epochs the implant
  gained +0.010 (at least +0.003 on every seed) and was chosen over the base on every seed.
  ``cell_epochs`` sets stage III's length
  apart from stage I's; ``min_steps_per_epoch`` (default 20) is a floor on the optimiser steps (and
  stage II architecture steps) of an epoch on a small set.
- ``selection="perturbation"`` (not the default): the last stage II epoch's cell is chosen by
  DARTS-PT's perturbation-based selection (Wang et al., ICLR 2021;
  :func:`~searchers.differentiable.perturbation_scores`): per edge the op whose removal raises the
  supernet's ``val_search`` loss most, per node the two edges whose removal does. Tried because
  the alpha rule picked cells of 7-8 pooling / skip edges out of 8 on 3 of 5 search-quality seeds
  (random cells: 3-5) and the searched implants scored 0.007 IoU below random cells. Not the
  default: with zero aligns every score was below 2e-4 (no signal, see ``search_align``), and with
  live aligns it measured -0.002 [-0.004, -0.001] against random cells, no better than alpha's
  -0.001 [-0.003, +0.002] (``benchmarks/results/search_quality.json``, rows ``iac-live-pt`` and
  ``iac-live``): the implant space is flat at that scale (random cells 0.850-0.858).
- ``search_align="random"`` (not the default): stage II's aligns start at PyTorch's default
  (random) init instead of zero, so the continuous cells change the supernet's output from the
  first step. With zero aligns (the residual implant's start) the search has almost no signal at
  this scale: after stage II's 250 steps of issue 29's CPU search the aligns' mean weights were
  2e-5 to 2e-3 and taking out any op or edge moved the val loss by at most 2e-4 (of 0.27), so
  alpha, and any selection, sees noise. Live aligns moved the search from -0.007 to -0.001 IoU
  against random cells (5 seeds). Stage III always starts from zero aligns (at the base). On
  synth-defects, where any implant lifts the base by about 0.06 IoU, live aligns with the alpha
  rule measured -0.003 [-0.010, +0.005] against random cells (row ``iac-defects``): there too the
  cell the search picks does not matter more than a random one, and fine-tuning the base beats both.
- ``random_cell=True`` is the random counterpart: no stage II, a uniformly random cell of the same
  8-op space goes through the same stage III.

Epoch numbers in ``record_epochs`` / ``select_epoch`` count stage II epochs, warm-up included.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasseg import zoo
from nasseg.searchers.base import EvalResult, SearchError
from nasseg.searchers.differentiable import (
    BiLevelConfig,
    BoundMixedCell,
    DifferentiableStrategy,
    LoaderSpec,
    derive_capped,
    full_dag_cell,
    make_dataset,
    masks_applied,
    perturbation_cell,
    plot_alpha_history,
    plot_genotype_picture,
    random_cell,
    split_samples,
)
from nasseg.searchers.evaluators import METRIC_KEYS, measure, search_task, subset
from nasseg.searchers.run_dir import RunDirectory
from nasseg.zoo.data.folder import SegmentationFolder, open_folder
from nasseg.zoo.errors import NassegError
from nasseg.zoo.families.iac_unet import IACImplant
from nasseg.zoo.genotype import Cell as CellGenotype
from nasseg.zoo.genotype import Genotype
from nasseg.zoo.ops import DARTS_OPS
from nasseg.zoo.supernet import ArchitectureWeights
from nasseg.zoo.training.trainer import TrainConfig, Trainer, evaluate
from nasseg.zoo.weights import load_weights, save_weights

STEPS = 4
NO_AUGMENT = {"flip": False, "rotate": False, "intensity": 0.0}


@dataclass
class IacConfig:
    """Hyper-parameters of an IAC search (defaults: the paper's, section IV-B, except the batch size:
    the paper's 128 is a GPU figure)."""

    base: str = "iac-base-unet-small"
    from_stage: int = 1
    base_weights: str | None = None
    base_epochs: int = 200
    warmup_epochs: int = 15
    search_epochs: int = 200
    cell_epochs: int = 200
    batch_size: int = 16
    image_size: tuple[int, int] = (128, 128)
    cell_channels: int = 16
    partial_channels: int = 4
    levels: list[int] | None = None
    weight_lr: float = 0.01
    weight_momentum: float = 0.0
    weight_decay: float = 0.0
    arch_lr: float = 0.001
    cosine_power: float = 10.0
    stage_lr: float = 0.001
    record_epochs: tuple[int, ...] = (25, 50, 100, 150, 200)
    select_epoch: int | None = None
    max_steps_per_epoch: int | None = None
    max_images: int | None = None
    max_val_images: int | None = None
    max_skip: int | None = None
    augment: dict[str, Any] = field(default_factory=dict)
    implant: str = "residual"
    keep_base: bool = True
    cell_lr: float | None = 3e-3
    cell_flips: bool = True
    min_steps_per_epoch: int | None = 20
    random_cell: bool = False
    selection: str = "alpha"
    perturbation_batches: int = 8
    search_align: str = "zero"

    def __post_init__(self) -> None:
        self.image_size = tuple(self.image_size)
        self.record_epochs = tuple(self.record_epochs)
        if self.implant not in ("residual", "replace"):
            raise SearchError(f"iac: --implant must be residual or replace, got {self.implant!r}")
        if self.from_stage not in (1, 2):
            raise SearchError(f"iac: --from-stage must be 1 or 2, got {self.from_stage}")
        if self.cell_channels % self.partial_channels:
            raise SearchError(
                f"iac: cell channels {self.cell_channels} are not divisible by K = {self.partial_channels}"
            )
        if self.search_align not in ("zero", "random"):
            raise SearchError(f"iac: --search-align must be zero or random, got {self.search_align!r}")
        if self.selection not in ("alpha", "perturbation"):
            raise SearchError(f"iac: --selection must be alpha or perturbation, got {self.selection!r}")
        if self.selection == "perturbation" and self.select_epoch not in (None, self.stage2_epochs):
            raise SearchError("iac: --selection perturbation scores the last stage II epoch's supernet; "
                              "drop --select-epoch")  # fmt: skip
        if self.select_epoch is not None and self.random_cell:
            raise SearchError("iac: --select-epoch needs a searched cell (not --random)")
        if self.select_epoch is not None and not 1 <= self.select_epoch <= self.stage2_epochs:
            raise SearchError(f"iac: --select-epoch {self.select_epoch} is outside stage II's 1..{self.stage2_epochs}")

    @property
    def stage2_epochs(self) -> int:
        return 0 if self.random_cell else self.warmup_epochs + self.search_epochs

    @property
    def total_steps(self) -> int:
        """Strategy steps of the whole search: stage I, every stage II epoch, stage III."""
        return self.stage2_epochs + 2


def cosine_power_lr(lr_max: float, epoch: int, epochs: int, power: float = 10.0, lr_min: float = 0.0) -> float:
    """Cosine power annealing (sharpDARTS, eq. 1): ``power = 1`` is plain cosine annealing."""
    cosine = (1.0 + math.cos(math.pi * epoch / max(epochs, 1))) / 2.0
    scale = cosine if power == 1.0 else (power**cosine - 1.0) / (power - 1.0)
    return lr_min + (lr_max - lr_min) * scale


class IacSupernet(nn.Module):
    """The frozen base with a continuous cell in every implanted skip (``implant``), and the shared
    architecture weights (``arch``: alpha (14, 8), beta (14,), initialised to ones)."""

    def __init__(self, base: nn.Module, base_genotype: Genotype, config: IacConfig):
        super().__init__()
        self.config = config
        self.arch = ArchitectureWeights(["cell"], STEPS, len(DARTS_OPS), edge_normalisation=True, init_scale=None,
                                        edge_norm="tan")  # fmt: skip
        levels = list(range(len(base.skip_channels))) if config.levels is None else list(config.levels)
        self.implant = IACImplant(base, full_dag_cell(STEPS), config.cell_channels, levels, base_genotype,
                                  cell_factory=self._make_cell, residual=config.implant == "residual")  # fmt: skip
        self.implant.freeze_base()
        if config.search_align == "random":  # the cells matter from the first step (see the module docstring)
            for cell in self.implant.cells.values():
                cell.align.reset_parameters()
        self.genotype = base_genotype
        self.divisor = getattr(base, "divisor", 1)
        self.masks: tuple[torch.Tensor, torch.Tensor] | None = None  # (op, edge) masks while scoring

    def _make_cell(self, genotype: CellGenotype, C_pp: int, C_p: int, C: int, reduction: bool,
                   reduction_prev: bool) -> BoundMixedCell:  # fmt: skip
        return BoundMixedCell(self.weights, STEPS, C_pp, C_p, C, reduction, reduction_prev, DARTS_OPS,
                              residual=False, affine=False, partial_channels=self.config.partial_channels)  # fmt: skip

    def weights(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(op weights (14, 8), edge weights (14,)) of the shared cell (eqs. 1 and 6-10), times
        ``masks`` while perturbation scoring runs."""
        ops, edges = self.arch.op_weights("cell"), self.arch.edge_weights("cell")
        if self.masks is not None:
            ops, edges = ops * self.masks[0], edges * self.masks[1]
        return ops, edges

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.implant(x)


class IacStrategy(DifferentiableStrategy):
    """Stage I base, stage II PC-DARTS cell search on the frozen base, stage III cell training."""

    name = "iac"

    def __init__(self, data: str | Path, config: IacConfig | None = None, seed: int = 0, device: str = "cpu") -> None:
        self.config = config or IacConfig()
        c = self.config
        super().__init__(data, seed, device, "dice", c.image_size, c.max_skip,
                         BiLevelConfig(max_steps_per_epoch=c.max_steps_per_epoch, clip_grad_norm=None,
                                       min_steps_per_epoch=c.min_steps_per_epoch))  # fmt: skip
        self.stage = 1
        self.run: RunDirectory | None = None
        self.base_metrics: dict[str, float] = {}
        self.derived: dict[int, dict[str, Any]] = {}
        self.finished = False
        self._pending: dict[str, Any] | None = None

    # -- data / names ------------------------------------------------------------------------------

    def _open(self) -> SegmentationFolder:
        if self.folder is None:
            c = self.config
            self.folder = subset(open_folder(self.data, seed=self.seed), c.max_images, c.max_val_images)
        return self.folder

    def _base_template(self) -> Genotype:
        try:
            base = zoo.resolve_genotype(self.config.base)
        except NassegError as exc:
            raise SearchError(f"iac: --base {self.config.base!r}: {exc}") from None
        if base.family != "iac-unet" or base.arch.cell is not None:
            raise SearchError(f"iac: --base {self.config.base!r} must be an iac-unet base U-Net (no cell), "
                              f"got family {base.family!r}; e.g. iac-base-unet-small, iac-base-resnet18")  # fmt: skip
        task = search_task(self.data, self.config.image_size, in_channels=base.task.in_channels)
        return base.replace(task=task, weights=None)

    def _train_config(self, epochs: int, freeze_base: bool, lr: float | None = None) -> TrainConfig:
        c = self.config
        return TrainConfig(epochs=epochs, batch_size=c.batch_size, crop=c.image_size, optimizer="adam",
                           lr=lr or c.stage_lr, weight_decay=0.0, scheduler="none", loss="dice", seed=self.seed,
                           device=self.device_name, freeze_base=freeze_base, max_steps_per_epoch=c.max_steps_per_epoch,
                           min_steps_per_epoch=c.min_steps_per_epoch, augment={**NO_AUGMENT, **c.augment})  # fmt: skip

    def _metrics(self, model: nn.Module) -> dict[str, float]:
        metrics = evaluate(model, self._open(), "val", self.device, loss="dice")
        return {k: float(metrics[k]) for k in METRIC_KEYS if k in metrics}

    # -- stage I -----------------------------------------------------------------------------------

    def stage_one(self, context: Any) -> EvalResult:
        """Train (or load) the base U-Net; write ``RUN/base.json`` and ``RUN/base.safetensors``."""
        start = time.perf_counter()
        c = self.config
        genotype = self._base_template()
        torch.manual_seed(self.seed)
        model = zoo.build_model(genotype)
        if c.from_stage == 1:
            folder = self._open()
            workdir = self.run.stage_dir("stage1")
            trainer = Trainer(model, folder, self._train_config(c.base_epochs, False), workdir)
            trainer.fit(resume=trainer.checkpoint_path.is_file())
            how = f"trained {c.base_epochs} epochs (stage I)"
        elif c.base_weights is not None:
            try:
                load_weights(model, genotype, Path(c.base_weights))
            except NassegError as exc:
                raise SearchError(f"iac: --base-weights {c.base_weights}: {exc}") from None
            how = f"loaded {c.base_weights}"
        else:
            template = zoo.resolve_genotype(c.base)
            if template.weights is None:
                raise SearchError(f"iac: --from-stage 2 needs a trained base: pass --base-weights FILE "
                                  f"(e.g. from `nasseg train {c.base} --data ...`)")  # fmt: skip
            load_weights(model, template)
            how = f"loaded the weights of {c.base}"
        weights = save_weights(model.cpu(), genotype, self.run.artifact("base.safetensors"))
        genotype = genotype.replace(weights=weights, provenance={**genotype.provenance.model_dump(mode="json"),
                                                                  "source": f"IAC stage I base: {how}"})  # fmt: skip
        genotype.to_json(self.run.artifact("base.json"))
        model.to(self.device)
        self.base_metrics = self._metrics(model)
        macs, params = measure(genotype, self.image_size)
        result = EvalResult(key="base", genotype=genotype, metrics=dict(self.base_metrics), macs=macs, params=params,
                            seconds=time.perf_counter() - start, extra={"stage": 1, "how": how})  # fmt: skip
        return context.record(result)

    # -- stage II ----------------------------------------------------------------------------------

    def _setup_search(self) -> None:
        c = self.config
        folder = self._open()
        base_path = self.run.artifact("base.json")
        if not base_path.is_file():
            raise SearchError(f"iac: {base_path} is missing; stage I did not finish in this run directory")
        base = zoo.create_model(base_path, pretrained=True)
        base_genotype = Genotype.from_json(base_path)
        train_search, val_search = split_samples(folder.splits["train"], 0.5, self.seed)
        self.spec = LoaderSpec(c.image_size, c.batch_size, self.seed, {**NO_AUGMENT, **c.augment})
        in_channels = base_genotype.task.in_channels
        self.train_search = make_dataset(train_search, folder, in_channels, self.spec, salt=1)
        self.val_search = make_dataset(val_search, folder, in_channels, self.spec, salt=2)
        torch.manual_seed(self.seed + 1)
        self.supernet = IacSupernet(base, base_genotype, c).to(self.device)
        self.base_genotype = base_genotype
        self.make_optimizers()

    def make_optimizers(self) -> None:
        c = self.config
        self.weight_optimizer = torch.optim.SGD(self.weight_parameters(), lr=c.weight_lr, momentum=c.weight_momentum,
                                                weight_decay=c.weight_decay)  # fmt: skip
        self.arch_optimizer = torch.optim.Adam(self.arch_parameters(), lr=c.arch_lr)

    def lr_at_epoch(self) -> float:
        c = self.config
        lr = cosine_power_lr(c.weight_lr, self.epoch, c.stage2_epochs, c.cosine_power)
        for group in self.weight_optimizer.param_groups:
            group["lr"] = lr
        return lr

    def derive_cell(self) -> CellGenotype:
        """The discrete cell: strongest non-zero op per edge, two edges per node by op x edge weight."""
        ops, edges = (w.detach().cpu() for w in self.supernet.weights())
        return derive_capped(ops, [DARTS_OPS] * len(ops), STEPS, edge_weights=edges, max_skip=self.max_skip)

    def perturbation_cell(self) -> tuple[CellGenotype, dict[str, Any]]:
        """The cell DARTS-PT's perturbation-based selection derives from the supernet as it is now,
        and the scores it used (rise of the ``val_search`` loss without each op / edge)."""
        ops, edges = (w.detach() for w in self.supernet.weights())
        masks = (torch.ones_like(ops), torch.ones_like(edges))
        loss = self.fixed_loss(self.val_search, self.spec, self.config.perturbation_batches)
        with masks_applied(self.supernet, masks):
            return perturbation_cell(loss, *masks, [DARTS_OPS] * len(ops), STEPS, max_skip=self.max_skip)

    def implant_genotype(self, cell: CellGenotype, base_model: str = "base.json") -> Genotype:
        """A plain ``iac-unet`` implant genotype of ``cell`` on this run's base (``base.json`` beside it)."""
        c = self.config
        base = self.base_genotype
        name = f"iac-{base.name.removeprefix('iac-base-')}-{_slug(self.data.name)}-s{self.seed}"
        return Genotype.from_dict({
            "schema": "nasseg.genotype/1", "name": name[:128], "family": "iac-unet", "task": base.task.model_dump(),
            "arch": {"base": {"model": base_model, "arch_hash": base.arch_hash}, "cell": cell.model_dump(),
                     "cell_channels": c.cell_channels, "levels": c.levels, "implant": c.implant},
            "provenance": {"searcher": "iac"},
        })  # fmt: skip

    def derive(self) -> Genotype:
        return self.implant_genotype(self.derive_cell())

    def latency_genotype(self, genotype: Genotype) -> Genotype:
        """An implant genotype with its base at this run's ``base.json`` (not relative to the working folder)."""
        base = genotype.arch.base
        if getattr(base, "model", None) != "base.json":
            return genotype
        arch = {**genotype.arch.model_dump(mode="json"),
                "base": {"model": str(self.run.artifact("base.json")), "arch_hash": base.arch_hash}}  # fmt: skip
        return genotype.replace(arch=arch)

    def arch_snapshot(self) -> dict[str, Any]:
        ops, edges = (w.detach().cpu().tolist() for w in self.supernet.weights())
        return {"ops": {"cell": [list(DARTS_OPS)] * len(ops)}, "weights": {"cell": ops}, "edges": {"cell": edges}}

    def stage_two_epoch(self, context: Any) -> EvalResult:
        start = time.perf_counter()
        c = self.config
        lr = self.lr_at_epoch()
        warmup = self.epoch < c.warmup_epochs
        losses = self.train_epoch(self.train_search, None if warmup else self.val_search, self.spec)
        genotype = self.derive()
        metrics = self.score(self.folder)
        number = self.epoch + 1
        extra = {"stage": 2, "arch_updates": not warmup, "lr": lr, **losses}
        if c.selection == "perturbation" and number == c.stage2_epochs:
            cell, scores = self.perturbation_cell()
            extra.update(selection="perturbation", alpha_cell=genotype.arch.cell.model_dump(mode="json"), **scores)
            genotype = self.implant_genotype(cell)
        self.derived[number] = genotype.arch.cell.model_dump(mode="json")
        result = self.record_epoch(context, genotype, metrics, start, extra)
        if number in c.record_epochs or number == c.stage2_epochs:
            snapshot = self.run.snapshot("genotypes", f"epoch-{number:03d}.json")
            genotype.replace(name=f"{genotype.name}-e{number:03d}").to_json(snapshot)
            plot_alpha_history(self.alpha_history, "cell", DARTS_OPS, self.run.plot("alphas-cell.png"),
                               "IAC cell: op weights per edge over stage II epochs")  # fmt: skip
        self.epoch += 1
        return result

    # -- stage III ---------------------------------------------------------------------------------

    def stage_three(self, context: Any) -> EvalResult:
        """Implant the chosen discrete cell, re-initialise its weights, train it on the frozen base."""
        start = time.perf_counter()
        c = self.config
        self.base_genotype = Genotype.from_json(self.run.artifact("base.json"))
        if c.random_cell:
            chosen = 0
            cell = random_cell(DARTS_OPS, random.Random(self.seed), residual=False, steps=STEPS)
        else:
            chosen = c.select_epoch or max(self.derived)
            cell = CellGenotype.model_validate(self.derived[chosen])
        genotype = self.implant_genotype(cell)
        path = self.run.artifact("implant.json")
        genotype.to_json(path)
        torch.manual_seed(self.seed + 2)  # fresh cell weights (Algorithm 3), not the supernet's
        model = zoo.create_model(path, pretrained=True)  # loads and freezes the base
        config = self._train_config(c.cell_epochs, True, c.cell_lr)
        if c.cell_flips:
            config.augment = {**config.augment, "flip": True}
        trainer = Trainer(model, self._open(), config,
                          self.run.stage_dir("stage3"))  # fmt: skip
        fit = trainer.fit(resume=trainer.checkpoint_path.is_file())
        base_iou = self.base_metrics.get("iou", -1.0)
        kept_base = c.keep_base and c.implant == "residual" and fit.best_metrics.get("iou", -1.0) < base_iou
        if kept_base:  # the base is the better candidate on val: the implant becomes exactly the base
            model.reset_to_base()
        weights = save_weights(model.cpu(), genotype, self.run.artifact("implant.safetensors"))
        genotype = Genotype.from_json(path).replace(weights=weights)
        genotype.to_json(path)
        model.to(self.device)
        metrics = self._metrics(model)
        macs, params = measure(self.implant_genotype(cell, str(self.run.artifact("base.json"))), self.image_size)
        extra = {"stage": 3, "selected_epoch": chosen, "base": dict(self.base_metrics), "kept_base": kept_base,
                 "random_cell": c.random_cell,
                 "gain_iou": metrics.get("iou", 0.0) - self.base_metrics.get("iou", 0.0),
                 "skip_connects": {"cell": sum(op == "skip_connect" for e in cell.nodes for op, _ in e)}}  # fmt: skip
        result = EvalResult(key="implant", genotype=genotype, metrics=metrics, macs=macs, params=params,
                            seconds=time.perf_counter() - start, extra=extra)  # fmt: skip
        plot_genotype_picture(genotype, self.run.plot("genotype.png"))
        return context.record(result)

    # -- the step ----------------------------------------------------------------------------------

    def done(self) -> bool:
        return self.finished

    def step(self, context: Any) -> list[EvalResult]:
        self.run = context.run
        if self.stage == 1:
            result = self.stage_one(context)
            self.stage = 3 if self.config.random_cell else 2
            return [result]
        if self.stage == 2:
            if self.supernet is None:
                self._setup_search()
                if self._pending is not None:  # resumed: the checkpoint's supernet, optimisers, RNG
                    self.load_base_state(self._pending)
                    self._pending = None
            result = self.stage_two_epoch(context)
            if self.epoch >= self.config.stage2_epochs:
                self.stage = 3
            return [result]
        result = self.stage_three(context)
        self.finished = True
        return [result]

    def best(self, history: list[EvalResult]) -> EvalResult | None:
        """The trained implant once stage III is done, else the latest derived genotype (never the base)."""
        finished = [r for r in history if r.ok and r.key != "base"]
        implants = [r for r in finished if r.key == "implant"]
        return (implants or finished or [None])[-1]

    # -- state -------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        state = {"stage": self.stage, "finished": self.finished, "base_metrics": self.base_metrics,
                 "derived": self.derived, "epoch": self.epoch}  # fmt: skip
        if self.supernet is not None:
            state["search"] = self.base_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stage, self.finished = state["stage"], state["finished"]
        self.base_metrics = dict(state["base_metrics"])
        self.derived = {int(k): v for k, v in state["derived"].items()}
        self.epoch = state["epoch"]
        self._pending = state.get("search")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "config": asdict(self.config), "ops": list(DARTS_OPS),
                "fitness": "stage II: supernet val IoU; stage III: trained implant val IoU"}  # fmt: skip


def _slug(text: str) -> str:
    slug = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in text).strip("-.") or "data"
    return slug[:40]
