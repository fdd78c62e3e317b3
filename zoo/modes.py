"""A module's train/eval mode for a block: eval while scoring, the caller's mode restored after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode for the block, its mode restored after (also when the block raises);
    a model already in eval mode is left alone (switching a supernet's mode walks every module: on a
    tiny supernet that walk cost more than the forward it wrapped)."""
    was_training = model.training
    if was_training:
        model.eval()
    try:
        yield
    finally:
        if was_training:
            model.train()
