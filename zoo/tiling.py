"""Tiled inference for frames larger than a net should see at once (line-scan cameras: 8192 wide).

A frame above ``tile x tile`` pixels is cut into overlapping ``tile x tile`` windows; each window
is predicted alone and only its centre (the window less ``overlap`` pixels on every side that
has a neighbour) is written into the output, so each output pixel comes from the window where it
lies farthest from an edge. Windows on the frame's border sit flush with it, so every window
has the full tile size (a multiple of the net's divisor: no padding inside the frame). Memory is
bounded by the tile, not the frame; the masks match whole-frame inference except where a
pixel's receptive field reaches past ``overlap`` (benchmarks/serve_soak.py and the tests measure
how often).

One implementation serves both paths: ``nasseg predict`` (PyTorch, :mod:`zoo.inference`) and the
service (ONNX Runtime, :mod:`serving.service`) pass their own one-window predictor.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from nasseg.zoo.errors import NassegError

#: Frames above TILE x TILE pixels are tiled; windows overlap by OVERLAP on each inner side.
TILE = 1024
OVERLAP = 64

Predict = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class Abandoned(NassegError):
    """Tiled inference stopped at its deadline (the request that wanted it has been answered with 504)."""


@dataclass(frozen=True)
class Window:
    """One tile: where it is read (``y0:y1, x0:x1``) and which part of it is kept (``keep_*``, in frame
    coordinates)."""

    y0: int
    y1: int
    x0: int
    x1: int
    keep_y0: int
    keep_y1: int
    keep_x0: int
    keep_x1: int


def _spans(length: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(start, stop, keep_start, keep_stop) along one axis: windows ``tile - 2 * overlap`` apart (the
    last flush with the border); neighbours split their shared strip in the middle."""
    if length <= tile:
        return [(0, length, 0, length)]
    stride = tile - 2 * overlap
    starts = [*range(0, length - tile, stride), length - tile]
    bounds = [0, *((a + tile + b) // 2 for a, b in zip(starts[:-1], starts[1:], strict=True)), length]
    return [(start, start + tile, bounds[i], bounds[i + 1]) for i, start in enumerate(starts)]


def windows(height: int, width: int, tile: int = TILE, overlap: int = OVERLAP) -> list[Window]:
    """The windows covering a ``height x width`` frame; their kept parts partition it exactly."""
    if tile < 1 or overlap < 0 or 2 * overlap >= tile:
        raise ValueError(f"tile {tile} and overlap {overlap}: need tile >= 1 and 0 <= 2 * overlap < tile")
    return [Window(y0, y1, x0, x1, ky0, ky1, kx0, kx1)
            for y0, y1, ky0, ky1 in _spans(height, tile, overlap)
            for x0, x1, kx0, kx1 in _spans(width, tile, overlap)]  # fmt: skip


def tile_for(divisor: int, tile: int = TILE) -> int:
    """``tile`` rounded down to a multiple of the net's divisor (at least one divisor)."""
    return max(divisor, tile // divisor * divisor)


def needs_tiling(height: int, width: int, tile: int = TILE) -> bool:
    """True when a frame is larger than one tile in either side."""
    return height > tile or width > tile


def predict_tiled(
    frame: np.ndarray,
    predict: Predict,
    tile: int = TILE,
    overlap: int | None = None,
    deadline: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(mask uint8 (H, W), probability float32 (H, W)) of ``frame`` (H, W, C), window by window.

    ``predict`` maps one window ``(h, w, C)`` to its (mask, probability). ``overlap`` defaults to
    :data:`OVERLAP`, or a quarter of a smaller tile. ``deadline`` (a :func:`time.monotonic` value)
    stops the work between windows with :class:`Abandoned`.
    """
    overlap = min(OVERLAP, tile // 4) if overlap is None else overlap
    height, width = frame.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    probability = np.zeros((height, width), np.float32)
    for window in _iter(windows(height, width, tile, overlap), deadline):
        tile_mask, tile_probability = predict(frame[window.y0 : window.y1, window.x0 : window.x1])
        ys = slice(window.keep_y0 - window.y0, window.keep_y1 - window.y0)
        xs = slice(window.keep_x0 - window.x0, window.keep_x1 - window.x0)
        mask[window.keep_y0 : window.keep_y1, window.keep_x0 : window.keep_x1] = tile_mask[ys, xs]
        probability[window.keep_y0 : window.keep_y1, window.keep_x0 : window.keep_x1] = tile_probability[ys, xs]
    return mask, probability


def _iter(items: list[Window], deadline: float | None) -> Iterator[Window]:
    for item in items:
        if deadline is not None and time.monotonic() > deadline:
            raise Abandoned(f"tiled inference stopped after its deadline ({len(items)} windows)")
        yield item
