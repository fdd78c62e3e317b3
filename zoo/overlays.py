"""Pictures a person opens: prediction against truth, large enough to see, and a contact sheet.

:func:`compare_picture` upscales a frame (nearest neighbour, by a whole factor) to at least
:data:`MIN_SIDE` pixels, paints the prediction red and the truth green where a mask exists (both:
yellow), and writes the frame's IoU on it; :func:`contact_sheet` tiles such pictures into one
image (``overlays/sheet.png`` of ``nasseg demo`` and ``nasseg predict``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from nasseg.zoo.data.images import IMAGE_SUFFIXES, read_image

MIN_SIDE = 256
PREDICTED = np.array([255, 40, 40], np.float32)  # red
TRUTH = np.array([40, 220, 60], np.float32)  # green
BOTH = np.array([255, 220, 0], np.float32)  # yellow
ALPHA = 0.5


def frame_iou(mask: np.ndarray, truth: np.ndarray) -> float:
    """IoU of the foreground (any class > 0) of a predicted and a true mask (1 when both are empty)."""
    predicted, actual = mask > 0, truth > 0
    union = int((predicted | actual).sum())
    return int((predicted & actual).sum()) / union if union else 1.0


def compare_picture(image: np.ndarray, mask: np.ndarray, truth: np.ndarray | None = None,
                    min_side: int = MIN_SIDE, label: str | None = None) -> np.ndarray:  # fmt: skip
    """RGB uint8: ``image`` (float (H, W, C) in [0, 1]) with the prediction (red), the truth (green;
    yellow where both) and its IoU written on it, upscaled to at least ``min_side``."""
    rgb = image if image.shape[2] == 3 else np.repeat(image[:, :, :1], 3, axis=2)
    picture = (np.clip(rgb, 0, 1) * 255).astype(np.float32)
    predicted = mask > 0
    actual = truth > 0 if truth is not None else np.zeros_like(predicted)
    for where, colour in ((predicted & ~actual, PREDICTED), (actual & ~predicted, TRUTH), (predicted & actual, BOTH)):
        picture[where] = (1 - ALPHA) * picture[where] + ALPHA * colour
    scale = max(1, math.ceil(min_side / max(1, min(mask.shape))))
    big = np.repeat(np.repeat(picture.round().astype(np.uint8), scale, 0), scale, 1)
    score = f"IoU {frame_iou(mask, truth):.2f}" if truth is not None else None
    first = " ".join(part for part in (label, score) if part)
    legend = "red: predicted, green: truth, yellow: both" if truth is not None else "red: predicted"
    text = f"{first}\n{legend}" if first else legend
    out = Image.fromarray(big)
    draw = ImageDraw.Draw(out)
    box = draw.multiline_textbbox((4, 4), text)
    draw.rectangle((0, 0, box[2] + 4, box[3] + 4), fill=(0, 0, 0))
    draw.multiline_text((4, 4), text, fill=(255, 255, 255))
    return np.asarray(out)


def contact_sheet(pictures: Sequence[np.ndarray], columns: int = 4, gap: int = 4) -> np.ndarray:
    """The pictures in a grid (``columns`` wide), on a dark background."""
    if not pictures:
        raise ValueError("contact_sheet needs at least one picture")
    height = max(p.shape[0] for p in pictures)
    width = max(p.shape[1] for p in pictures)
    columns = min(columns, len(pictures))
    rows = math.ceil(len(pictures) / columns)
    sheet = np.full((rows * (height + gap) + gap, columns * (width + gap) + gap, 3), 30, np.uint8)
    for index, picture in enumerate(pictures):
        top, left = gap + (index // columns) * (height + gap), gap + (index % columns) * (width + gap)
        sheet[top : top + picture.shape[0], left : left + picture.shape[1]] = picture[..., :3]
    return sheet


def truth_for(image_path: Path) -> np.ndarray | None:
    """The mask of an image in the folder format (``.../images/NAME.ext`` -> ``.../masks/NAME.*``), or None."""
    if image_path.parent.name != "images":
        return None
    for suffix in IMAGE_SUFFIXES:
        candidate = image_path.parent.parent / "masks" / f"{image_path.stem}{suffix}"
        if candidate.is_file():
            mask = read_image(candidate)
            return mask if mask.ndim == 2 else mask[..., 0]
    return None
