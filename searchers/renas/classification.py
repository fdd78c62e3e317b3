"""The classification proxy task of the RENAS search: "does this crop show a defect?".

RENAS searches on a classification task (CIFAR-10, seed 001, section 5.1) and transfers the cell
to segmentation (5.4). On an inspection data set the proxy comes from the same folder: an image
(a training crop, or a whole validation image) is labelled 1 when its mask has any defect pixel
(any class other than background), else 0. Two classes, cross-entropy, a ``cellnet`` classifier
head. Defect-free images are a minority in ``synth-defects`` (a fifth), so the fitness is the
balanced accuracy (mean per-class recall over the classes present), not the plain accuracy, which
a net answering "defect" everywhere would already score 0.8 on; both are reported.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from nasseg.zoo.data.augment import Augment
from nasseg.zoo.data.dataset import SegmentationDataset
from nasseg.zoo.data.folder import SegmentationFolder
from nasseg.zoo.errors import NassegError
from nasseg.zoo.modes import evaluating
from nasseg.zoo.training.trainer import TrainConfig

CLASSIFICATION_METRICS = ("balanced_accuracy", "accuracy", "loss")


def defect_labels(masks: torch.Tensor) -> torch.Tensor:
    """1 where a mask (N, H, W) has any non-background pixel, else 0."""
    return (masks.flatten(1) > 0).any(dim=1).long()


def train_classifier_epoch(model: nn.Module, folder: SegmentationFolder, config: TrainConfig,
                           optimizer: torch.optim.Optimizer, epoch: int) -> float:  # fmt: skip
    """One epoch on random crops with image-level defect labels; the same draws for the same (seed, epoch)."""
    model.train()
    torch.manual_seed(config.seed * 1_000_003 + epoch)
    dataset = SegmentationDataset(folder.splits["train"], folder.num_classes, model.genotype.task.in_channels,
                                  Augment(crop=tuple(config.crop), **config.augment), seed=config.seed)  # fmt: skip
    dataset.set_epoch(epoch)
    generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, drop_last=True, generator=generator)
    steps = min(len(loader), config.max_steps_per_epoch or len(loader))
    losses = []
    for step, (images, masks) in enumerate(loader):
        if step >= steps:
            break
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), defect_labels(masks))
        loss.backward()
        if config.clip_grad_norm:
            nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
        optimizer.step()
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            raise NassegError(f"classification proxy diverged at epoch {epoch + 1}, step {step + 1}")
    return sum(losses) / max(len(losses), 1)


@torch.no_grad()
def evaluate_classifier(model: nn.Module, folder: SegmentationFolder, split: str = "val") -> dict[str, float]:
    """Accuracy, balanced accuracy and cross-entropy of whole images of ``split`` (image-level labels)."""
    dataset = SegmentationDataset(folder.splits[split], folder.num_classes, model.genotype.task.in_channels)
    correct: dict[int, list[bool]] = {0: [], 1: []}
    losses = []
    with evaluating(model):
        for index in range(len(dataset)):
            image, mask = dataset[index]
            label = defect_labels(mask.unsqueeze(0))
            logits = model(image.unsqueeze(0))
            losses.append(float(F.cross_entropy(logits, label)))
            correct[int(label)].append(bool(logits.argmax(dim=1) == label))
    recalls = [sum(v) / len(v) for v in correct.values() if v]
    total = [c for v in correct.values() for c in v]
    return {"balanced_accuracy": sum(recalls) / max(len(recalls), 1), "accuracy": sum(total) / max(len(total), 1),
            "loss": sum(losses) / max(len(losses), 1)}  # fmt: skip
