"""Segmentation metrics from one streaming confusion matrix (NAS-ASDet and IAC report IoU, Dice/F1,
pixel accuracy, precision and recall; per class and their mean over classes)."""

from __future__ import annotations

import torch


class ConfusionMatrix:
    """``matrix[t, p]`` counts pixels of true class t predicted as p, accumulated over batches."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of class-index maps (any matching shapes; values in 0..num_classes-1)."""
        index = (
            target.reshape(-1).to(torch.int64).cpu() * self.num_classes + prediction.reshape(-1).to(torch.int64).cpu()
        )
        self.matrix += torch.bincount(index, minlength=self.num_classes**2).reshape(self.num_classes, self.num_classes)

    def reset(self) -> None:
        """Forget everything counted so far."""
        self.matrix.zero_()

    def compute(self, class_names: list[str] | None = None) -> dict[str, float | dict[str, float]]:
        """Metrics: per class (``per_class``), mean over classes (``m*``), pixel accuracy, and for
        two classes the foreground (class 1) figures as ``iou``/``dice``/... (how defect papers report)."""
        m = self.matrix.double()
        tp = m.diag()
        fp, fn = m.sum(0) - tp, m.sum(1) - tp
        iou = _ratio(tp, tp + fp + fn)
        dice = _ratio(2 * tp, 2 * tp + fp + fn)
        precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        names = class_names or [str(i) for i in range(self.num_classes)]
        per_class = {
            name: {"iou": iou[i].item(), "dice": dice[i].item(), "precision": precision[i].item(),
                   "recall": recall[i].item(), "pixels": int(m[i].sum().item())}
            for i, name in enumerate(names)
        }  # fmt: skip
        total = m.sum().item()
        result: dict[str, float | dict[str, float]] = {
            "pixel_accuracy": tp.sum().item() / total if total else 0.0,
            "miou": iou.mean().item(),
            "mdice": dice.mean().item(),
            "mprecision": precision.mean().item(),
            "mrecall": recall.mean().item(),
            "per_class": per_class,
        }
        foreground = 1 if self.num_classes == 2 else None
        if foreground is not None:
            result.update(iou=iou[1].item(), dice=dice[1].item(), f1=dice[1].item(),
                          precision=precision[1].item(), recall=recall[1].item())  # fmt: skip
        else:
            result.update(iou=result["miou"], dice=result["mdice"], f1=result["mdice"],
                          precision=result["mprecision"], recall=result["mrecall"])  # fmt: skip
        return result


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """Element-wise ratio; a class absent from both truth and prediction scores 1 (nothing to get wrong)."""
    return torch.where(denominator > 0, numerator / denominator.clamp(min=1), torch.ones_like(numerator))
