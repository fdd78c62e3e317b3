"""The U-Net GA's own task: pix2pix training of a candidate generator, scored by L_Gen (eq. 8).

Data: a paired folder (``A/`` inputs, ``B/`` targets; ``zoo.data.folder.open_paired_folder``),
given directly or as ``DATA/pairs`` of a dataset folder (``nasseg data make synth-defects --pairs``
writes defective -> defect-free pairs there). The mini-train / mini-validation split follows the
dataset folder's ``train`` / ``val`` splits when the stems match, else the last 20 % of the
sorted stems validate; the fidelity cuts both (``max_images`` / ``max_val_images``).

Training (pix2pix, section 3 and 6.2 of Isola et al.): per step the generator makes G(x), the
PatchGAN discriminator takes one step on 0.5 * (BCE(D(x, y), 1) + BCE(D(x, G(x)), 0)), then the
generator one on BCE(D(x, G(x)), 1) + lambda * |y - G(x)|_1, lambda = 100; Adam (lr from the
fidelity, pix2pix's 2e-4 by the CLI's default; betas 0.5 / 0.999); random crops of the fidelity's
size and flips, drawn from (seed, epoch, index). Inputs are normalised as the zoo does
(``zoo.data.dataset.normalise``, which the exported graph repeats), targets scaled to the tanh
range [-1, 1].

L_Gen (eq. 8) on the mini-validation pairs, full images: L_GAN(G) + lambda * L1. Eq. 6 writes
L_GAN(G) in the minimax form E[log(1 - D(G(x)))], which is negative and would make eq. 7's
reciprocal meaningless; we measure the non-saturating loss pix2pix trains with,
E[-log D(x, G(x))] (BCE against "real"), with the candidate's own trained discriminator. As in
pix2pix at test time, BatchNorm uses the statistics of the validation batch; dropout is off so the
score is deterministic. ``metrics``: ``loss`` (= L_Gen), ``l_gan``, ``l1``, ``psnr`` (dB, [0, 1] range).
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasseg import zoo
from nasseg.searchers.base import EvalResult, Evaluator, Fidelity, Proposal, SearchError
from nasseg.searchers.evaluators import measure
from nasseg.searchers.halving import proposal_epochs
from nasseg.searchers.unet_ga.patchgan import PatchDiscriminator
from nasseg.zoo.data.augment import random_crop
from nasseg.zoo.data.dataset import load_image, normalise
from nasseg.zoo.data.folder import Pair, open_paired_folder
from nasseg.zoo.errors import NassegError
from nasseg.zoo.sizing import crop_to_original, pad_to_multiple
from nasseg.zoo.training.trainer import resolve_device


def paired_root(data: str | Path) -> Path:
    """The folder holding ``A/`` and ``B/``: ``data`` itself or ``data/pairs``."""
    data = Path(data)
    for candidate in (data, data / "pairs"):
        if (candidate / "A").is_dir() and (candidate / "B").is_dir():
            return candidate
    raise SearchError(f"--data {data}: no translation pairs (A/ and B/, or pairs/A and pairs/B; "
                      "`nasseg data make synth-defects --pairs` writes them)")  # fmt: skip


def paired_splits(data: str | Path, val_fraction: float = 0.2) -> dict[str, list[Pair]]:
    """``{"train": [...], "val": [...]}`` pairs of ``data`` (see the module docstring for the split)."""
    root = paired_root(data)
    try:
        pairs = open_paired_folder(root)
    except NassegError as exc:
        raise SearchError(str(exc).splitlines()[0]) from None
    folder = root.parent if root.name == "pairs" else None
    if folder is not None and (folder / "val" / "images").is_dir():
        val_stems = {p.stem for p in (folder / "val" / "images").iterdir()}
        train_stems = (
            {p.stem for p in (folder / "train" / "images").iterdir()} if (folder / "train").is_dir() else set()
        )
        val = [p for p in pairs if p.stem in val_stems]
        train = [p for p in pairs if p.stem in train_stems]
        if val and train:
            return {"train": train, "val": val}
    count = max(1, math.ceil(val_fraction * len(pairs)))
    if len(pairs) - count < 2:
        raise SearchError(f"{root}: {len(pairs)} pairs are too few to train and validate (need 3 or more)")
    return {"train": pairs[:-count], "val": pairs[-count:]}


def _use_batch_statistics(model: nn.Module) -> None:
    """Eval mode (no dropout) but BatchNorm on the batch's statistics (pix2pix at test time)."""
    model.eval()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.train()


class TranslationEvaluator(Evaluator):
    """pix2pix-train a candidate U-Net generator and score L_Gen on the mini-validation pairs (picklable)."""

    def __init__(self, data: str | Path, fidelity: Fidelity, device: str = "cpu", lam: float = 100.0,
                 disc_width: int = 64, betas: tuple[float, float] = (0.5, 0.999)) -> None:  # fmt: skip
        self.data = Path(data)
        self.fidelity = fidelity
        self.device = device
        self.lam = lam
        self.disc_width = disc_width
        self.betas = tuple(betas)
        self._splits: dict[str, list[Pair]] | None = None
        self._cache: dict[Path, np.ndarray] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_splits": None, "_cache": {}}

    def splits(self) -> dict[str, list[Pair]]:
        """The mini-train and mini-validation pairs (opened once per process)."""
        if self._splits is None:
            splits = paired_splits(self.data)
            f = self.fidelity
            self._splits = {"train": splits["train"][: f.max_images], "val": splits["val"][: f.max_val_images]}
        return self._splits

    def describe(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "data": str(self.data), "fidelity": dataclasses.asdict(self.fidelity),
                "device": self.device, "lambda": self.lam, "disc_width": self.disc_width,
                "betas": list(self.betas)}  # fmt: skip

    # -- data ----------------------------------------------------------------------------------

    def _image(self, path: Path, channels: int) -> np.ndarray:
        if path not in self._cache:
            self._cache[path] = load_image(path, channels)
        return self._cache[path]

    def _tensors(self, source: np.ndarray, target: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(normalise(np.ascontiguousarray(source.transpose(2, 0, 1))).astype(np.float32))
        y = torch.from_numpy(np.ascontiguousarray(target.transpose(2, 0, 1)) * 2.0 - 1.0).float()
        return x, y

    def _train_batch(self, pairs: list[Pair], indices: list[int], seed: int, epoch: int,
                     channels: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        xs, ys = [], []
        for index in indices:
            a = self._image(pairs[index].source, channels[0])
            b = self._image(pairs[index].target, channels[1])
            rng = np.random.default_rng([seed, epoch, index])
            both, _ = random_crop(np.concatenate([a, b], axis=2), np.zeros(a.shape[:2]), self.fidelity.image_size, rng)
            if rng.random() < 0.5:
                both = both[:, ::-1]
            if rng.random() < 0.5:
                both = both[::-1]
            x, y = self._tensors(both[:, :, : channels[0]], both[:, :, channels[0] :])
            xs.append(x)
            ys.append(y)
        return torch.stack(xs), torch.stack(ys)

    # -- evaluation ----------------------------------------------------------------------------

    def evaluate(self, proposal: Proposal, seed: int, workdir: Path) -> EvalResult:
        start = time.perf_counter()
        genotype = proposal.genotype
        if genotype.task.kind != "translation":
            raise SearchError(f"candidate {proposal.key}: a {genotype.task.kind} net; the translation evaluator "
                              "needs task kind 'translation'")  # fmt: skip
        channels = (genotype.task.in_channels, genotype.task.num_classes)
        splits, f = self.splits(), self.fidelity
        device = resolve_device(self.device)
        torch.manual_seed(seed)
        generator = zoo.build_model(genotype).to(device)
        discriminator = PatchDiscriminator(sum(channels), self.disc_width).to(device)
        opt_g = torch.optim.Adam(generator.parameters(), lr=f.lr, betas=self.betas)
        opt_d = torch.optim.Adam(discriminator.parameters(), lr=f.lr, betas=self.betas)
        train = splits["train"]
        steps = max(1, len(train) // f.batch_size)
        steps = min(steps, f.max_steps_per_epoch or steps)
        for epoch in range(proposal_epochs(proposal, f.epochs)):
            generator.train()
            discriminator.train()
            torch.manual_seed(seed * 1_000_003 + epoch)  # dropout draws
            order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()
            for step in range(steps):
                indices = order[step * f.batch_size : (step + 1) * f.batch_size]
                if len(indices) < 2:
                    break
                x, y = (t.to(device) for t in self._train_batch(train, indices, seed, epoch, channels))
                fake = generator(x)
                real_logits, fake_logits = discriminator(x, y), discriminator(x, fake.detach())
                loss_d = 0.5 * (_bce(real_logits, 1.0) + _bce(fake_logits, 0.0))
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                loss_g = _bce(discriminator(x, fake), 1.0) + self.lam * F.l1_loss(fake, y)
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                if not math.isfinite(loss_g.item()) or not math.isfinite(loss_d.item()):
                    raise SearchError(f"candidate {proposal.key}: pix2pix training diverged at epoch {epoch + 1}, "
                                      f"step {step + 1}")  # fmt: skip
        metrics = self.validate(generator, discriminator, channels, device)
        macs, params = measure(genotype, f.image_size)
        return EvalResult(key=proposal.key, genotype=genotype, metrics=metrics, macs=macs, params=params,
                          seconds=time.perf_counter() - start)  # fmt: skip

    @torch.no_grad()
    def validate(self, generator: nn.Module, discriminator: nn.Module, channels: tuple[int, int],
                 device: torch.device) -> dict[str, float]:  # fmt: skip
        """L_Gen = L_GAN(G) + lambda * L1 and PSNR, means over the mini-validation pairs."""
        _use_batch_statistics(generator)
        _use_batch_statistics(discriminator)
        divisor = getattr(generator, "divisor", 1)
        val = self.splits()["val"]
        by_shape: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}
        for pair in val:
            x, y = self._tensors(self._image(pair.source, channels[0]), self._image(pair.target, channels[1]))
            by_shape.setdefault(tuple(x.shape), []).append((x, y))
        sums = {"l_gan": 0.0, "l1": 0.0, "psnr": 0.0}
        for items in by_shape.values():
            for first in range(0, len(items), 16):
                chunk = items[first : first + 16]
                x = torch.stack([c[0] for c in chunk]).to(device)
                y = torch.stack([c[1] for c in chunk]).to(device)
                padded, padding = pad_to_multiple(x, divisor)
                fake = crop_to_original(generator(padded), padding)
                logits = discriminator(x, fake)
                n = len(chunk)
                sums["l_gan"] += n * float(_bce(logits, 1.0))
                sums["l1"] += n * float(F.l1_loss(fake, y))
                mse = ((fake - y) / 2).pow(2).flatten(1).mean(1).clamp_min(1e-10)
                sums["psnr"] += float((-10 * torch.log10(mse)).sum())
        count = max(len(val), 1)
        metrics = {k: v / count for k, v in sums.items()}
        metrics["loss"] = metrics["l_gan"] + self.lam * metrics["l1"]
        return metrics


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))
