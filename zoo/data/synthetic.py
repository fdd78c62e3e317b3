"""Bundled data sets, generated deterministically from a seed (no download, ever).

``synth-defects``: textured surfaces (procedural noise, brushed metal, weave, and the texture
photographs scikit-image ships: brick, grass, gravel) with low-contrast scratches, cracks,
stains and pits covering a few percent of the pixels; a fifth of the images are defect-free, as
in DAGM. With ``pairs=True`` it also writes each image's defect-free twin as a translation pair
(``pairs/A`` defective, ``pairs/B`` clean). ``synth-membranes``: electron-microscopy-like
tissue, as in the ISBI EM set: a Voronoi tessellation of cells with dark membrane walls, dark
organelles (not labelled), blur and noise; the mask marks membranes.

Each sample ``i`` draws from ``numpy.random.default_rng([seed, i])``, so a sample does not
depend on how many others are made.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from nasseg.zoo._version import __version__
from nasseg.zoo.data.images import write_png
from nasseg.zoo.errors import NassegError
from nasseg.zoo.io import atomic_write_text

SPLIT_FRACTIONS = (("train", 0.7), ("val", 0.15), ("test", 0.15))


def _smooth_noise(rng: np.random.Generator, size: int, scales: tuple[float, ...]) -> np.ndarray:
    total = np.zeros((size, size), np.float32)
    for i, sigma in enumerate(scales):
        layer = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), sigma, mode="wrap")
        total += layer / (layer.std() + 1e-6) / (i + 1)
    return total


def _photo(rng: np.random.Generator, size: int) -> np.ndarray:
    from skimage import data as skdata
    from skimage.transform import resize

    photo = getattr(skdata, str(rng.choice(["brick", "grass", "gravel"])))().astype(np.float32) / 255.0
    side = int(rng.integers(min(size, photo.shape[0]) // 2, photo.shape[0] + 1))
    top, left = (int(rng.integers(photo.shape[i] - side + 1)) for i in (0, 1))
    return resize(photo[top : top + side, left : left + side], (size, size), anti_aliasing=True).astype(np.float32)


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A background in [0, 1] with mean near 0.5 and low contrast."""
    kind = rng.choice(["noise", "brushed", "weave", "photo"])
    if kind == "noise":
        base = _smooth_noise(rng, size, (1.0, 4.0, 16.0))
    elif kind == "brushed":
        base = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), (0.5, size / 8))
        base = ndimage.rotate(base, float(rng.uniform(0, 180)), reshape=False, mode="wrap")
        base += 0.3 * _smooth_noise(rng, size, (8.0,))
    elif kind == "weave":
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        period = rng.uniform(6, 14)
        base = np.sin(2 * np.pi * xx / period) * np.sin(2 * np.pi * yy / period) + 0.5 * _smooth_noise(
            rng, size, (2.0,)
        )
    else:
        base = _photo(rng, size)
    base = (base - base.mean()) / (base.std() + 1e-6)
    return np.clip(0.5 + base * rng.uniform(0.05, 0.12), 0, 1).astype(np.float32)


def _polyline(rng: np.random.Generator, size: int, steps: int, turn: float, step: float) -> list[np.ndarray]:
    point = rng.uniform(0.1 * size, 0.9 * size, 2)
    angle = rng.uniform(0, 2 * np.pi)
    points = [point]
    for _ in range(steps):
        angle += rng.normal(0, turn)
        point = point + step * np.array([np.sin(angle), np.cos(angle)])
        points.append(point)
    return points


def _draw(points: list[np.ndarray], size: int, width: float) -> np.ndarray:
    from skimage.draw import line

    canvas = np.zeros((size, size), bool)
    for a, b in zip(points[:-1], points[1:], strict=False):
        rr, cc = line(int(a[0]), int(a[1]), int(b[0]), int(b[1]))
        keep = (rr >= 0) & (rr < size) & (cc >= 0) & (cc < size)
        canvas[rr[keep], cc[keep]] = True
    if width > 1:
        canvas = ndimage.binary_dilation(canvas, iterations=int(round(width / 2)))
    return canvas


def _scratch(rng: np.random.Generator, size: int) -> np.ndarray:
    return _draw(_polyline(rng, size, int(rng.integers(2, 5)), 0.15, size / 8), size, float(rng.uniform(1, 2)))


def _crack(rng: np.random.Generator, size: int) -> np.ndarray:
    canvas = _draw(_polyline(rng, size, int(rng.integers(12, 30)), 0.6, size / 40), size, float(rng.uniform(1, 3)))
    for _ in range(int(rng.integers(1, 3))):  # branches from a point of the crack
        rows, cols = np.nonzero(canvas)
        if rows.size == 0:
            break
        j = int(rng.integers(rows.size))
        branch = _polyline(rng, size, int(rng.integers(4, 10)), 0.6, size / 50)
        branch = [p - branch[0] + np.array([rows[j], cols[j]]) for p in branch]
        canvas |= _draw(branch, size, 1)
    return canvas


def _stain(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = rng.uniform(0.15 * size, 0.85 * size, 2)
    ry, rx = rng.uniform(0.03 * size, 0.09 * size, 2)
    theta = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u, v = dy * np.cos(theta) + dx * np.sin(theta), -dy * np.sin(theta) + dx * np.cos(theta)
    wobble = 0.25 * _smooth_noise(rng, size, (size / 16,))
    return (u / ry) ** 2 + (v / rx) ** 2 + wobble < 1.0


def _pits(rng: np.random.Generator, size: int) -> np.ndarray:
    canvas = np.zeros((size, size), bool)
    center = rng.uniform(0.15 * size, 0.85 * size, 2)
    yy, xx = np.mgrid[0:size, 0:size]
    for _ in range(int(rng.integers(3, 9))):
        cy, cx = center + rng.normal(0, size / 20, 2)
        canvas |= (yy - cy) ** 2 + (xx - cx) ** 2 <= rng.uniform(1.0, 3.0) ** 2
    return canvas


DEFECTS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "scratch": _scratch,
    "crack": _crack,
    "stain": _stain,
    "pits": _pits,
}


@dataclass(frozen=True)
class Difficulty:
    """How visible synth-defects' defects are: ``contrast`` scales the intensity step of a defect
    (``hard``: 0.08-0.22, about one background std, like DAGM), ``grow`` dilates each defect shape
    by that many pixels (thin scratches become learnable at a few hundred optimiser steps)."""

    contrast: float
    grow: int


DIFFICULTIES: dict[str, Difficulty] = {
    "hard": Difficulty(contrast=1.0, grow=0),  # the DAGM-like default: unet-small needs minutes to see it
    "medium": Difficulty(contrast=1.8, grow=1),
    "easy": Difficulty(contrast=3.0, grow=2),  # learnable at search fidelity (a few hundred steps at 64 px)
}


def defect_sample(
    rng: np.random.Generator, size: int, difficulty: str = "hard"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image with defects, defect-free image, binary mask), images uint8 gray.

    ``difficulty`` (:data:`DIFFICULTIES`) scales contrast and defect width only: the random draws
    are the same, so a sample of one seed has its defects at the same places at every difficulty.
    """
    level = DIFFICULTIES[difficulty]
    clean = _texture(rng, size)
    image = clean.copy()
    mask = np.zeros((size, size), bool)
    if rng.random() >= 0.2:
        for _ in range(int(rng.integers(1, 3))):
            shape = DEFECTS[str(rng.choice(list(DEFECTS)))](rng, size)
            if level.grow:
                shape = ndimage.binary_dilation(shape, iterations=level.grow)
            soft = ndimage.gaussian_filter(shape.astype(np.float32), 0.7)
            delta = level.contrast * rng.uniform(0.08, 0.22) * rng.choice([-1.0, 1.0])
            image = image + delta * soft * (1 + 0.3 * rng.standard_normal((size, size)).astype(np.float32))
            mask |= shape
    noise = rng.normal(0, 0.015, (size, size)).astype(np.float32)
    as_uint8 = lambda x: (np.clip(x + noise, 0, 1) * 255).round().astype(np.uint8)  # noqa: E731
    return as_uint8(image), as_uint8(clean), mask.astype(np.uint8)


def membrane_sample(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(EM-like image uint8, membrane mask 0/1)."""
    spacing = rng.uniform(20, 30)  # jittered grid: seeds never coincide, so walls stay thin
    grid = np.arange(-spacing / 2, size + spacing, spacing)
    seeds = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)
    seeds = seeds + rng.uniform(-0.35, 0.35, seeds.shape) * spacing
    cells = len(seeds)
    yy, xx = np.mgrid[0:size, 0:size]
    points = np.stack([yy.ravel(), xx.ravel()], axis=1).astype(np.float32)
    distances, owner = cKDTree(seeds).query(points, k=2)
    wall = ((distances[:, 1] - distances[:, 0]) < rng.uniform(1.2, 2.5)).reshape(size, size)
    shade = rng.uniform(0.55, 0.8, cells).astype(np.float32)[owner[:, 0]].reshape(size, size)
    image = shade + 0.05 * _smooth_noise(rng, size, (1.5, 6.0))
    for _ in range(int(rng.integers(cells // 2, cells * 2))):  # organelles: dark ellipses, not membrane
        cy, cx = rng.uniform(0, size, 2)
        ry, rx = rng.uniform(1.5, 5.0, 2)
        blob = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        image[blob & ~wall] = rng.uniform(0.25, 0.4)
    image[wall] = rng.uniform(0.12, 0.25)
    image = ndimage.gaussian_filter(image, rng.uniform(0.6, 1.2))
    image = image + rng.normal(0, 0.04, (size, size))
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), wall.astype(np.uint8)


DATASETS = {
    "synth-defects": ["background", "defect"],
    "synth-membranes": ["cell", "membrane"],
}


def check_options(name: str, n: int, size: int, pairs: bool = False, difficulty: str = "hard") -> None:
    """Raise a one-line :class:`NassegError` for options :func:`make_dataset` cannot honour."""
    if name not in DATASETS:
        raise NassegError(f"unknown data set {name!r}; bundled: {', '.join(DATASETS)}")
    if difficulty not in DIFFICULTIES:
        raise NassegError(f"{name}: unknown difficulty {difficulty!r}; choose {', '.join(DIFFICULTIES)}")
    if difficulty != "hard" and name != "synth-defects":
        raise NassegError(f"{name}: --difficulty applies to synth-defects only")
    if n < 3 or size < 16:
        raise NassegError(f"{name}: need n >= 3 samples of size >= 16, got n={n}, size={size}")
    if pairs and name != "synth-defects":
        raise NassegError(f"{name}: translation pairs exist for synth-defects only")


def make_dataset(name: str, out: str | Path, n: int = 60, size: int = 128, seed: int = 0, pairs: bool = False,
                 progress: Callable[[int], None] | None = None, difficulty: str = "hard") -> Path:  # fmt: skip
    """Write bundled data set ``name`` with ``n`` samples of ``size`` x ``size`` to ``out`` in the
    folder format (70/15/15 train/val/test, ``dataset.json``); returns ``out``. ``difficulty``
    (synth-defects only: ``hard``, the DAGM-like default, ``medium`` or ``easy``) sets how visible
    the defects are."""
    check_options(name, n, size, pairs, difficulty)
    out = Path(out)
    bounds, start = [], 0
    for split, fraction in SPLIT_FRACTIONS:
        count = n - start if split == "test" else max(1, round(fraction * n))
        bounds.append((split, start, start + count))
        start += count
    for split, first, last in bounds:
        for i in range(first, last):
            rng = np.random.default_rng([seed, i])
            stem = f"{name}-{seed}-{i:05d}"
            if name == "synth-defects":
                image, clean, mask = defect_sample(rng, size, difficulty)
                if pairs:
                    write_png(out / "pairs" / "A" / f"{stem}.png", image)
                    write_png(out / "pairs" / "B" / f"{stem}.png", clean)
            else:
                image, mask = membrane_sample(rng, size)
            write_png(out / split / "images" / f"{stem}.png", image)
            write_png(out / split / "masks" / f"{stem}.png", mask * 255)
            if progress is not None:
                progress(1)
    meta = {"name": name, "classes": DATASETS[name], "n": n, "size": size, "seed": seed,
            "generator": f"nasseg {__version__}"}  # fmt: skip
    if name == "synth-defects":
        meta["difficulty"] = difficulty
    atomic_write_text(out / "dataset.json", json.dumps(meta, indent=2) + "\n")
    return out
