"""BatchNorm statistics recalibrated on training batches.

A net trained for a few dozen steps has running statistics that still mostly hold their
initial values (momentum 0.1 after a handful of updates), so scoring it in eval mode measures the
initialisation, not the architecture. Recalibration (as in single-path one-shot NAS, Guo et al.
2020, and "BN re-calibration" in FairNAS) resets every BatchNorm's running mean and variance and
averages them over ``batches`` forward passes in train mode, with no gradient and no weight change.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor], device: torch.device | str) -> int:
    """Reset the running statistics of every BatchNorm in ``model`` and re-estimate them as the
    cumulative average over ``batches`` (images); returns the number of batches used. Frozen
    modules held in eval mode (an IAC base) keep their statistics."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return 0
    was_training = model.training
    model.train()
    active = [m for m in norms if m.training]
    saved = [(m, m.momentum) for m in active]
    for m in active:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    used = 0
    try:
        for images in batches:
            model(images.to(device))
            used += 1
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        model.train(was_training)
    return used
