"""Streaming confusion-matrix metrics and the losses (with deep supervision)."""

from __future__ import annotations

import pytest
import torch

from nasseg.zoo.training.losses import predict_classes, segmentation_loss, soft_dice_loss, total_loss
from nasseg.zoo.training.metrics import ConfusionMatrix


def test_binary_metrics_by_hand() -> None:
    target = torch.tensor([[0, 0, 1, 1, 1, 0]])
    prediction = torch.tensor([[0, 1, 1, 1, 0, 0]])
    matrix = ConfusionMatrix(2)
    matrix.update(prediction[:, :3], target[:, :3])  # streaming: two batches
    matrix.update(prediction[:, 3:], target[:, 3:])
    m = matrix.compute(["bg", "defect"])
    # defect: tp 2, fp 1, fn 1 -> IoU 2/4, Dice 4/6; background: tp 2, fp 1, fn 1
    assert m["iou"] == pytest.approx(0.5) and m["dice"] == pytest.approx(2 / 3) == m["f1"]
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["pixel_accuracy"] == pytest.approx(4 / 6) and m["miou"] == pytest.approx(0.5)
    assert m["per_class"]["defect"]["pixels"] == 3


def test_multiclass_and_absent_classes() -> None:
    matrix = ConfusionMatrix(3)
    matrix.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]))
    m = matrix.compute()
    assert m["per_class"]["2"]["iou"] == 1.0  # absent in truth and prediction: nothing to get wrong
    assert m["iou"] == m["miou"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)


def test_losses_and_deep_supervision() -> None:
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    target[:, 2:4, 2:4] = 1
    good = (target.float().unsqueeze(1) * 20 - 10).requires_grad_()
    bad = -good.detach()
    assert segmentation_loss(good, target, "bce_dice") < segmentation_loss(bad, target, "bce_dice")
    assert soft_dice_loss(good, target) < 0.05
    branches = [good, torch.zeros(2, 1, 4, 4, requires_grad=True)]  # a half-size branch is resized
    summed = total_loss((good, branches), target, "bce_dice")
    expected = 2 * segmentation_loss(good, target, "bce_dice") + segmentation_loss(branches[1], target, "bce_dice")
    assert summed.item() == pytest.approx(expected.item(), rel=1e-5)
    summed.backward()
    multi = torch.randn(2, 3, 8, 8)
    assert segmentation_loss(multi, target, "ce_dice") > 0
    with pytest.raises(ValueError, match="not for one-channel"):
        segmentation_loss(good, target, "ce")
    assert predict_classes(good).equal(target) and predict_classes(multi).shape == (2, 8, 8)
