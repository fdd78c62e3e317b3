"""NEU-Seg (the NEU surface defect database with pixel labels, Northeastern University; free for research).

The download unpacks to::

    images/training/000201.jpg       annotations/training/000201.png
    images/test/000001.jpg           annotations/test/000001.png

Annotations hold class indices: 0 background, 1 inclusion, 2 patches, 3 scratches. Splits: its own
training/test (val from training), or ``seeded``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nasseg.zoo.data.images import read_image
from nasseg.zoo.data.importers.common import ImportPlan, Reader, SourceSample, paired_samples, seeded_splits

CLASSES = ["background", "inclusion", "patches", "scratches"]


def _index_mask(path: Path) -> Reader:
    def read() -> np.ndarray:
        mask = read_image(path)
        return (mask if mask.ndim == 2 else mask[..., 0]).astype(np.uint8)

    return read


def plan(src: Path, seeded: bool = False, seed: int = 0) -> ImportPlan:
    """The samples of a NEU-Seg download."""
    problems: list[str] = []
    samples: list[SourceSample] = []
    for part, split in (("training", "train"), ("test", "test")):
        images, masks = src / "images" / part, src / "annotations" / part
        if not images.is_dir():
            problems.append(f"{images}: missing (NEU-Seg unpacks to images/ and annotations/, each training/ test/)")
            continue
        paths = sorted(p for p in images.iterdir() if p.suffix.lower() in (".jpg", ".png", ".bmp"))
        samples += paired_samples(paths, lambda p, masks=masks: masks / f"{p.stem}.png", None if seeded else split,
                                  _index_mask, problems)  # fmt: skip
    rule = "seeded 70/15/15" if seeded else "NEU-Seg's own training/test (val from training)"
    return ImportPlan(seeded_splits(samples, seed), list(CLASSES), problems, rule)
