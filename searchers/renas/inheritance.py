"""Parameter inheritance (seed 001, section 4.3, "Child Models").

A child differs from its parent only in the mutated layers, so it starts from the parent's
trained parameters: every state-dict entry (parameters and BatchNorm statistics) whose module
path and shape the child shares with its parent is copied, except the edges whose op was mutated
(their modules are new). What is new therefore is (a) the op of every mutated ``o1``/``o2`` edge,
in every cell of the stack, and (b) any module whose shape the mutation changed: a rewired input
can change which block outputs are concatenated, and with it the width of the cell's output, of
the next cells' 1x1 preprocessing and of the head's first layers. A rewired edge whose op is
unchanged keeps its op's weights (the op is an unchanged part; only its input moved).

The child is then fine-tuned for one pass over the training set with the new parameters at 10x
the learning rate of the inherited ones (paper: 0.01 for new, hence 0.001 for inherited; here the
fidelity's ``lr`` is the inherited rate). The parents' weights are the ``weights.pt`` files of
their candidate folders (``RUN/candidates/KEY/weights.pt``), so a resumed search finds them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasseg.searchers.base import SearchError


def edge_prefixes(model: nn.Module, edges: Iterable[Sequence[int]]) -> list[str]:
    """State-dict prefixes of the op modules of block ``node``, edge ``index`` in every cell."""
    prefix = "stack.cells."
    cells = len(model.stack.cells)  # type: ignore[union-attr]
    return [f"{prefix}{c}.edges.{int(node)}.{int(index)}." for c in range(cells) for node, index in edges]


def inherit(model: nn.Module, parent_state: dict[str, torch.Tensor],
            new_edges: Iterable[Sequence[int]] = ()) -> tuple[list[str], list[str]]:  # fmt: skip
    """Copy the parent's entries into ``model`` where path and shape match, except under ``new_edges``.

    Returns the names of the inherited and of the new *parameters* (buffers are copied alike but
    not listed: they have no learning rate).
    """
    fresh = tuple(edge_prefixes(model, new_edges))
    state = model.state_dict()
    copied = set()
    with torch.no_grad():
        for key, value in state.items():
            source = parent_state.get(key)
            if source is None or source.shape != value.shape or key.startswith(fresh):
                continue
            value.copy_(source.to(value.dtype))
            copied.add(key)
    names = [name for name, _ in model.named_parameters()]
    return [n for n in names if n in copied], [n for n in names if n not in copied]


def parameter_groups(
    model: nn.Module, new: Iterable[str], lr: float, new_lr_factor: float = 10.0
) -> list[dict[str, Any]]:
    """Optimiser groups: inherited parameters at ``lr``, new ones at ``new_lr_factor * lr``."""
    new = set(new)
    inherited_params = [p for n, p in model.named_parameters() if n not in new and p.requires_grad]
    new_params = [p for n, p in model.named_parameters() if n in new and p.requires_grad]
    groups = []
    if inherited_params:
        groups.append({"params": inherited_params, "lr": lr, "name": "inherited"})
    if new_params:
        groups.append({"params": new_params, "lr": lr * new_lr_factor, "name": "new"})
    return groups


def load_parent(path: Path) -> dict[str, torch.Tensor]:
    """The parent's trained state dict (``SearchError`` naming the file when it is missing)."""
    if not path.is_file():
        raise SearchError(f"{path}: the parent's weights are missing; a child cannot inherit them")
    return torch.load(path, map_location="cpu", weights_only=True)
