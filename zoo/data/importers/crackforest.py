"""CrackForest (Shi et al. 2016, https://github.com/cuilimeng/CrackForest-dataset; free for research).

The download has ``image/001.jpg ...`` and ``groundTruth/001.mat``: MATLAB files with a
``groundTruth`` struct whose ``Segmentation`` is 1 for background and 2 for crack. Classes:
``background, crack``. There is no split: a seeded 70/15/15 one is made.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import loadmat

from nasseg.zoo.data.images import require_regular_file
from nasseg.zoo.data.importers.common import ImportPlan, paired_samples, seeded_splits


def read_ground_truth(path: Path) -> np.ndarray:
    """The crack mask (0/1) of a CrackForest ``.mat`` file."""
    require_regular_file(path)
    truth = loadmat(path)["groundTruth"]
    segmentation = np.asarray(truth[0, 0]["Segmentation"] if truth.dtype.names else truth)
    return (segmentation == 2).astype(np.uint8)


def plan(src: Path, seed: int = 0) -> ImportPlan:
    """The samples of a CrackForest download."""
    problems: list[str] = []
    images = sorted((src / "image").glob("*.jpg")) if (src / "image").is_dir() else []
    if not images:
        problems.append(f"{src / 'image'}: no .jpg images (CrackForest has image/ and groundTruth/)")
    samples = paired_samples(images, lambda p: src / "groundTruth" / f"{p.stem}.mat", None,
                             lambda truth: lambda: read_ground_truth(truth), problems)  # fmt: skip
    return ImportPlan(seeded_splits(samples, seed), ["background", "crack"], problems,
                      "seeded 70/15/15 (the source has no split)")  # fmt: skip
