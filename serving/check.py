"""PyTorch against ONNX Runtime: does an exported file give the masks the zoo net gives?

The reference of a ``deploy`` graph is the zoo's own inference path,
:func:`zoo.inference.predict_array` (pad, net, crop, sigmoid > threshold or softmax arg-max), one
frame at a time; the reference of a ``raw`` graph is the net's forward pass. Cases: fresh random
frames at several sizes (sides that are not multiples of the divisor included) and real images of
the bundled ``synth-defects`` set, each at batch sizes 1 and 3. A check fails where the largest
absolute difference of probabilities exceeds ``atol`` (1e-4) or the masks agree on fewer than
``min_agreement`` (99.9 %) of the pixels.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nasseg.serving.export import ExportMetadata, RawGraph, read_metadata
from nasseg.serving.runtime import OnnxSession, open_session
from nasseg.zoo.data.folder import open_folder
from nasseg.zoo.data.images import read_image, to_channels, to_float
from nasseg.zoo.data.synthetic import make_dataset
from nasseg.zoo.errors import NassegError
from nasseg.zoo.inference import predict_array

ATOL = 1e-4
MIN_AGREEMENT = 0.999
BATCHES = (1, 3)


class CheckError(NassegError):
    """ONNX Runtime and PyTorch disagree beyond the tolerances."""


@dataclass(frozen=True)
class CaseResult:
    """One comparison: an input kind, batch and size, and what differed."""

    source: str
    batch: int
    height: int
    width: int
    max_abs_diff: float
    mask_agreement: float


@dataclass
class CheckReport:
    """Every case of a check and the verdict."""

    path: Path
    graph: str
    provider: str
    atol: float = ATOL
    min_agreement: float = MIN_AGREEMENT
    cases: list[CaseResult] = field(default_factory=list)

    @property
    def max_abs_diff(self) -> float:
        return max((c.max_abs_diff for c in self.cases), default=0.0)

    @property
    def mask_agreement(self) -> float:
        """The worst case's fraction of equal mask pixels."""
        return min((c.mask_agreement for c in self.cases), default=1.0)

    @property
    def passed(self) -> bool:
        return bool(self.cases) and self.max_abs_diff <= self.atol and self.mask_agreement >= self.min_agreement

    def summary(self) -> str:
        """One line: verdict, figures and the number of cases."""
        verdict = "passed" if self.passed else "FAILED"
        return (f"check {verdict}: {self.path.name} ({self.graph}, {self.provider}): max |diff| of probabilities "
                f"{self.max_abs_diff:.2e} (limit {self.atol:.0e}), mask agreement {100 * self.mask_agreement:.3f} % "
                f"(limit {100 * self.min_agreement:.1f} %), {len(self.cases)} cases")  # fmt: skip

    def raise_for_failure(self) -> None:
        """Raise :class:`CheckError` with :meth:`summary` unless the check passed."""
        if not self.passed:
            raise CheckError(self.summary())

    def to_dict(self) -> dict:
        return {"path": str(self.path), "graph": self.graph, "provider": self.provider, "passed": self.passed,
                "max_abs_diff": self.max_abs_diff, "mask_agreement": self.mask_agreement, "atol": self.atol,
                "min_agreement": self.min_agreement, "cases": [asdict(c) for c in self.cases]}  # fmt: skip


def bundled_frames(in_channels: int, n: int = 3, size: int = 96, seed: int = 0) -> np.ndarray:
    """``n`` uint8 ``(n, size, size, in_channels)`` frames: test images of the bundled synth-defects set."""
    return _bundled_frames(in_channels, n, size, seed).copy()


@cache
def _bundled_frames(in_channels: int, n: int, size: int, seed: int) -> np.ndarray:
    with tempfile.TemporaryDirectory(prefix="nasseg-check-") as tmp:
        root = make_dataset("synth-defects", Path(tmp) / "synth", n=max(20, 7 * n), size=size, seed=seed)
        samples = open_folder(root).splits["test"][:n]
        return np.stack([to_channels(read_image(s.image), in_channels) for s in samples]).astype(np.uint8)


def default_sizes(divisor: int) -> list[tuple[int, int]]:
    """A multiple of the divisor, and sizes that are not (one smaller than a divisor block); the
    block is the divisor, or its first multiple >= 16 for small divisors."""
    block = divisor * -(-16 // divisor)
    return [(2 * block, 3 * block), (block + 7, 2 * block - 3), (max(block // 2 - 1, 1), block + 1)]


def _probabilities_and_masks(logits: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Foreground / top-class probability and mask from logits ``(N, K, ...)`` (K = 1: sigmoid)."""
    tensor = torch.from_numpy(np.asarray(logits, dtype=np.float32))
    if tensor.shape[1] == 1:
        probability = torch.sigmoid(tensor[:, 0])
        return probability.numpy(), (probability > threshold).numpy().astype(np.uint8)
    probability, mask = tensor.softmax(1).max(1)
    return probability.numpy(), mask.numpy().astype(np.uint8)


def _compare(source: str, frames_shape: Sequence[int], ours: tuple[np.ndarray, np.ndarray],
             ref: tuple[np.ndarray, np.ndarray]) -> CaseResult:  # fmt: skip
    batch, height, width = frames_shape[0], frames_shape[-2], frames_shape[-1]
    diff = float(np.abs(ours[0].astype(np.float64) - ref[0]).max())
    return CaseResult(source, int(batch), int(height), int(width), diff, float((ours[1] == ref[1]).mean()))


def _deploy_case(session: OnnxSession, model: nn.Module, meta: ExportMetadata, frames: np.ndarray,
                 source: str) -> CaseResult:  # fmt: skip
    probabilities, mask = session.run(frames)
    ours = (probabilities[:, 0] if probabilities.shape[1] == 1 else probabilities.max(1), mask)
    refs = [predict_array(model, to_float(frame), meta.threshold) for frame in frames]
    ref = (np.stack([r[1] for r in refs]), np.stack([r[0] for r in refs]))
    return _compare(source, frames.shape[:3], ours, ref)


@torch.no_grad()
def _raw_case(session: OnnxSession, model: nn.Module, meta: ExportMetadata, x: np.ndarray, source: str) -> CaseResult:
    ours, ref = session.run(x)[0], RawGraph(model).eval()(torch.from_numpy(x)).numpy()
    if meta.genotype.task.kind == "translation":  # an image out: compare it, there is no mask
        no_mask = np.zeros(ours.shape[:1], np.uint8)
        return _compare(source, x.shape, (ours, no_mask), (ref, no_mask))
    if ours.ndim == 2:  # class scores (N, K) of a classification net
        ours, ref = ours[:, :, None, None], ref[:, :, None, None]
    ours_pm = _probabilities_and_masks(ours, meta.threshold)
    return _compare(source, x.shape, ours_pm, _probabilities_and_masks(ref, meta.threshold))


def check(path: str | Path, model: nn.Module, sizes: Sequence[tuple[int, int]] | None = None,
          batches: Sequence[int] = BATCHES, images: bool = True, seed: int = 0, atol: float = ATOL,
          min_agreement: float = MIN_AGREEMENT, threads: int | None = None) -> CheckReport:  # fmt: skip
    """Compare the ONNX file at ``path`` with ``model`` (the net it was exported from) on ONNX
    Runtime's CPU provider; returns a :class:`CheckReport` (``.raise_for_failure()`` to enforce it)."""
    meta = read_metadata(path)
    if meta.arch_hash != model.genotype.arch_hash:
        raise CheckError(
            f"{path}: exported from arch {meta.arch_hash}, but the model is arch {model.genotype.arch_hash}"
        )
    model = model.eval()
    session = open_session(path, device="cpu", threads=threads)
    report = CheckReport(Path(path), meta.graph, session.provider, atol, min_agreement)
    task, rng = meta.genotype.task, np.random.default_rng(seed)
    if not meta.dynamic_hw:
        sizes = [tuple(task.input_size)]
    elif sizes is None:
        sizes = default_sizes(meta.divisor)
    if meta.graph == "raw":
        for height, width in sizes:
            height, width = (-(-height // meta.divisor) * meta.divisor, -(-width // meta.divisor) * meta.divisor)
            for batch in batches:
                x = rng.standard_normal((batch, task.in_channels, height, width)).astype(np.float32)
                report.cases.append(_raw_case(session, model, meta, x, "random"))
        return report
    for height, width in sizes:
        for batch in batches:
            frames = rng.integers(0, 256, (batch, height, width, task.in_channels), dtype=np.uint8)
            report.cases.append(_deploy_case(session, model, meta, frames, "random"))
    if images:
        real = bundled_frames(task.in_channels, n=max(batches), seed=seed)
        if not meta.dynamic_hw:  # fixed-size graph: tile the images up to its size
            reps = (1, -(-sizes[0][0] // real.shape[1]), -(-sizes[0][1] // real.shape[2]), 1)
            real = np.tile(real, reps)[:, : sizes[0][0], : sizes[0][1]]
            crops = [real]
        else:
            crops = [real, real[:, : real.shape[1] - 5, : real.shape[2] - 3]]
        for crop in crops:
            for batch in batches:
                report.cases.append(_deploy_case(session, model, meta, np.ascontiguousarray(crop[:batch]), "images"))
    return report
