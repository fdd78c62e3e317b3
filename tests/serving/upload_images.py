"""Image bytes for the serving tests: every mode and format the service must take, and broken ones."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

ORIENTATION = 0x0112


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth picture with a dark blob (gives the nets something other than noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = 120 + 60 * np.sin(x / 7.0)[..., None] * np.cos(y / 5.0)[..., None] * np.array([1.0, 0.8, 0.6])
    base[(y - height // 3) ** 2 + (x - width // 2) ** 2 < (min(height, width) // 5) ** 2] = 20
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def good_images() -> dict[str, tuple[str, bytes]]:
    """name -> (file name, bytes): modes and formats the service converts to the net's channels."""
    picture = rgb(37, 53)
    gray = picture.mean(axis=2).astype(np.uint8)
    rgba = np.dstack([picture, np.full(picture.shape[:2], 200, np.uint8)])
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # rotate 90 degrees clockwise on display: the mask must come back 53 x 37
    return {
        "rgb-odd-size": ("rgb.png", encode(Image.fromarray(picture))),
        "gray": ("gray.png", encode(Image.fromarray(gray))),
        "gray-alpha": ("la.png", encode(Image.fromarray(np.dstack([gray, gray])).convert("LA"))),
        "rgba": ("rgba.png", encode(Image.fromarray(rgba))),
        "palette": ("palette.png", encode(Image.fromarray(picture).quantize(16))),
        "gray-16bit": ("gray16.png", encode(Image.fromarray(gray.astype(np.uint16) * 257))),
        "cmyk-jpeg": ("cmyk.jpg", encode(Image.fromarray(picture).convert("CMYK"), "JPEG", quality=95)),
        "exif-rotated-jpeg": ("exif.jpg", encode(Image.fromarray(picture), "JPEG", quality=95, exif=exif)),
        "bmp": ("frame.bmp", encode(Image.fromarray(picture), "BMP")),
        "tiff": ("frame.tiff", encode(Image.fromarray(picture), "TIFF")),
        "one-pixel": ("one.png", encode(Image.fromarray(picture[:1, :1]))),
        "thin-strip": ("strip.png", encode(Image.fromarray(picture[:3, :]))),
    }


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width x height`` pixels in its header and holds a tiny (wrong) IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def corrupt_idat(png: bytes) -> bytes:
    """The PNG with the middle of its image data overwritten (CRC no longer matches)."""
    start = png.index(b"IDAT") + 8
    middle = start + (len(png) - start) // 3
    return png[:middle] + b"\x00" * 24 + png[middle + 24 :]
