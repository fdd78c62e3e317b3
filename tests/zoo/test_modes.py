"""``zoo.modes.evaluating``: eval for the block, the caller's mode back after, also on an error."""

from __future__ import annotations

import pytest
from torch import nn

from nasseg.zoo.modes import evaluating


def test_evaluating_restores_the_callers_mode_even_when_the_block_raises() -> None:
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1))
    model.train()
    with pytest.raises(RuntimeError), evaluating(model):
        assert not model.training and not model[1].training
        raise RuntimeError("scoring failed")
    assert model.training and model[1].training
    model.eval()
    with evaluating(model):
        assert not model.training
    assert not model.training  # an eval-mode model stays in eval mode
