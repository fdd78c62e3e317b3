"""A predicted mask and its probabilities -> defect regions and an OK / NG verdict.

A defect is one 8-connected region of one non-background class. It counts towards the verdict
when it covers at least ``min_area`` pixels; smaller regions (speckle) are counted but not listed.
Memory beyond the label image stays bounded by a band of rows, so line-scan frames stay cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class Defect:
    """One connected region of one class; ``bbox`` is ``x, y, width, height`` in input pixels."""

    class_index: int
    class_name: str
    bbox: tuple[int, int, int, int]
    area: int
    mean_probability: float

    def to_dict(self) -> dict:
        return {**asdict(self), "bbox": dict(zip(("x", "y", "width", "height"), self.bbox, strict=True))}


@dataclass(frozen=True)
class Inspection:
    """The defects of one frame, largest first, and the verdict they give."""

    verdict: str
    defects: list[Defect]
    defect_count: int
    small_regions: int
    min_area: int

    def to_dict(self, max_listed: int | None = None) -> dict:
        listed = self.defects if max_listed is None else self.defects[:max_listed]
        return {"verdict": self.verdict, "min_defect_area": self.min_area, "defect_count": self.defect_count,
                "defects": [d.to_dict() for d in listed], "defects_truncated": len(listed) < len(self.defects),
                "small_regions": self.small_regions}  # fmt: skip


def find_defects(
    mask: np.ndarray, probability: np.ndarray, class_names: Sequence[str], min_area: int = 1
) -> Inspection:
    """Regions of every class but 0 (background) in a class-index ``mask`` (H, W); ``probability`` (H, W)
    is the probability of the predicted class at each pixel (as ``OnnxSegmenter.predict_frames`` gives it).
    The verdict is ``NG`` when a region has at least ``min_area`` pixels, ``OK`` otherwise."""
    if mask.shape != probability.shape or mask.ndim != 2:
        raise ValueError(f"mask {mask.shape} and probability {probability.shape} must be the same (H, W)")
    if min_area < 1:
        raise ValueError(f"min_area must be >= 1, got {min_area}")
    defects: list[Defect] = []
    small = 0
    for class_index in np.flatnonzero(np.bincount(mask.ravel()))[1:]:
        labels, count = ndimage.label(mask == class_index, structure=_EIGHT_CONNECTED)
        areas, sums = _region_sums(labels, probability, count)
        kept = np.flatnonzero(areas[1:] >= min_area) + 1
        small += count - len(kept)
        if len(kept) == 0:
            continue
        boxes = ndimage.find_objects(labels)  # one pass; a list entry per region (speckle: ~10^4 entries)
        for label in kept:
            rows, cols = boxes[label - 1]
            defects.append(Defect(class_index=int(class_index), class_name=_name(class_names, int(class_index)),
                                  bbox=(cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start),
                                  area=int(areas[label]),
                                  mean_probability=round(float(sums[label] / areas[label]), 4)))  # fmt: skip
    defects.sort(key=lambda d: (-d.area, d.bbox[1], d.bbox[0]))
    return Inspection(verdict="NG" if defects else "OK", defects=defects, defect_count=len(defects),
                      small_regions=small, min_area=min_area)  # fmt: skip


def _row_chunks(height: int, rows: int = 256) -> list[slice]:
    return [slice(start, min(start + rows, height)) for start in range(0, height, rows)]


def _region_sums(labels: np.ndarray, probability: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel count and probability sum per label (index 0, the background, is left at 0), band by band
    and over the band's region pixels only: the temporaries stay a band's size (a whole 8192x3000
    frame in float64 would be 200 MB per copy), and a frame that is mostly background costs little."""
    areas = np.zeros(count + 1, np.int64)
    sums = np.zeros(count + 1, np.float64)
    for rows in _row_chunks(labels.shape[0]):
        flat = labels[rows].ravel()
        inside = np.flatnonzero(flat)
        if inside.size:
            region = flat[inside]
            areas += np.bincount(region, minlength=count + 1)
            sums += np.bincount(region, weights=probability[rows].ravel()[inside], minlength=count + 1)
    return areas, sums


def _name(class_names: Sequence[str], index: int) -> str:
    return class_names[index] if index < len(class_names) else f"class_{index}"
