"""Losses for segmentation nets, with deep supervision.

Binary nets (one output channel, sigmoid): ``bce``, ``dice``, ``bce_dice`` (NAS-ASDet eq. 16,
the default). Multi-class nets (softmax): ``ce`` (default), ``dice``, ``ce_dice``. A net that
returns several outputs (deep-supervision branches, an auxiliary head) is trained on the sum of
the losses of all of them; every output is resized to the target if needed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

BINARY_LOSSES = ("bce_dice", "bce", "dice")
MULTICLASS_LOSSES = ("ce", "ce_dice", "dice")


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice, averaged over classes (sigmoid for one channel, softmax otherwise)."""
    if logits.shape[1] == 1:
        probs = torch.sigmoid(logits)
        onehot = target.unsqueeze(1).to(probs.dtype)
    else:
        probs = logits.softmax(dim=1)
        onehot = F.one_hot(target.long(), logits.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    dims = (0, 2, 3)
    intersection = (probs * onehot).sum(dims)
    dice = (2 * intersection + eps) / (probs.sum(dims) + onehot.sum(dims) + eps)
    return 1 - dice.mean()


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, name: str) -> torch.Tensor:
    """One output's loss; ``target`` holds class indices (N, H, W)."""
    if logits.shape[-2:] != target.shape[-2:]:
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    if logits.shape[1] == 1:
        if name not in BINARY_LOSSES:
            raise ValueError(f"loss {name!r} is not for one-channel (binary) nets; use one of {BINARY_LOSSES}")
        bce = F.binary_cross_entropy_with_logits(logits.squeeze(1), target.to(logits.dtype))
        if name == "bce":
            return bce
        dice = soft_dice_loss(logits, target)
        return dice if name == "dice" else bce + dice
    if name not in MULTICLASS_LOSSES:
        raise ValueError(f"loss {name!r} is not for multi-class nets; use one of {MULTICLASS_LOSSES}")
    ce = F.cross_entropy(logits, target.long())
    if name == "ce":
        return ce
    dice = soft_dice_loss(logits, target)
    return dice if name == "dice" else ce + dice


def flatten_outputs(output: torch.Tensor | Sequence) -> list[torch.Tensor]:
    """The tensors of a net's output: a tensor, or nested tuples/lists (main output first)."""
    if isinstance(output, torch.Tensor):
        return [output]
    return [t for item in output for t in flatten_outputs(item)]


def total_loss(output: torch.Tensor | Sequence, target: torch.Tensor, name: str) -> torch.Tensor:
    """Sum of the loss over every output of the net (deep supervision)."""
    return sum(segmentation_loss(o, target, name) for o in flatten_outputs(output))


def default_loss(num_outputs: int) -> str:
    """``bce_dice`` for binary nets (NAS-ASDet), ``ce`` for multi-class nets."""
    return "bce_dice" if num_outputs == 1 else "ce"


def predict_classes(logits: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Class-index map from logits: sigmoid > threshold for one channel, argmax otherwise."""
    if logits.shape[1] == 1:
        return (torch.sigmoid(logits[:, 0]) > threshold).long()
    return logits.argmax(dim=1)
