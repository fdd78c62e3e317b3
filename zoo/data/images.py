"""Reading and writing images for datasets: PNG, JPEG, BMP, TIFF; gray, RGB(A), palette, 16-bit.

Images come back as numpy arrays, ``(H, W)`` or ``(H, W, C)``, in their own dtype (uint8 or
uint16; 32-bit integer and float TIFFs stay as they are), with EXIF orientation applied.
"""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from nasseg.zoo.errors import NassegError
from nasseg.zoo.io import atomic_output

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
Image.MAX_IMAGE_PIXELS = 2**28  # refuse decompression bombs beyond ~268 Mpixel


class ImageReadError(NassegError):
    """A file that should be an image cannot be read."""


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file into a numpy array (see the module docstring for shapes and dtypes)."""
    path = Path(path)
    require_regular_file(path)
    try:
        with Image.open(path) as handle:
            return image_to_array(handle)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageReadError(
            f"{path}: not a readable image ({str(exc).splitlines()[0] if str(exc) else exc})"
        ) from None


def require_regular_file(path: Path) -> None:
    """:class:`ImageReadError` unless ``path`` is a regular file (a FIFO or device would block a read forever)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ImageReadError(f"{path}: not a readable image ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        raise ImageReadError(f"{path}: not a regular file ({file_kind(mode)}); skipped")


def file_kind(mode: int) -> str:
    """A word for a file's type: fifo, socket, device, folder or file."""
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "folder" if stat.S_ISDIR(mode) else "file"


def image_to_array(handle: Image.Image) -> np.ndarray:
    """An opened PIL image as :func:`read_image` returns it (EXIF orientation applied, modes converted).
    PIL's errors (truncated or corrupt data) pass through."""
    handle = ImageOps.exif_transpose(handle)
    if handle.mode == "1":
        handle = handle.convert("L")
    elif handle.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
        handle = handle.convert("RGBA" if "A" in handle.mode or "transparency" in handle.info else "RGB")
    array = np.asarray(handle)
    if array.dtype == np.int32 and array.min() >= 0 and array.max() < 2**16:  # PIL's "I" mode for 16-bit files
        array = array.astype(np.uint16)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    return array


def to_float(image: np.ndarray) -> np.ndarray:
    """Scale an image to float32 in [0, 1] by its dtype's range (floats are kept as they are)."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    if np.issubdtype(image.dtype, np.integer):
        top = float(max(int(image.max()), 1))
        return image.astype(np.float32) / top
    return image.astype(np.float32)


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """An ``(H, W, channels)`` float image: gray repeated to RGB, RGB averaged to gray, alpha dropped."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] in (2, 4):  # gray+alpha, RGBA
        image = image[:, :, :-1]
    if image.shape[2] == channels:
        return image
    if channels == 1:
        return image.mean(axis=2, keepdims=True).astype(image.dtype)
    if image.shape[2] == 1:
        return np.repeat(image, channels, axis=2)
    raise ValueError(f"cannot turn a {image.shape[2]}-channel image into {channels} channels")


def write_png(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8/uint16 gray or RGB(A) array as PNG (parent folders are created)."""
    with atomic_output(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")
