"""ISBI 2012 EM segmentation challenge (https://imagej.net/events/isbi-2012-segmentation-challenge;
free for research, cite Arganda-Carreras et al. 2015).

``train-volume.tif`` (30 slices of 512x512) and ``train-labels.tif`` (255 cell interior, 0 membrane):
each slice becomes a sample, with the membranes as foreground (the class the challenge scores).
``test-volume.tif`` has no public labels and is not imported. There is no split of the training
volume: a seeded 70/15/15 one is made over its slices.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

from nasseg.zoo.data.images import require_regular_file
from nasseg.zoo.data.importers.common import ImportPlan, SourceSample, seeded_splits


def read_stack(path: Path) -> list[np.ndarray]:
    """Every page of a multi-page TIFF, as arrays (a truncated file raises OSError)."""
    require_regular_file(path)
    with Image.open(path) as handle:
        return [np.asarray(page.copy()) for page in ImageSequence.Iterator(handle)]


def plan(src: Path, seed: int = 0) -> ImportPlan:
    """The slices of the ISBI 2012 training volume."""
    volume, labels = src / "train-volume.tif", src / "train-labels.tif"
    problems = [f"{p}: missing (the ISBI 2012 download has train-volume.tif and train-labels.tif)"
                for p in (volume, labels) if not p.is_file()]  # fmt: skip
    if problems:
        return ImportPlan([], ["background", "membrane"], problems, "seeded 70/15/15")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL warns about the corrupt EXIF of a truncated file too
            images, masks = read_stack(volume), read_stack(labels)
    except (OSError, ValueError, SyntaxError, TypeError, EOFError) as exc:  # PIL: TypeError for missing tags
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return ImportPlan([], ["background", "membrane"], [f"{src}: a TIFF stack cannot be read ({text})"], "")
    if len(images) != len(masks):
        problems.append(f"{labels}: {len(masks)} slices, but {volume.name} has {len(images)}")
    samples = [SourceSample(None, f"slice-{i:03d}", volume, lambda i=i: images[i],
                            lambda i=i: (masks[i] == 0).astype(np.uint8))
               for i in range(min(len(images), len(masks)))]  # fmt: skip
    return ImportPlan(seeded_splits(samples, seed), ["background", "membrane"], problems,
                      "seeded 70/15/15 over the training slices")  # fmt: skip
