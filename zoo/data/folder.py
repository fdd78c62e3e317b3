"""The folder dataset format users bring, checked in full before any training starts.

```
ROOT/dataset.json                    optional: {"classes": ["background", "defect"], ...}
ROOT/{train,val,test}/images/NAME.png|jpg|jpeg|bmp|tif|tiff
ROOT/{train,val,test}/masks/NAME.png|...   (same stem as the image)
```

Images: gray, RGB(A), palette, 8- or 16-bit. Masks: one channel, binary (0/255 or 0/1) when
there are two classes, class indices otherwise. Without ``dataset.json`` the classes are
``["background", "foreground"]``. When ``val`` is missing, a seeded 80/20 split of ``train``
makes it (the split NAS-ASDet and IAC use); when ``test`` is missing, ``val`` doubles as test.
Every problem (missing mask, orphan mask, unreadable file, size mismatch, mask values outside
the classes) is collected, and :class:`DatasetError` lists them all, by file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nasseg.zoo.data.images import IMAGE_SUFFIXES, ImageReadError, read_image
from nasseg.zoo.errors import NassegError

SPLITS = ("train", "val", "test")
DEFAULT_CLASSES = ("background", "foreground")


class DatasetError(NassegError):
    """A dataset folder with problems; ``problems`` lists them, one ``file: problem`` each."""

    def __init__(self, root: Path, problems: list[str]):
        self.root = root
        self.problems = problems
        shown = problems[:50]
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"dataset {root}: {len(problems)} problem(s):\n  " + "\n  ".join(shown) + more)


@dataclass(frozen=True)
class Sample:
    """One image and its mask."""

    stem: str
    image: Path
    mask: Path


@dataclass
class SegmentationFolder:
    """A checked dataset: its classes and the samples of each split (see the module docstring)."""

    root: Path
    classes: list[str]
    splits: dict[str, list[Sample]]
    split_origin: dict[str, str] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        """Number of classes, background included."""
        return len(self.classes)

    @property
    def model_classes(self) -> int:
        """Output channels a net needs: 1 (sigmoid) for two classes, else one per class (softmax)."""
        return 1 if self.num_classes == 2 else self.num_classes

    def describe(self) -> str:
        """One line: classes and split sizes (and where each split came from)."""
        parts = [f"{name} {len(self.splits[name])} ({self.split_origin.get(name, 'folder')})" for name in SPLITS]
        return f"{self.root}: classes {self.classes}; " + ", ".join(parts)


def _files(directory: Path) -> dict[str, Path]:
    if not directory.is_dir():
        return {}
    return {p.stem: p for p in sorted(directory.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()}


def read_classes(root: Path) -> list[str]:
    """Classes from ``ROOT/dataset.json``, or the binary default."""
    path = root / "dataset.json"
    if not path.is_file():
        return list(DEFAULT_CLASSES)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(root, [f"{path}: not valid JSON ({exc})"]) from None
    classes = meta.get("classes", list(DEFAULT_CLASSES)) if isinstance(meta, dict) else None
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise DatasetError(root, [f"{path}: 'classes' must be a list of at least two names"])
    return classes


def mask_to_index(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Class-index map (uint8/int64) from a mask image; ``ValueError`` naming the bad values."""
    if mask.ndim == 3:
        if mask.shape[2] in (2, 4):
            mask = mask[:, :, :-1]
        if not (mask == mask[:, :, :1]).all():
            raise ValueError("mask has colour; masks are one channel of class indices")
        mask = mask[:, :, 0]
    values = np.unique(mask)
    if num_classes == 2 and values.max(initial=0) == 255:
        if not set(values.tolist()) <= {0, 255}:
            raise ValueError(f"binary mask mixes 0/255 with other values {sorted(set(values.tolist()) - {0, 255})[:5]}")
        return (mask == 255).astype(np.uint8)
    bad = values[(values < 0) | (values >= num_classes)]
    if bad.size:
        raise ValueError(f"mask values {bad[:5].tolist()} outside the {num_classes} classes 0..{num_classes - 1}")
    return mask.astype(np.uint8 if num_classes <= 256 else np.int64)


def _pair(split_dir: Path, problems: list[str]) -> list[Sample]:
    images, masks = _files(split_dir / "images"), _files(split_dir / "masks")
    for stem in sorted(set(masks) - set(images)):
        problems.append(f"{masks[stem]}: mask without an image")
    samples = []
    if images and not (split_dir / "masks").is_dir():  # one line for the folder, not one per image
        problems.append(f"{split_dir / 'masks'}: no masks folder ({len(images)} images in {split_dir / 'images'} "
                        "need a mask each, same file stem)")  # fmt: skip
        return []
    for stem, image in images.items():
        if stem not in masks:
            problems.append(f"{image}: no mask (expected {split_dir / 'masks' / stem}.png or another image type)")
        else:
            samples.append(Sample(stem, image, masks[stem]))
    return samples


def check_sample(sample: Sample, num_classes: int) -> list[str]:
    """Problems of one sample (empty when it is fine): unreadable files, sizes, mask values."""
    problems = []
    try:
        image = read_image(sample.image)
    except ImageReadError as exc:
        problems.append(str(exc))
        image = None
    try:
        mask = read_image(sample.mask)
        mask_to_index(mask, num_classes)
    except ImageReadError as exc:
        problems.append(str(exc))
        mask = None
    except ValueError as exc:
        lossy = sample.mask.suffix.lower() in (".jpg", ".jpeg")
        hint = "; JPEG compression changes mask values: save masks as PNG" if lossy else ""
        problems.append(f"{sample.mask}: {exc}{hint}")
    if image is not None and mask is not None and image.shape[:2] != mask.shape[:2]:
        problems.append(
            f"{sample.mask}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is {image.shape[1]}x{image.shape[0]}"
        )
    return problems


def open_folder(root: str | Path, seed: int = 0, val_fraction: float = 0.2, check: bool = True) -> SegmentationFolder:
    """Scan and check a dataset folder; :class:`DatasetError` lists every problem at once."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(root, [f"{root}: no such dataset folder"])
    classes = read_classes(root)
    problems: list[str] = []
    splits = {name: _pair(root / name, problems) for name in SPLITS}
    origin = {name: "folder" for name in SPLITS}
    if not splits["train"] and not problems:
        problems.append(f"{root / 'train' / 'images'}: no training images (expected PNG, JPEG, BMP or TIFF files)")
    if check:
        for name in SPLITS:
            for sample in splits[name]:
                problems.extend(check_sample(sample, len(classes)))
    if problems:
        raise DatasetError(root, problems)
    if not splits["val"]:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(splits["train"]))
        n_val = max(1, round(val_fraction * len(order))) if len(order) > 1 else 0
        chosen = set(order[:n_val].tolist())
        splits["val"] = [s for i, s in enumerate(splits["train"]) if i in chosen]
        splits["train"] = [s for i, s in enumerate(splits["train"]) if i not in chosen]
        origin["val"] = f"seeded {round(val_fraction * 100)}% of train (seed {seed})"
    if not splits["test"]:
        splits["test"] = list(splits["val"])
        origin["test"] = "= val"
    return SegmentationFolder(root, classes, splits, origin)


@dataclass(frozen=True)
class Pair:
    """One translation pair: input ``A/NAME`` and target ``B/NAME``."""

    stem: str
    source: Path
    target: Path


def open_paired_folder(root: str | Path) -> list[Pair]:
    """Image-to-image pairs from ``ROOT/A`` (inputs) and ``ROOT/B`` (targets) with matching stems,
    checked like segmentation folders (missing partner, unreadable file, size mismatch)."""
    root = Path(root)
    sources, targets = _files(root / "A"), _files(root / "B")
    problems = [f"{targets[s]}: target without an input in A/" for s in sorted(set(targets) - set(sources))]
    problems += [f"{sources[s]}: no target in B/" for s in sorted(set(sources) - set(targets))]
    pairs = [Pair(s, sources[s], targets[s]) for s in sorted(set(sources) & set(targets))]
    if not sources and not targets:
        problems.append(f"{root}: no A/ and B/ image folders")
    for pair in pairs:
        try:
            a, b = read_image(pair.source), read_image(pair.target)
        except ImageReadError as exc:
            problems.append(str(exc))
            continue
        if a.shape[:2] != b.shape[:2]:
            problems.append(f"{pair.target}: {b.shape[1]}x{b.shape[0]} but its input is {a.shape[1]}x{a.shape[0]}")
    if problems:
        raise DatasetError(root, problems)
    return pairs
