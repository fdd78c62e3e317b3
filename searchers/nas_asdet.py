"""NAS-ASDet (seed 003): progressive differentiable search of normal/reduction cells with deep supervision.

The supernet is the ``cellnet`` family's :class:`~zoo.families.cellnet.CellFusionNet` (stride-2
stem, 4 normal + 4 reduction cells alternating, eq. 4; the adaptive multi-scale fusion head with
one deep-supervision branch per level, eqs. 5-10) built with a mixed-op cell factory: every cell is
a :class:`~searchers.differentiable.BoundMixedCell` over the 11 ops of Table 1 (``NAS_ASDET_OPS``),
2 inputs, 4 intermediate nodes, all nodes concatenated plus the residual of eq. 3.

Search (section 3.3, 4.1.5):

- the training split is divided 6:4 into an architecture set and a weight set; ``w`` is trained
  on the weight set and ``alpha`` on the architecture set (4.1.5's naming; the sentence after
  eq. 11 swaps the two names, we follow the implementation details). First-order alternation.
- 4 stages; after stage k the top ``keep[k]`` ops of every edge by ``alpha`` survive
  (``[7, 4, 2, 1]``; eqs. 12-13). The surviving ops keep their trained weights and their alphas
  (one supernet shrinks, Fig. 3), the optimisers restart with each stage. The last entry (1) is
  the discretisation itself: the strongest non-``none`` op per edge, and per node the two
  strongest incoming edges by their op's softmax weight (eq. 14, DARTS' rule; ``zero`` is never a
  final op, as in DARTS/P-DARTS).
- the first ``warmup_epochs`` of every stage update ``w`` only (paper: 20 of 70).
- Adam for ``alpha`` (lr 0.002, weight decay 0.001, "momentum 0.9" read as Adam's beta1), SGD for
  ``w`` (lr 0.005, momentum 0.9, weight decay 1e-4); constant learning rates (none is given).
- loss: BCE + Dice on the main output and on each of the 5 levels (eq. 16, ``bce_dice`` summed
  over every output by :func:`zoo.training.losses.total_loss`).

Fitness of each epoch's derived genotype: the supernet's IoU on the validation split.

Departure, the default since issue 29: ``selection="perturbation"``. The last epoch's cells are
derived by DARTS-PT's perturbation-based selection (Wang et al., ICLR 2021;
:func:`~searchers.differentiable.perturbation_scores`) over the ops that survived the pruning:
per edge the op whose removal raises the architecture split's objective most (the loss, plus the
latency term where a target is set), per node the two edges whose removal does, instead of eq.
14's largest alpha (``selection="alpha"``, the paper's rule). Alpha still drives eqs. 12-13's
pruning; only the final discretisation changes. Why: on the same 5 supernets of
``benchmarks/search_quality.py`` (CPU scale) the perturbation-derived cells retrained to +0.017
[+0.002, +0.032] IoU over random cells (every seed above), the alpha-derived ones to +0.005
[-0.005, +0.015]; the alpha rule took ``spatial_att`` on 62-88 % of the edges.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasseg.searchers.base import EvalResult, SearchError
from nasseg.searchers.differentiable import (
    BiLevelConfig,
    BoundMixedCell,
    DifferentiableStrategy,
    LoaderSpec,
    derive_capped,
    edge_count,
    full_dag_cell,
    gather_weights,
    make_dataset,
    masks_applied,
    perturbation_cell,
    plot_alpha_history,
    plot_genotype_picture,
    prune_mixed_op,
    split_samples,
)
from nasseg.searchers.evaluators import search_task, subset
from nasseg.zoo.data.folder import open_folder
from nasseg.zoo.families.cellnet import CellFusionNet
from nasseg.zoo.genotype import Cell as CellGenotype
from nasseg.zoo.genotype import Genotype
from nasseg.zoo.ops import NAS_ASDET_OPS
from nasseg.zoo.supernet import ArchitectureWeights

KINDS = ("normal", "reduce")
STEPS = 4


@dataclass
class NasAsdetConfig:
    """Hyper-parameters of a NAS-ASDet search (defaults: the paper's, section 4.1.5)."""

    keep: tuple[int, ...] = (7, 4, 2, 1)
    epochs_per_stage: int = 70
    warmup_epochs: int = 20
    batch_size: int = 4
    image_size: tuple[int, int] = (128, 128)
    init_channels: int = 16
    stem_multiplier: int = 3
    arch_fraction: float = 0.6
    arch_lr: float = 0.002
    arch_weight_decay: float = 0.001
    arch_betas: tuple[float, float] = (0.9, 0.999)
    weight_lr: float = 0.005
    weight_momentum: float = 0.9
    weight_decay: float = 1e-4
    max_steps_per_epoch: int | None = None
    min_steps_per_epoch: int | None = 20
    max_images: int | None = None
    max_val_images: int | None = None
    max_skip: int | None = None
    derive_weights: str = "all"
    augment: dict[str, Any] = field(default_factory=lambda: {"flip": True})
    selection: str = "perturbation"
    perturbation_batches: int = 8

    def __post_init__(self) -> None:
        self.keep = tuple(self.keep)
        self.image_size = tuple(self.image_size)
        ops = len(NAS_ASDET_OPS)
        if (
            not self.keep
            or self.keep[-1] != 1
            or any(b >= a for a, b in zip((ops, *self.keep), self.keep, strict=False))
        ):
            raise SearchError(
                f"nas-asdet: keep must shrink strictly from {ops} ops and end at 1, got {list(self.keep)}"
            )
        if not 0 <= self.warmup_epochs < self.epochs_per_stage:
            raise SearchError(f"nas-asdet: warm-up epochs ({self.warmup_epochs}) must be fewer than the epochs per "
                              f"stage ({self.epochs_per_stage})")  # fmt: skip
        if self.selection not in ("alpha", "perturbation"):
            raise SearchError(f"nas-asdet: selection must be 'alpha' or 'perturbation', got {self.selection!r}")
        if self.derive_weights not in ("all", "active"):
            raise SearchError(f"nas-asdet: derive weights must be 'all' or 'active', got {self.derive_weights!r}")
        if self.image_size[0] % 32 or self.image_size[1] % 32:
            raise SearchError(f"nas-asdet: image size {self.image_size} must be a multiple of 32 (stem + 4 reductions)")

    @property
    def stages(self) -> int:
        return len(self.keep)

    @property
    def total_epochs(self) -> int:
        return self.stages * self.epochs_per_stage


def supernet_genotype(task: dict[str, Any], config: NasAsdetConfig, normal: CellGenotype | None = None,
                      reduce: CellGenotype | None = None, name: str = "nas-asdet-supernet") -> Genotype:  # fmt: skip
    """The ``cellnet`` genotype of the paper's network level with the given cells (default: the full
    DAG placeholder the supernet's factory replaces)."""
    placeholder = full_dag_cell(STEPS, residual=True)
    arch = {
        "normal": (normal or placeholder).model_dump(), "reduce": (reduce or placeholder).model_dump(),
        "init_channels": config.init_channels, "layers": 8, "stem": "stride2",
        "stem_multiplier": config.stem_multiplier, "reduction_layers": [1, 3, 5, 7],
        "head": {"type": "fusion", "levels": 5, "deep_supervision": True},
    }  # fmt: skip
    return Genotype.from_dict({"schema": "nasseg.genotype/1", "name": name, "family": "cellnet", "task": task,
                               "arch": arch, "provenance": {"searcher": "nas-asdet"}})  # fmt: skip


class NasAsdetSupernet(nn.Module):
    """The cellnet fusion net with mixed-op cells; ``active[kind][edge]`` lists the op indices (into
    ``NAS_ASDET_OPS``) still searched on each edge; ``arch.alphas[kind]`` has one column per op."""

    def __init__(self, genotype: Genotype, active: dict[str, list[list[int]]]):
        super().__init__()
        self.active = active
        self.arch = ArchitectureWeights(KINDS, STEPS, len(NAS_ASDET_OPS))
        self.offsets = [sum(n + 2 for n in range(node)) for node in range(STEPS)]
        self.net = CellFusionNet(genotype, cell_factory=self._make_cell)
        self.genotype = genotype
        self.divisor = genotype.arch.output_strides()[-1]
        self.masks: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None  # (op, edge) masks while scoring

    def _make_cell(self, genotype: CellGenotype, C_pp: int, C_p: int, C: int, reduction: bool,
                   reduction_prev: bool) -> BoundMixedCell:  # fmt: skip
        kind = "reduce" if reduction else "normal"

        def ops(node: int, source: int) -> list[str]:
            return [NAS_ASDET_OPS[i] for i in self.active[kind][self.offsets[node] + source]]

        return BoundMixedCell(lambda: (self.masked_weights(kind), None), STEPS, C_pp, C_p, C, reduction,
                              reduction_prev, ops, residual=True, affine=False)  # fmt: skip

    def op_weights(self, kind: str) -> torch.Tensor:
        """(edges, active ops) softmax weights of one cell type (eq. 1 over the surviving ops)."""
        return gather_weights(self.arch.alphas[kind], self.active[kind])

    def masked_weights(self, kind: str) -> torch.Tensor:
        """:meth:`op_weights` times the scoring masks, if set (an edge's mask zeroes all its ops)."""
        weights = self.op_weights(kind)
        if self.masks is None:
            return weights
        op_mask, edge_mask = self.masks[kind]
        return weights * op_mask * edge_mask[:, None]

    def cells(self) -> list[BoundMixedCell]:
        return list(self.net.stack.cells)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        return self.net(x)

    def prune(self, keep: int) -> None:
        """Keep the ``keep`` ops with the largest alpha on every edge (eqs. 12-13)."""
        for kind in KINDS:
            alphas = self.arch.alphas[kind].detach()
            new_active = []
            for edge, ops in enumerate(self.active[kind]):
                ranked = sorted(ops, key=lambda i: (-float(alphas[edge, i]), i))[:keep]
                new_active.append(sorted(ranked))
            for cell in self.cells():
                if ("reduce" if cell.reduction else "normal") != kind:
                    continue
                for node, edges in enumerate(cell.edges):
                    for index, mixed in enumerate(edges):
                        flat = self.offsets[node] + index
                        old = self.active[kind][flat]
                        prune_mixed_op(mixed, [old.index(i) for i in new_active[flat]])
            self.active[kind] = new_active


class NasAsdetStrategy(DifferentiableStrategy):
    """Progressive DARTS with deep supervision (seed 003); ``step`` = one supernet epoch."""

    name = "nas-asdet"

    def __init__(self, data: str | Path, config: NasAsdetConfig | None = None, seed: int = 0,
                 device: str = "cpu") -> None:  # fmt: skip
        self.config = config or NasAsdetConfig()
        c = self.config
        super().__init__(data, seed, device, "bce_dice", c.image_size, c.max_skip,
                         BiLevelConfig(max_steps_per_epoch=c.max_steps_per_epoch,
                                       min_steps_per_epoch=c.min_steps_per_epoch))  # fmt: skip
        self.stage = 0

    # -- setup -------------------------------------------------------------------------------------

    def _setup(self, active: dict[str, list[list[int]]] | None = None) -> None:
        c = self.config
        folder = subset(open_folder(self.data, seed=self.seed), c.max_images, c.max_val_images)
        if folder.model_classes != 1:
            raise SearchError(f"nas-asdet: {self.data} has {folder.num_classes} classes; the BCE + Dice search "
                              "(eq. 16) is for binary defect masks")  # fmt: skip
        self.folder = folder
        arch_samples, weight_samples = split_samples(folder.splits["train"], c.arch_fraction, self.seed)
        self.spec = LoaderSpec(c.image_size, c.batch_size, self.seed, dict(c.augment))
        self.task = search_task(self.data, c.image_size)
        self.genotype = supernet_genotype(self.task, c)
        in_channels = self.genotype.task.in_channels
        self.arch_set = make_dataset(arch_samples, folder, in_channels, self.spec, salt=2)
        self.weight_set = make_dataset(weight_samples, folder, in_channels, self.spec, salt=1)
        all_ops = list(range(len(NAS_ASDET_OPS)))
        active = active or {kind: [list(all_ops) for _ in range(edge_count(STEPS))] for kind in KINDS}
        torch.manual_seed(self.seed)
        self.supernet = NasAsdetSupernet(self.genotype, active).to(self.device)
        self.make_optimizers()

    def make_optimizers(self) -> None:
        """Fresh optimisers (at the start of every stage: the pruned supernet has other parameters)."""
        c = self.config
        self.weight_optimizer = torch.optim.SGD(self.weight_parameters(), lr=c.weight_lr, momentum=c.weight_momentum,
                                                weight_decay=c.weight_decay)  # fmt: skip
        self.arch_optimizer = torch.optim.Adam(self.arch_parameters(), lr=c.arch_lr, betas=c.arch_betas,
                                               weight_decay=c.arch_weight_decay)  # fmt: skip

    # -- derivation --------------------------------------------------------------------------------

    def derivation_weights(self, kind: str) -> torch.Tensor:
        """(edges, active ops) weights the derivation ranks by.

        ``derive_weights="all"`` (default): the softmax of each edge's alphas over **all** 11 ops
        (eq. 14's argmax over O), read at the surviving ops. After the last pruning an edge keeps
        one op, whose softmax over the survivors is 1.0 on every edge: ranking edges by it is a tie
        broken by edge order, and an edge left with ``none`` alone says nothing. Over all ops the
        surviving op's weight still says how strongly the edge chose it. ``"active"`` ranks by the
        softmax over the survivors (what the supernet's forward uses).
        """
        if self.config.derive_weights == "active":
            return self.supernet.op_weights(kind).detach().cpu()
        full = torch.softmax(self.supernet.arch.alphas[kind].detach().cpu(), dim=-1)
        index = torch.tensor([list(ops) for ops in self.supernet.active[kind]], dtype=torch.long)
        return full.gather(1, index)

    def derive_cells(self) -> dict[str, CellGenotype]:
        """Every cell type's discrete cell: eq. 14 (+ the optional skip cap)."""
        cells = {}
        for kind in KINDS:
            weights = self.derivation_weights(kind)
            names = [[NAS_ASDET_OPS[i] for i in ops] for ops in self.supernet.active[kind]]
            cells[kind] = derive_capped(weights, names, STEPS, max_skip=self.max_skip, residual=True)
        return cells

    def perturbation_cells(self) -> tuple[dict[str, CellGenotype], dict[str, Any]]:
        """Both cell types derived by perturbation-based selection, and the scores used."""
        loss = self.fixed_loss(self.arch_set, self.spec, self.config.perturbation_batches)
        masks = {kind: (torch.ones_like(self.supernet.op_weights(kind).detach()),
                        torch.ones(len(self.supernet.active[kind]), device=self.device)) for kind in KINDS}  # fmt: skip
        cells, scores = {}, {}
        with masks_applied(self.supernet, masks):
            for kind in KINDS:
                names = [[NAS_ASDET_OPS[i] for i in ops] for ops in self.supernet.active[kind]]
                cells[kind], scores[kind] = perturbation_cell(loss, *masks[kind], names, STEPS, max_skip=self.max_skip,
                                                              residual=True)  # fmt: skip
        return cells, scores

    def derive(self) -> Genotype:
        cells = self.derive_cells()
        name = f"nas-asdet-{_slug(self.data.name)}-s{self.seed}"
        return supernet_genotype(self.task, self.config, cells["normal"], cells["reduce"], name=name)

    def arch_snapshot(self) -> dict[str, Any]:
        return {
            "ops": {k: [[NAS_ASDET_OPS[i] for i in ops] for ops in self.supernet.active[k]] for k in KINDS},
            "weights": {k: self.supernet.op_weights(k).detach().cpu().tolist() for k in KINDS},
        }

    # -- the step ----------------------------------------------------------------------------------

    def done(self) -> bool:
        return self.epoch >= self.config.total_epochs

    def step(self, context: Any) -> list[EvalResult]:
        start = time.perf_counter()
        if self.supernet is None:
            self._setup()
        c = self.config
        stage, in_stage = divmod(self.epoch, c.epochs_per_stage)
        if stage > self.stage:  # a new stage: prune to the previous stage's top-k, restart the optimisers
            self.supernet.prune(c.keep[self.stage])
            self.stage = stage
            self.make_optimizers()
        warmup = in_stage < c.warmup_epochs
        losses = self.train_epoch(self.weight_set, None if warmup else self.arch_set, self.spec)
        genotype = self.derive()
        metrics = self.score(self.folder)
        extra = {"stage": self.stage + 1, "ops_per_edge": len(self.supernet.active["normal"][0]),
                 "arch_updates": not warmup, **losses}  # fmt: skip
        if c.selection == "perturbation" and self.epoch + 1 == c.total_epochs:
            cells, scores = self.perturbation_cells()
            extra.update(selection="perturbation", perturbation=scores,
                         alpha_cells={k: v.model_dump(mode="json") for k, v in genotype.cells().items()})  # fmt: skip
            genotype = supernet_genotype(self.task, c, cells["normal"], cells["reduce"], name=genotype.name)
        if self.max_skip is not None:
            extra["max_skip"] = self.max_skip
        result = self.record_epoch(context, genotype, metrics, start, extra)
        self.epoch += 1
        if self.epoch % c.epochs_per_stage == 0:  # heat maps at the end of each stage (matplotlib is slow)
            self._plots(context.run.plots_dir, genotype)
        return [result]

    def _plots(self, folder: Path, genotype: Genotype) -> None:
        for kind in KINDS:
            plot_alpha_history(self.alpha_history, kind, NAS_ASDET_OPS, folder / f"alphas-{kind}.png",
                               f"NAS-ASDet {kind} cell: op weights per edge over epochs")  # fmt: skip
        if self.done():
            plot_genotype_picture(genotype, folder / "genotype.png")

    # -- state -------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        if self.supernet is None:
            return {"started": False}
        active = {k: [list(ops) for ops in v] for k, v in self.supernet.active.items()}
        return {"started": True, "stage": self.stage, "active": active, **self.base_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state.get("started"):
            return
        self._setup(active={k: [list(ops) for ops in v] for k, v in state["active"].items()})
        self.stage = state["stage"]
        self.load_base_state(state)

    def describe(self) -> dict[str, Any]:
        config = asdict(self.config)
        return {"name": self.name, "config": config, "ops": list(NAS_ASDET_OPS), "fitness": "supernet val IoU"}


def _slug(text: str) -> str:
    slug = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in text).strip("-.") or "data"
    return slug[:60]
