"""Latency objectives for the searchers (issue 19): none of the five papers searches on latency.

Two forms, one table (:class:`zoo.latency.LatencyTable`, made on the target machine by
``nasseg latency table``), the same options in every searcher (``--latency-table``,
``--latency-target MS``, ``--latency-weight W``, ``--latency-size HxW``):

- **Sample-based searchers** (U-Net GA, RENAS, AutoSegNet): MnasNet's soft constraint (Tan et
  al. 2019, eq. 2) multiplies the score of every candidate by ``(LAT / T) ** -w`` when its
  predicted latency ``LAT`` is over the target ``T``, and by 1 at or under it (MnasNet's
  ``alpha = 0, beta = -w``; MnasNet's soft form uses ``w = 0.07``, the default here). The GA
  multiplies its fitness (beside its FLOPs term), RENAS the fitness its reward and tournament
  read, AutoSegNet the reward of every sampled child.
- **Differentiable searchers** (NAS-ASDet, IAC): the expected latency of the supernet, as
  ProxylessNAS and FBNet write it, ``E[LAT] = fixed + sum_edges p_e sum_ops softmax(alpha)_o
  LAT(op, edge)``, where ``LAT(op, edge)`` is the table's time of that op at that edge's shape in
  the final net (full channels, also under PC-DARTS' partial channels) and ``p_e`` the chance the
  derivation keeps the edge (2 of a node's inputs: ``2 / inputs``; the edge weights are left out of
  it, so the latency gradient reaches the op weights only). The architecture loss gains
  ``w * max(0, log(E[LAT] / T))``: zero under the target, MnasNet's log-scale penalty above it.

Every scored candidate records ``extra["latency"]`` (predicted ms, target, factor) in
``history.jsonl``; ``best.json`` carries it in ``provenance.latency``, where the CLI adds the
latency measured on ONNX Runtime once the search ends.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasseg.searchers.base import SearchError
from nasseg.zoo.genotype import Genotype
from nasseg.zoo.latency import EdgeContext, LatencyTable, LatencyTableError, latency_factor

#: MnasNet's soft-constraint exponent (Tan et al. 2019, section 3).
DEFAULT_WEIGHT = 0.07
DEFAULT_SIZE = (256, 256)
#: a candidate whose predicted time is more than this share estimated gets a warning (once per search)
MOSTLY_ESTIMATED = 0.5


@dataclass
class LatencyObjective:
    """Predicted latency of candidates at ``size`` on the table's runtime, and the penalty over ``target_ms``
    (``None``: record the latency, change no score)."""

    table: LatencyTable
    target_ms: float | None = None
    weight: float = DEFAULT_WEIGHT
    size: tuple[int, int] = DEFAULT_SIZE
    _cache: dict[str, float] = field(default_factory=dict, repr=False)
    _warned: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        self.size = (int(self.size[0]), int(self.size[1]))
        if self.target_ms is not None and not self.target_ms > 0:
            raise SearchError(f"--latency-target must be > 0 ms, got {self.target_ms}")
        if not self.weight >= 0:
            raise SearchError(f"--latency-weight must be >= 0, got {self.weight}")

    @classmethod
    def from_options(cls, table: Path | str | None, target_ms: float | None, weight: float = DEFAULT_WEIGHT,
                     size: Sequence[int] = DEFAULT_SIZE) -> LatencyObjective | None:  # fmt: skip
        """The objective the command-line options ask for (``None`` without a table)."""
        if table is None:
            if target_ms is not None:
                raise SearchError("--latency-target needs --latency-table TABLE.json (make one on the target "
                                  "machine with `nasseg latency table --out TABLE.json`)")  # fmt: skip
            return None
        try:
            loaded = LatencyTable.load(table)
        except LatencyTableError as exc:
            raise SearchError(f"--latency-table: {exc}") from None
        return cls(loaded, target_ms, weight, tuple(size))

    def predict_ms(self, genotype: Genotype) -> float:
        """Predicted latency of ``genotype``'s net on frames of :attr:`size` (cached per architecture)."""
        key = genotype.arch_hash
        if key not in self._cache:
            prediction = self.table.predict(genotype, self.size)
            self._cache[key] = prediction.predicted_ms
            if prediction.estimated_share > MOSTLY_ESTIMATED and not self._warned:
                self._warned = True
                height, width = self.size
                warnings.warn(f"latency table {self.table.source} does not cover this search: "
                              f"{prediction.estimated_share:.0%} of a candidate's predicted time "
                              f"({genotype.family}) is estimated, not looked up; extend it on the target with "
                              f"`nasseg latency table --extend {self.table.source} --config RUN --size "
                              f"{height}x{width} --out TABLE.json` (RUN: this search's run folder, or the file "
                              "`nasseg search ... --print-config` writes) and search with TABLE.json",
                              UserWarning, stacklevel=2)  # fmt: skip
        return self._cache[key]

    def factor(self, ms: float) -> float:
        """The score multiplier of a candidate of ``ms`` (1 without a target)."""
        return 1.0 if self.target_ms is None else latency_factor(ms, self.target_ms, self.weight)

    def record(self, genotype: Genotype) -> dict[str, Any]:
        """What a history line says of a candidate's latency."""
        ms = self.predict_ms(genotype)
        return {"predicted_ms": round(ms, 4), "target_ms": self.target_ms, "weight": self.weight,
                "factor": round(self.factor(ms), 6), "size": list(self.size), "runtime": self.table.runtime,
                "threads": self.table.threads}  # fmt: skip

    def loss(self, expected_ms: torch.Tensor) -> torch.Tensor:
        """The differentiable penalty ``w * max(0, log(E / T))`` (0 without a target)."""
        if self.target_ms is None:
            return expected_ms.new_zeros(())
        return self.weight * torch.relu(torch.log(expected_ms / self.target_ms))

    def describe(self) -> dict[str, Any]:
        return {"table": self.table.source, "runtime": self.table.runtime, "threads": self.table.threads,
                "machine": self.table.data.get("machine"), "target_ms": self.target_ms, "weight": self.weight,
                "size": list(self.size)}  # fmt: skip


def scaled(value: float, extra: dict[str, Any]) -> float:
    """``value`` times the latency factor recorded in ``extra`` (unchanged where none is)."""
    record = extra.get("latency")
    return value if not record else value * float(record.get("factor", 1.0))


class ExpectedLatency:
    """The supernet's expected latency, collected from its mixed ops during a forward.

    Attach it to a supernet; every forward then sums, over the :class:`~zoo.supernet.MixedOp` s
    it runs, ``p_e * sum_o w_o LAT(o, edge)`` with the op weights ``w`` the forward passes (so the
    sum is differentiable in alpha and follows progressive pruning). Edge shapes are scaled from the
    training input to :attr:`LatencyObjective.size`. :meth:`take` returns the sum and resets it.
    """

    def __init__(self, objective: LatencyObjective, fixed_ms: float = 0.0, scale: float = 1.0) -> None:
        self.objective = objective
        self.fixed_ms = fixed_ms
        self.scale = scale  # the table's calibration of the supernet's family
        self.total: torch.Tensor | None = None
        self._input_hw: tuple[int, int] | None = None
        self._vectors: dict[tuple[Any, ...], torch.Tensor] = {}
        self._handles: list[Any] = []

    def attach(self, supernet: nn.Module) -> ExpectedLatency:
        from nasseg.zoo.supernet import MixedOp

        self._handles.append(supernet.register_forward_pre_hook(self._on_input))
        for module in supernet.modules():
            if isinstance(module, MixedOp):
                self._handles.append(module.register_forward_pre_hook(self._on_mixed_op))
        return self

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _on_input(self, module: nn.Module, args: Any) -> None:
        x = args[0]
        self._input_hw = (int(x.shape[-2]), int(x.shape[-1]))
        self.total = None

    def op_vector(self, op_names: Sequence[str], context: EdgeContext, device: torch.device) -> torch.Tensor:
        """``LAT(o, edge)`` of every candidate op of an edge (cached)."""
        key = (tuple(op_names), context, str(device))
        if key not in self._vectors:
            times = [0.0 if name == "none" else self.scale * self.objective.table.op_ms(name, context)
                     for name in op_names]  # fmt: skip
            self._vectors[key] = torch.tensor(times, dtype=torch.float32, device=device)
        return self._vectors[key]

    def _on_mixed_op(self, module: nn.Module, args: Any) -> None:
        if self._input_hw is None:
            return
        x, weights = args[0], args[1]
        target_h, target_w = self.objective.size
        height = max(1, round(x.shape[-2] * target_h / self._input_hw[0]))
        width = max(1, round(x.shape[-1] * target_w / self._input_hw[1]))
        context = EdgeContext(int(x.shape[1]), int(x.shape[1]), module.stride, height, width)
        vector = self.op_vector(module.op_names, context, weights.device)
        term = getattr(module, "keep_probability", 1.0) * (weights * vector).sum()
        self.total = term if self.total is None else self.total + term

    def take(self) -> torch.Tensor | None:
        """The expected latency (ms, with the fixed part) of the last forward, or None; resets it."""
        total, self.total = self.total, None
        return None if total is None else total + self.fixed_ms


def fixed_ms(objective: LatencyObjective, genotype: Genotype) -> float:
    """The predicted time of everything in ``genotype``'s net but its cell edges (stems, cell
    pre-processing, heads, the base net of an implant): the constant part of the expected latency."""
    from nasseg.zoo.latency import trace_genotype

    calls = trace_genotype(genotype, objective.size)
    scale = objective.table.scale(genotype.family)
    fixed = [call for call in calls if ".edges." not in f".{call.path}."]
    return objective.table.overhead_ms + scale * sum(objective.table.unit_ms(call)[0] for call in fixed)


def check_size(size: Sequence[int]) -> tuple[int, int]:
    """``(H, W)`` of ``--latency-size``, both at least 8."""
    if len(size) != 2 or min(size) < 8 or any(not math.isfinite(s) for s in size):
        raise SearchError(f"--latency-size must be two sides of at least 8 px, got {list(size)}")
    return int(size[0]), int(size[1])
