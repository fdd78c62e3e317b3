"""What every importer shares: samples read lazily from the download, a seeded split where the source
has none, and one writer of the checked folder format with a ``dataset.json`` that says where it came
from.

An importer lists :class:`SourceSample` records (split, stem, how to read the image and the mask)
and the problems it found on the way (a defect image without its mask, ...). :func:`write_folder`
then reads each sample, checks that the mask has the image's size and only known classes, and
writes ``OUT/{train,val,test}/{images,masks}/STEM.png``. Every problem, of listing or of reading,
is collected; if there is any, nothing is written and :class:`~zoo.data.folder.DatasetError`
lists them all, one per file (``nasseg data import`` exits 2), as ``nasseg data check`` does.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from zoo._version import __version__
from zoo.data.folder import SPLITS, DatasetError
from zoo.data.images import ImageReadError, read_image, write_png

#: A seeded split for sources without one: train / val / test fractions.
SEEDED_FRACTIONS = (0.7, 0.15, 0.15)
Reader = Callable[[], np.ndarray]


@dataclass(frozen=True)
class SourceSample:
    """One sample of a download: its split (``None``: the seeded split decides), a unique stem, the
    path it is reported under, and readers for the image and for the class-index mask."""

    split: str | None
    stem: str
    where: Path
    image: Reader
    mask: Reader


@dataclass(frozen=True)
class ImportPlan:
    """What an importer found: samples, class names (background first), problems, and the split rule."""

    samples: list[SourceSample]
    classes: list[str]
    problems: list[str]
    split_rule: str


def image_reader(path: Path) -> Reader:
    return lambda: read_image(path)


def binary_mask_reader(path: Path, threshold: int = 0, invert: bool = False) -> Reader:
    """A mask file read as 0/1: pixels above ``threshold`` are foreground (below it, with ``invert``)."""

    def read() -> np.ndarray:
        mask = read_image(path)
        mask = mask if mask.ndim == 2 else mask[..., 0]
        return ((mask <= threshold) if invert else (mask > threshold)).astype(np.uint8)

    return read


def class_mask(reader: Reader, class_index: int) -> Reader:
    """A binary mask reader whose foreground becomes ``class_index`` (one class per defect type)."""
    return lambda: (reader() > 0).astype(np.uint8) * np.uint8(class_index)


def empty_mask_like(image: Reader) -> Reader:
    """An all-background mask of the image's size (defect-free samples)."""
    return lambda: np.zeros(image().shape[:2], np.uint8)


def paired_samples(paths: Sequence[Path], mask_of: Callable[[Path], Path], split: str | None,
                   read_mask: Callable[[Path], Reader], problems: list[str],
                   stem: Callable[[Path], str] = lambda p: p.stem) -> list[SourceSample]:  # fmt: skip
    """A sample per image whose mask file (``mask_of(image)``) exists; a problem line for each that lacks one."""
    samples = []
    for path in paths:
        mask = mask_of(path)
        if not mask.is_file():
            problems.append(f"{path}: no mask {mask.name}")
            continue
        samples.append(SourceSample(split, stem(path), path, image_reader(path), read_mask(mask)))
    return samples


def seeded_splits(samples: Sequence[SourceSample], seed: int) -> list[SourceSample]:
    """``samples`` with ``split`` filled for those without one: a seeded 70/15/15 permutation (sorted
    by stem first, so the split does not depend on the order files were listed in)."""
    free = sorted((s for s in samples if s.split is None), key=lambda s: s.stem)
    order = np.random.default_rng(seed).permutation(len(free))
    n_train = int(round(SEEDED_FRACTIONS[0] * len(free)))
    n_val = int(round(SEEDED_FRACTIONS[1] * len(free)))
    split_of = {}
    for rank, index in enumerate(order):
        split_of[free[index].stem] = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
    return [s if s.split is not None else replace(s, split=split_of[s.stem]) for s in samples]


def write_folder(plan: ImportPlan, out: Path, source: str, fmt: str, progress: Callable[[int], None] | None = None,
                 overwrite: bool = False) -> Path:  # fmt: skip
    """Read, check and write every sample of ``plan`` into ``out`` (see the module docstring)."""
    out = Path(out)
    problems = list(plan.problems)
    if not plan.samples and not problems:
        problems.append(f"{source}: no samples found in the {fmt} layout")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DatasetError(out, [f"{out}: the output folder is not empty (pass --overwrite to replace it)"])
    seen: set[tuple[str, str]] = set()
    for sample in plan.samples:
        if (sample.split, sample.stem) in seen:
            problems.append(f"{sample.where}: a second sample named {sample.stem!r} in {sample.split}")
        seen.add((sample.split, sample.stem))
    staging = out.with_name(out.name + ".importing")
    shutil.rmtree(staging, ignore_errors=True)
    written = 0
    for sample in plan.samples:
        problem = _write_sample(sample, staging, len(plan.classes))
        if problem:
            problems.append(problem)
        else:
            written += 1
        if progress is not None:
            progress(1)
    if problems:
        shutil.rmtree(staging, ignore_errors=True)
        raise DatasetError(Path(source), problems)
    counts = {split: sum(1 for s in plan.samples if s.split == split) for split in SPLITS}
    meta = {"classes": plan.classes, "source": {"format": fmt, "path": str(Path(source).resolve())},
            "split": plan.split_rule, "counts": counts, "importer": f"nasseg {__version__}"}  # fmt: skip
    (staging / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return out


def _write_sample(sample: SourceSample, root: Path, num_classes: int) -> str | None:
    """Write one sample; the problem (one line naming the file) if it cannot be."""
    try:
        image = sample.image()
        mask = sample.mask()
    except ImageReadError as exc:
        return str(exc)
    except (OSError, ValueError, KeyError, IndexError, TypeError, EOFError) as exc:
        return f"{sample.where}: cannot be read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    if mask.shape[:2] != image.shape[:2]:
        return (f"{sample.where}: mask is {mask.shape[1]}x{mask.shape[0]}, image is "
                f"{image.shape[1]}x{image.shape[0]}")  # fmt: skip
    if mask.size and int(mask.max()) >= num_classes:
        return f"{sample.where}: mask value {int(mask.max())} is outside the {num_classes} classes"
    scale = 255 if num_classes == 2 else 1
    write_png(root / sample.split / "images" / f"{sample.stem}.png", image)
    write_png(root / sample.split / "masks" / f"{sample.stem}.png", (mask * scale).astype(np.uint8))
    return None
