"""The batch plan every training loop shares: how many optimiser steps an epoch has, and its
batches pass after pass (the candidate trainer, :class:`nasseg.zoo.training.trainer.Trainer`, and
the supernets' bi-level loop, :mod:`nasseg.searchers.differentiable`).

An epoch is one pass over the training set in whole batches (the last partial batch is dropped:
BatchNorm needs two samples or more), raised to ``min_steps`` by passing over the set again (a
search on a few images never means one step per epoch) and capped at ``max_steps``. Each pass
draws its order and augmentation from its own number, so an epoch's batches are the same in a
resumed run as in an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

Batch = TypeVar("Batch")


def planned_steps(batches_per_pass: int, min_steps: int | None = None, max_steps: int | None = None) -> int:
    """Optimiser steps of one epoch whose pass holds ``batches_per_pass`` whole batches (0: none fit)."""
    if batches_per_pass <= 0:
        return 0
    steps = max(batches_per_pass, min_steps or 0)
    return min(steps, max_steps or steps)


def passes(loader: Callable[[int], Iterable[Batch]]) -> Iterator[Batch]:
    """The batches of pass 0, then of pass 1, ... (``loader(n)``: pass ``n``'s), until a pass has
    none; the caller stops after its :func:`planned_steps`."""
    number = 0
    while True:
        empty = True
        for batch in loader(number):
            empty = False
            yield batch
        if empty:
            return
        number += 1
