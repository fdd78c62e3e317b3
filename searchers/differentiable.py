"""What the differentiable (DARTS-family) searchers share: bi-level first-order alternation, warm-up,
the epoch step, the architecture-weight history and its heat maps, and the skip-connection cap.

A supernet here is a zoo builder fed with a mixed-op cell factory (:class:`BoundMixedCell`): the
builder's own stack/implant code runs, only its cells are :class:`zoo.supernet.MixedCell`s that
read their weights from the search's :class:`zoo.supernet.ArchitectureWeights`.

One :meth:`DifferentiableStrategy.step` is one supernet epoch: a pass over the weight-training
split by the zoo's :class:`~nasseg.zoo.training.trainer.Trainer`, each batch preceded (after the
warm-up) by one architecture step on a batch of the architecture split (:class:`ArchitectureStep`,
the trainer's ``before_step`` hook; first-order DARTS: ``alpha`` descends the architecture-split
loss at the current weights, then ``w`` descends the weight-split loss; the order is DARTS'
``architect.step`` before the weight step, and IAC Algorithm 1 lines 6-9). The genotype derived after the epoch is
recorded with the supernet's validation IoU as fitness (the supernet is scored, not the discrete
net: cheap, and what DARTS-style searches monitor).
"""

from __future__ import annotations

import math
import random
import statistics
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from nasseg.searchers.base import EvalResult, SearchError, Strategy
from nasseg.searchers.evaluators import measure
from nasseg.searchers.latency import ExpectedLatency, fixed_ms
from nasseg.zoo.checkpoint import numpy_rng_state, set_numpy_rng_state, state_from_bytes, tensors_to_bytes
from nasseg.zoo.data.augment import Augment
from nasseg.zoo.data.dataset import SegmentationDataset
from nasseg.zoo.data.folder import Sample, SegmentationFolder
from nasseg.zoo.errors import NassegError
from nasseg.zoo.genotype import Cell as CellGenotype
from nasseg.zoo.genotype import Genotype
from nasseg.zoo.io import save_figure
from nasseg.zoo.modes import evaluating
from nasseg.zoo.supernet import MixedCell, MixedOp, derive_cell, full_dag_edges
from nasseg.zoo.training.batches import passes
from nasseg.zoo.training.losses import total_loss
from nasseg.zoo.training.trainer import TrainConfig, Trainer, evaluate, resolve_device

WeightsProvider = Callable[[], tuple[torch.Tensor, torch.Tensor | None]]


# ---------------------------------------------------------------------------------------------
# Supernet cells
# ---------------------------------------------------------------------------------------------


class BoundMixedCell(MixedCell):
    """A :class:`MixedCell` that fetches its (op weights, edge weights) from ``provider`` on every
    call, so it fits the cell slot of a zoo builder (``cell(s0, s1)``; ``drop_prob`` is ignored).

    The provider is a plain callable, not a submodule: the architecture weights stay in one
    :class:`ArchitectureWeights` shared by every cell of a type (DARTS' sharing).
    """

    def __init__(self, provider: WeightsProvider, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.provider = provider

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:  # type: ignore[override]
        weights, edge_weights = self.provider()
        return super().forward(s0, s1, weights=weights, edge_weights=edge_weights)


def full_dag_cell(steps: int, residual: bool = False) -> CellGenotype:
    """The supernet's DAG as a genotype cell (every earlier state feeds every node; ``none`` ops):
    the placeholder a builder receives where the cell factory ignores the genotype."""
    nodes = [[("none", source) for source in range(node + 2)] for node in range(steps)]
    return CellGenotype(nodes=nodes, concat=list(range(2, steps + 2)), residual=residual)


def random_cell(ops: Sequence[str], rng: random.Random, residual: bool = False, steps: int = 4) -> CellGenotype:
    """A uniformly random DARTS-format cell of ``steps`` nodes: 2 distinct inputs per node, each
    with a non-zero op of ``ops`` (the random counterpart of a derived cell)."""
    choices = [op for op in ops if op != "none"]
    nodes = [[(rng.choice(choices), s) for s in sorted(rng.sample(range(node + 2), 2))] for node in range(steps)]
    return CellGenotype(nodes=nodes, concat=list(range(2, steps + 2)), residual=residual)


def prune_mixed_op(op: MixedOp, keep: Sequence[int]) -> None:
    """Keep only the candidate ops at positions ``keep`` (in their current order) of a mixed op;
    the kept ops keep their trained weights (progressive pruning, NAS-ASDet eqs. 12-13)."""
    keep = sorted(keep)
    op.ops = nn.ModuleList(op.ops[i] for i in keep)
    op.op_names = tuple(op.op_names[i] for i in keep)


# ---------------------------------------------------------------------------------------------
# Derivation with the skip-connection cap
# ---------------------------------------------------------------------------------------------


def derive_capped(
    weights: torch.Tensor | Sequence[Sequence[float]],
    op_names: Sequence[Sequence[str]],
    steps: int,
    edge_weights: torch.Tensor | Sequence[float] | None = None,
    max_skip: int | None = None,
    residual: bool = False,
    edge_rank: Sequence[float] | None = None,
) -> CellGenotype:
    """:func:`zoo.supernet.derive_cell` (strongest non-``none`` op per edge, two strongest edges
    per node, eq. 14) with at most ``max_skip`` ``skip_connect`` edges in the cell (``edge_rank``:
    see :func:`~zoo.supernet.derive_cell`).

    The collapse guard of P-DARTS (Chen et al. 2019, section 3.3): while the derived cell has too
    many skip connections, the weakest chosen one is forbidden on its edge and the cell re-derived
    (that edge then offers its next-best op, or loses to another edge). An edge whose only
    candidate is ``skip_connect`` cannot give it up; the cap then holds as far as the space allows
    (the run reports the count).
    """
    rows = [list(map(float, row)) for row in weights]
    names = [list(n) for n in op_names]
    if max_skip is None:
        return derive_cell(rows, names, steps, edge_weights, k=2, residual=residual, edge_rank=edge_rank)
    while True:
        cell = derive_cell(rows, names, steps, edge_weights, k=2, residual=residual, edge_rank=edge_rank)
        chosen = []  # (strength, flat edge index, op position) of every chosen skip
        start = 0
        scale = [1.0] * len(rows) if edge_weights is None else [float(w) for w in edge_weights]
        for node, edges in enumerate(cell.nodes):
            for op, source in edges:
                if op == "skip_connect":
                    flat = start + source
                    j = names[flat].index(op)
                    chosen.append((rows[flat][j] * scale[flat], flat, j))
            start += node + 2
        if len(chosen) <= max_skip:
            return cell
        movable = [c for c in chosen if any(n not in ("none", "skip_connect") for n in names[c[1]])]
        if not movable:
            return cell
        _, flat, j = min(movable)
        rows[flat][j] = -math.inf
        names[flat] = [n if i != j else "none" for i, n in enumerate(names[flat])]  # forbidden on this edge


def perturbation_scores(loss: Callable[[], float], op_mask: torch.Tensor, edge_mask: torch.Tensor,
                        op_names: Sequence[Sequence[str]]) -> tuple[list[list[float]], list[float]]:  # fmt: skip
    """DARTS-PT's strengths (Wang et al., ICLR 2021, "Rethinking architecture selection in
    differentiable NAS", section 4): how much the trained supernet's validation loss rises when one
    op of an edge is taken out (``op_mask[edge, op] = 0``), and when a whole edge is
    (``edge_mask[edge] = 0``). The supernet multiplies its op and edge weights by the two masks;
    ``loss()`` is its loss on fixed validation batches. ``none`` scores ``-inf``.

    Returns (op scores per edge, edge scores): feed them to :func:`derive_capped` as the weights
    and ``edge_rank``. Departure from the paper: every op and edge is scored once on the same
    supernet, without the few epochs of supernet tuning DARTS-PT spends after each edge decision
    (on a CPU those would cost more than the whole stage II search).
    """
    reference = loss()

    def rise_without(mask: torch.Tensor, index: Any) -> float:
        kept = float(mask[index])
        mask[index] = 0.0
        try:
            return loss() - reference
        finally:
            mask[index] = kept

    ops = [[-math.inf if name == "none" else rise_without(op_mask, (edge, j)) for j, name in enumerate(names)]
           for edge, names in enumerate(op_names)]  # fmt: skip
    edges = [rise_without(edge_mask, edge) for edge in range(len(op_names))]
    return ops, edges


def perturbation_cell(loss: Callable[[], float], op_mask: torch.Tensor, edge_mask: torch.Tensor,
                      op_names: Sequence[Sequence[str]], steps: int, max_skip: int | None = None,
                      residual: bool = False) -> tuple[CellGenotype, dict[str, Any]]:  # fmt: skip
    """The cell perturbation-based selection derives (:func:`perturbation_scores` ranked by
    :func:`derive_capped`), and the scores it used, JSON-ready (``none`` ops as null)."""
    op_scores, edge_scores = perturbation_scores(loss, op_mask, edge_mask, op_names)
    cell = derive_capped(op_scores, op_names, steps, max_skip=max_skip, residual=residual, edge_rank=edge_scores)
    return cell, {"op_scores": [[v if math.isfinite(v) else None for v in row] for row in op_scores],
                  "edge_scores": edge_scores}  # fmt: skip


@contextmanager
def masks_applied(supernet: nn.Module, masks: Any) -> Iterator[None]:
    """``supernet.masks`` (what its weights provider multiplies in) set for the block, unset after;
    the supernet in eval mode meanwhile (what a perturbation score evaluates it in)."""
    supernet.masks = masks
    try:
        with evaluating(supernet):
            yield
    finally:
        supernet.masks = None


def count_skips(cell: CellGenotype) -> int:
    """Number of ``skip_connect`` edges in a cell."""
    return sum(op == "skip_connect" for edges in cell.nodes for op, _ in edges)


# ---------------------------------------------------------------------------------------------
# Data splits and loaders
# ---------------------------------------------------------------------------------------------


def split_samples(samples: Sequence[Sample], first_fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """A seeded shuffle of ``samples`` cut into (first ``first_fraction``, rest); both non-empty."""
    if len(samples) < 2:
        raise SearchError(f"the training split has {len(samples)} image(s); a bi-level search needs 2 or more")
    order = list(samples)
    random.Random(seed).shuffle(order)
    cut = min(max(1, round(first_fraction * len(order))), len(order) - 1)
    return order[:cut], order[cut:]


@dataclass
class LoaderSpec:
    """How batches are drawn: crop size, batch size, augmentation (Augment's keywords), seed."""

    crop: tuple[int, int]
    batch_size: int
    seed: int
    augment: dict[str, Any] = field(default_factory=dict)


def make_dataset(samples: Sequence[Sample], folder: SegmentationFolder, in_channels: int, spec: LoaderSpec,
                 salt: int) -> SegmentationDataset:  # fmt: skip
    """A dataset of ``samples`` with random crops (and the spec's augmentation), seeded per ``salt``."""
    augment = Augment(crop=tuple(spec.crop), **{"flip": False, "rotate": False, "intensity": 0.0, **spec.augment})
    return SegmentationDataset(samples, folder.num_classes, in_channels, augment, seed=spec.seed * 7919 + salt)


def epoch_loader(dataset: SegmentationDataset, spec: LoaderSpec, epoch: int, salt: int) -> DataLoader:
    """Batches of one epoch: order and augmentation drawn from (seed, salt, epoch), so a resumed
    search sees the same batches as an uninterrupted one."""
    dataset.set_epoch(epoch)
    generator = torch.Generator().manual_seed(spec.seed * 100_003 + salt * 1009 + epoch)
    batch = min(spec.batch_size, len(dataset))
    return DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True, generator=generator)


class EpochBatches:
    """One split of a bi-level search as the zoo trainer's batch source
    (:class:`nasseg.zoo.training.trainer.BatchSource`): pass ``number`` of ``epoch`` is
    :func:`epoch_loader` at ``epoch * 1000 + number``."""

    def __init__(self, dataset: SegmentationDataset, spec: LoaderSpec, salt: int) -> None:
        self.dataset, self.spec, self.salt = dataset, spec, salt

    def batches_per_pass(self) -> int:
        return len(self.dataset) // min(self.spec.batch_size, len(self.dataset)) if len(self.dataset) else 0

    def loader(self, epoch: int, number: int) -> DataLoader:
        return epoch_loader(self.dataset, self.spec, epoch * 1000 + number, self.salt)


def cycle_batches(dataset: SegmentationDataset, spec: LoaderSpec, epoch: int, salt: int) -> Iterator[Any]:
    """Batches of ``dataset`` for ``epoch``, pass after pass (reshuffled each pass, deterministically):
    the batches the trainer draws from :class:`EpochBatches` (the architecture split's, here)."""
    source = EpochBatches(dataset, spec, salt)
    return passes(lambda number: source.loader(epoch, number))


# ---------------------------------------------------------------------------------------------
# Heat maps
# ---------------------------------------------------------------------------------------------


def plot_alpha_history(history: Sequence[dict[str, Any]], kind: str, op_names: Sequence[str], path: Path,
                       title: str) -> Path | None:  # fmt: skip
    """Heat map of every edge's op weights over the epochs: one band of ``len(op_names)`` rows per edge
    (edge 0 on top), one column per epoch; pruned ops are blank. One image, so it is cheap to redraw."""
    rows = [h for h in history if kind in h["ops"]]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    edges, n_ops = len(rows[0]["ops"][kind]), len(op_names)
    grid = np.full((edges * n_ops, len(rows)), np.nan)
    for t, row in enumerate(rows):
        for e in range(edges):
            for name, weight in zip(row["ops"][kind][e], row["weights"][kind][e], strict=True):
                grid[e * n_ops + op_names.index(name), t] = weight
    fig = Figure(figsize=(min(3 + 0.15 * len(rows), 14), 0.09 * edges * n_ops + 1.2))
    ax = fig.add_subplot()
    image = ax.imshow(grid, aspect="auto", vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest")
    for e in range(1, edges):
        ax.axhline(e * n_ops - 0.5, color="white", linewidth=0.8)
    edge_weights = rows[-1].get("edges", {}) or {}
    labels = [
        f"edge {e}" + (f" (beta {edge_weights[kind][e]:.2f})" if kind in edge_weights else "") for e in range(edges)
    ]
    ax.set_yticks([e * n_ops + (n_ops - 1) / 2 for e in range(edges)], labels, fontsize=6)
    ticks = sorted({0, len(rows) - 1})
    ax.set_xticks(ticks, [str(rows[t]["epoch"]) for t in ticks], fontsize=6)
    ax.set_xlabel(f"epoch (rows within an edge: {', '.join(op_names)})", fontsize=6)
    fig.colorbar(image, ax=ax, shrink=0.5, label="op weight")
    ax.set_title(title, fontsize=8)
    save_figure(fig, path, dpi=72, bbox_inches="tight")
    return path


def plot_genotype_picture(genotype: Genotype, path: Path) -> Path | None:
    """The genotype picture of :func:`zoo.plot.plot_genotype`, when that module is there."""
    try:
        from nasseg.zoo.plot import plot_genotype
    except ImportError:
        return None
    return plot_genotype(genotype, path)


# ---------------------------------------------------------------------------------------------
# The shared strategy
# ---------------------------------------------------------------------------------------------


@dataclass
class BiLevelConfig:
    """The schedule of one bi-level phase: weight steps per epoch at most and at least (a small
    weight split is passed over again until ``min_steps_per_epoch``: each of them is preceded by an
    architecture step, so the floor is also the number of alpha steps per epoch), gradient clipping."""

    max_steps_per_epoch: int | None = None
    clip_grad_norm: float | None = 5.0
    min_steps_per_epoch: int | None = None

    def train_config(self, spec: LoaderSpec, seed: int, loss: str, device: str) -> TrainConfig:
        """The zoo trainer's settings for one bi-level epoch (the strategy sets learning rates itself;
        no scheduler, no autocast: the supernet trains in float32 on every device)."""
        return TrainConfig(epochs=1, batch_size=spec.batch_size, crop=tuple(spec.crop), scheduler="none",
                           clip_grad_norm=self.clip_grad_norm, loss=loss, amp=False, seed=seed, device=device,
                           max_steps_per_epoch=self.max_steps_per_epoch,
                           min_steps_per_epoch=self.min_steps_per_epoch)  # fmt: skip


class ArchitectureStep:
    """The bi-level search's architecture step, which the zoo trainer runs before each weight step
    (its ``before_step`` hook): ``alpha`` descends the architecture split's loss at the current
    weights (first-order DARTS), plus the latency term ``w max(0, log(E[LAT] / T))`` where a target
    is set. It keeps the epoch's architecture losses and expected latencies for the history line."""

    def __init__(self, strategy: DifferentiableStrategy, batches: Iterator[Any]) -> None:
        self.strategy = strategy
        self.batches = batches
        self.expected = strategy._expected_latency()
        self.losses: list[float] = []
        self.expected_ms: list[float] = []

    def __call__(self, step: int) -> None:
        s = self.strategy
        images, masks = next(self.batches)
        s.arch_optimizer.zero_grad(set_to_none=True)
        loss = s._loss(images, masks)
        if self.expected is not None and (ms := self.expected.take()) is not None:
            self.expected_ms.append(float(ms.detach()))
            loss = loss + s.latency.loss(ms)
        loss.backward()
        s.arch_optimizer.step()
        self.losses.append(loss.item())
        for p in s.arch_parameters():  # the weight step's backward starts them afresh
            p.grad = None

    def summary(self) -> dict[str, float]:
        """Mean architecture loss (and mean expected latency) of the epoch's steps."""
        out = {}
        if self.losses:
            out["arch_loss"] = sum(self.losses) / len(self.losses)
        if self.expected_ms:
            out["expected_latency_ms"] = sum(self.expected_ms) / len(self.expected_ms)
        return out


class DifferentiableStrategy(Strategy):
    """Shared loop of the DARTS-family searchers (one :meth:`step` = one supernet epoch).

    Subclasses build ``self.supernet`` (an ``nn.Module`` whose ``arch`` is an
    :class:`ArchitectureWeights`), say which parameters are the weights (:meth:`weight_parameters`),
    make the optimisers (:meth:`make_optimizers`), and derive the genotype (:meth:`derive`).
    """

    name = "differentiable"

    def __init__(self, data: str | Path, seed: int, device: str, loss: str, image_size: tuple[int, int],
                 max_skip: int | None = None, bilevel: BiLevelConfig | None = None) -> None:  # fmt: skip
        self.data = Path(data)
        self.seed = seed
        self.device_name = device
        self.device = resolve_device(device)
        self.loss = loss
        self.image_size = tuple(image_size)
        self.max_skip = max_skip
        self.bilevel = bilevel or BiLevelConfig()
        self.supernet: nn.Module | None = None
        self.folder: SegmentationFolder | None = None  # the opened data folder (subclasses set it)
        self.weight_optimizer: torch.optim.Optimizer | None = None
        self.arch_optimizer: torch.optim.Optimizer | None = None
        self.epoch = 0
        self.alpha_history: list[dict[str, Any]] = []
        self._expected: tuple[int, ExpectedLatency] | None = None  # (id of the supernet, its hooks)

    # -- subclass hooks --------------------------------------------------------------------------

    def weight_parameters(self) -> list[nn.Parameter]:
        """The network weights ``w`` (everything trainable except the architecture weights)."""
        arch = {id(p) for p in self.supernet.arch.parameters()}
        return [p for p in self.supernet.parameters() if p.requires_grad and id(p) not in arch]

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.supernet.arch.parameters())

    @abstractmethod
    def make_optimizers(self) -> None:
        """Create ``weight_optimizer`` and ``arch_optimizer`` (each paper has its own)."""

    @abstractmethod
    def derive(self) -> Genotype:
        """The discrete genotype the architecture weights give now."""

    @abstractmethod
    def arch_snapshot(self) -> dict[str, Any]:
        """Op names and op weights (and edge weights) of every edge, for the history / heat maps."""

    def lr_at_epoch(self) -> None:
        """Set the learning rate of the coming epoch (default: constant)."""

    # -- one epoch ---------------------------------------------------------------------------------

    def _loss(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return total_loss(self.supernet(images.to(self.device)), masks.to(self.device), self.loss)

    def _expected_latency(self) -> ExpectedLatency | None:
        """The supernet's expected-latency hooks (attached once per supernet) when a latency
        objective is set (:mod:`searchers.latency`)."""
        if self.latency is None:
            return None
        if self._expected is None or self._expected[0] != id(self.supernet):
            if self._expected is not None:
                self._expected[1].detach()
            genotype = self.latency_genotype(self.derive())
            scale = self.latency.table.scale(genotype.family)
            expected = ExpectedLatency(self.latency, fixed_ms(self.latency, genotype), scale).attach(self.supernet)
            self._expected = (id(self.supernet), expected)
        return self._expected[1]

    def train_epoch(self, weight_set: SegmentationDataset, arch_set: SegmentationDataset | None,
                    spec: LoaderSpec) -> dict[str, float]:  # fmt: skip
        """One epoch of weight steps on ``weight_set`` (the zoo :class:`Trainer`'s loop); with
        ``arch_set`` one architecture step before every weight step (first-order bi-level
        alternation, the trainer's ``before_step`` hook), without it weights only (warm-up)."""
        arch_step = None if arch_set is None else ArchitectureStep(self, cycle_batches(arch_set, spec, self.epoch, 2))
        trainer = Trainer(self.supernet, self.folder, self.bilevel.train_config(spec, self.seed, self.loss,
                                                                                 self.device_name),
                          optimizer=lambda *_: self.weight_optimizer, batches=EpochBatches(weight_set, spec, salt=1),
                          before_step=arch_step)  # fmt: skip
        trainer.epoch = self.epoch
        try:
            out = {"loss": trainer.train_epoch()}
        except NassegError as exc:
            raise SearchError(f"{self.name}: supernet {exc}") from exc
        for p in self.arch_parameters():
            p.grad = None
        if arch_step is not None:
            out.update(arch_step.summary())
        return out

    def fixed_loss(self, dataset: SegmentationDataset, spec: LoaderSpec, batches: int) -> Callable[[], float]:
        """The search's objective on the same ``batches`` batches of ``dataset`` at every call (eval
        mode, no gradients): the task loss plus, where a latency target is set, the latency term
        the architecture steps descend (the expected latency of the op weights the forward uses, so
        a masked op's time leaves it too). What :func:`perturbation_scores` compares."""
        held = [batch for _, batch in zip(range(batches), epoch_loader(dataset, spec, 0, salt=3), strict=False)]
        expected = self._expected_latency()

        def objective(images: torch.Tensor, masks: torch.Tensor) -> float:
            value = self._loss(images, masks)
            if expected is not None and (ms := expected.take()) is not None:
                value = value + self.latency.loss(ms)
            return float(value)

        def loss() -> float:
            with torch.no_grad(), evaluating(self.supernet):
                return statistics.fmean(objective(images, masks) for images, masks in held)

        return loss

    def score(self, folder: SegmentationFolder) -> dict[str, float]:
        """Validation metrics of the supernet itself (the fitness of the derived genotype)."""
        metrics = evaluate(self.supernet, folder, "val", self.device, loss=self.loss)
        return {k: float(metrics[k]) for k in ("iou", "dice", "miou", "pixel_accuracy", "loss") if k in metrics}

    def record_epoch(self, context: Any, genotype: Genotype, metrics: dict[str, float], start: float,
                     extra: dict[str, Any]) -> EvalResult:  # fmt: skip
        """Record the derived genotype of this epoch (one history line) and the arch-weight snapshot."""
        snapshot = self.arch_snapshot()
        self.alpha_history.append(
            {"epoch": self.epoch + 1, **snapshot, **{k: extra[k] for k in ("stage",) if k in extra}}
        )
        try:
            macs, params = measure(genotype, self.image_size)
        except Exception:  # a derived genotype that cannot be profiled is still recorded
            macs, params = None, None
        skips = {kind: count_skips(cell) for kind, cell in genotype.cells().items()}
        result = EvalResult(key=f"e{self.epoch + 1:03d}", genotype=genotype, metrics=metrics, macs=macs, params=params,
                            seconds=time.perf_counter() - start,
                            extra={"epoch": self.epoch + 1, "skip_connects": skips, **extra})  # fmt: skip
        return context.record(result)

    # -- state -------------------------------------------------------------------------------------

    def base_state(self) -> dict[str, Any]:
        """Supernet, optimisers, epoch, arch history and RNG states (subclasses add their own)."""
        return {
            "supernet": tensors_to_bytes(self.supernet.state_dict()) if self.supernet is not None else None,
            "weight_optimizer": self.weight_optimizer.state_dict() if self.weight_optimizer else None,
            "arch_optimizer": self.arch_optimizer.state_dict() if self.arch_optimizer else None,
            "epoch": self.epoch,
            "alpha_history": self.alpha_history,
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": numpy_rng_state(),
            "python_rng": random.getstate(),
        }

    def load_base_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`base_state` (the supernet must already have the checkpoint's structure)."""
        if state["supernet"] is not None:
            self.supernet.load_state_dict(state_from_bytes(state["supernet"], "the checkpoint's supernet", self.device))
        self.make_optimizers()
        if state["weight_optimizer"] is not None:
            self.weight_optimizer.load_state_dict(state["weight_optimizer"])
        if state["arch_optimizer"] is not None:
            self.arch_optimizer.load_state_dict(state["arch_optimizer"])
        self.epoch = state["epoch"]
        self.alpha_history = list(state["alpha_history"])
        torch.set_rng_state(state["torch_rng"])
        set_numpy_rng_state(state["numpy_rng"])
        random.setstate(state["python_rng"])

    def best(self, history: Sequence[EvalResult]) -> EvalResult | None:
        """A one-shot search answers with the genotype derived last (not the best-scoring supernet)."""
        finished = [r for r in history if r.ok]
        return finished[-1] if finished else None


def gather_weights(alphas: torch.Tensor, active: Sequence[Sequence[int]]) -> torch.Tensor:
    """Softmax over each edge's active ops: ``alphas`` (edges, all ops) gathered at ``active``."""
    index = torch.tensor([list(a) for a in active], dtype=torch.long, device=alphas.device)
    return torch.softmax(alphas.gather(1, index), dim=-1)


def edge_count(steps: int) -> int:
    """Edges of a full DAG cell (14 for 4 nodes)."""
    return full_dag_edges(steps)
