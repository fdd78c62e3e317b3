"""How the RENAS evaluator trains one proposal: a typed plan the strategy makes and the evaluator
reads, carried in ``Proposal.extra`` as plain JSON (it reaches worker processes and the history).

- ``init`` (the initial population) and ``sample`` children: from scratch at the search fidelity;
- a mutated child that inherits: its parent's weights (``parent_weights``, the file the run folder
  keeps for the parent) with the new edges (``new_edges``) fresh, fine-tuned for ``epochs``;
- ``final``: the population retrained from scratch at the final fidelity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from nasseg.searchers.base import Proposal, SearchError

Kind = Literal["init", "child", "final"]


@dataclass(frozen=True)
class TrainingPlan:
    """One proposal's training (see the module docstring)."""

    kind: Kind
    mode: str | None = None  # a child's mutation mode: controller, random or sample
    mutations: tuple[tuple[Any, ...], ...] = ()
    new_edges: tuple[tuple[int, int], ...] = ()  # (block, input) of edges whose op is new
    parent_weights: str | None = None  # inherit from this file; None: train from scratch
    epochs: int | None = None  # overrides the fidelity's epochs (an inheriting child's fine-tuning)
    of: str | None = None  # a final retraining: the individual it retrains

    @property
    def inherits(self) -> bool:
        return self.parent_weights is not None

    @property
    def final(self) -> bool:
        return self.kind == "final"

    def to_extra(self) -> dict[str, Any]:
        """The plan as ``Proposal.extra`` (the keys the history has always had, and the parent's file)."""
        extra: dict[str, Any] = {"kind": self.kind}
        if self.mode is not None:
            extra["mode"] = self.mode
        if self.kind == "child" and self.mode != "sample":
            extra |= {"mutations": [list(m) for m in self.mutations], "new_edges": [list(e) for e in self.new_edges]}
        if self.inherits:
            extra |= {"inherit": True, "parent_weights": self.parent_weights}
        if self.epochs is not None:
            extra["epochs"] = self.epochs
        if self.final:
            extra |= {"final": True, "of": self.of}
        return extra

    @classmethod
    def of_proposal(cls, proposal: Proposal) -> TrainingPlan:
        """The plan ``proposal`` carries (an empty ``extra``: a from-scratch candidate)."""
        extra = proposal.extra
        kind = extra.get("kind", "init")
        if kind not in ("init", "child", "final"):
            raise SearchError(f"renas: proposal {proposal.key} has an unknown training kind {kind!r}")
        if extra.get("inherit") and not extra.get("parent_weights"):
            raise SearchError(f"renas: proposal {proposal.key} inherits but names no parent weights")
        return cls(kind=kind, mode=extra.get("mode"),
                   mutations=tuple(tuple(m) for m in extra.get("mutations", ())),
                   new_edges=tuple(tuple(e) for e in extra.get("new_edges", ())),
                   parent_weights=extra.get("parent_weights") if extra.get("inherit") else None,
                   epochs=extra.get("epochs"), of=extra.get("of"))  # fmt: skip
