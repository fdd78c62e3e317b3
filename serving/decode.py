"""Untrusted image bytes (an HTTP upload) to the uint8 frame a ``deploy`` graph takes.

Every fault is a :class:`DecodeError` with an HTTP status and a one-line message that says what
was wrong: empty or oversized uploads, bytes that are no PNG/JPEG/BMP/TIFF (sniffed by their
magic bytes, whatever the client declared), a declared image type that contradicts the bytes,
decompression bombs (the pixel count is checked from the header, before anything is decoded),
and truncated or corrupt files. Gray, gray+alpha, RGBA, palette, 16-bit and CMYK images are turned
into the net's channels, with EXIF orientation applied, exactly as ``nasseg predict`` reads files
(:func:`zoo.data.images.image_to_array`, ``to_float``, ``to_channels``).
"""

from __future__ import annotations

import io
import re
import struct
import warnings
from dataclasses import dataclass
from http import HTTPStatus

import numpy as np
from PIL import Image, UnidentifiedImageError

from nasseg.zoo.data.images import image_to_array, to_channels, to_float
from nasseg.zoo.errors import NassegError

#: PIL format name -> magic byte prefixes.
MAGIC: dict[str, tuple[bytes, ...]] = {
    "PNG": (b"\x89PNG\r\n\x1a\n",),
    "JPEG": (b"\xff\xd8\xff",),
    "BMP": (b"BM",),
    "TIFF": (b"II*\x00", b"MM\x00*"),
}
#: Formats recognised only to name them in the refusal.
UNSUPPORTED_MAGIC: dict[bytes, str] = {b"GIF8": "GIF", b"RIFF": "WebP (RIFF)", b"\x00\x00\x01\x00": "ICO",
                                      b"%PDF": "PDF", b"PK\x03\x04": "ZIP"}  # fmt: skip
#: Declared media types -> the format they name (other image/* types are refused as unsupported).
MEDIA_TYPES: dict[str, str] = {
    "image/png": "PNG", "image/x-png": "PNG", "image/apng": "PNG",
    "image/jpeg": "JPEG", "image/jpg": "JPEG", "image/pjpeg": "JPEG",
    "image/bmp": "BMP", "image/x-bmp": "BMP", "image/x-ms-bmp": "BMP",
    "image/tiff": "TIFF", "image/tif": "TIFF", "image/x-tiff": "TIFF",
}  # fmt: skip
#: Declared types that say nothing about the format (the bytes decide).
GENERIC_TYPES = ("", "application/octet-stream", "binary/octet-stream", "image/*")


class DecodeError(NassegError):
    """An upload that is not an image the service takes; ``status`` is the HTTP answer."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class DecodeLimits:
    """What one upload may be: bytes, decoded pixels, and the longest side (the deploy graph's bound)."""

    max_bytes: int = 20 * 2**20
    max_pixels: int = 25_000_000
    max_side: int = 8192
    max_request_pixels: int = 25_000_000


def sniff(data: bytes) -> str | None:
    """The PIL format name the magic bytes announce, or None."""
    return next((fmt for fmt, prefixes in MAGIC.items() if data.startswith(prefixes)), None)


def _looks_like_text(data: bytes) -> bool:
    head = data[:512]
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(byte >= 32 or byte in b"\t\n\r" for byte in head)


def _check_declared(declared: str | None, found: str) -> None:
    media = (declared or "").split(";")[0].strip().lower()
    if media in GENERIC_TYPES:
        return
    named = MEDIA_TYPES.get(media)
    if named is None:
        raise DecodeError(f"the upload is declared as {media!r}, which is no image type this service reads "
                          "(PNG, JPEG, BMP, TIFF)", HTTPStatus.UNSUPPORTED_MEDIA_TYPE)  # fmt: skip
    if named != found:
        raise DecodeError(f"the upload is declared as {media} but its bytes are a {found} image; "
                          "send it with its own content type")  # fmt: skip


def _open(data: bytes, fmt: str, limits: DecodeLimits) -> Image.Image:
    """Open (header only) and check the size before a pixel is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            handle = Image.open(io.BytesIO(data), formats=[fmt])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DecodeError(f"the {fmt} image has more than {limits.max_pixels} pixels (decompression bomb guard)",
                          HTTPStatus.REQUEST_ENTITY_TOO_LARGE) from None  # fmt: skip
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, TypeError, KeyError, IndexError,
            ZeroDivisionError, EOFError, struct.error) as exc:  # fmt: skip
        raise DecodeError(f"corrupt {fmt} header ({_first_line(exc)})") from None
    width, height = handle.size
    if width * height > limits.max_pixels:
        raise DecodeError(f"the {fmt} image is {width}x{height} = {width * height} pixels, more than the limit "
                          f"of {limits.max_pixels} (decompression bomb guard)",
                          HTTPStatus.REQUEST_ENTITY_TOO_LARGE)  # fmt: skip
    if max(width, height) > limits.max_side or min(width, height) < 1:
        raise DecodeError(f"the {fmt} image is {width}x{height}; each side must be 1 to {limits.max_side} pixels",
                          HTTPStatus.REQUEST_ENTITY_TOO_LARGE)  # fmt: skip
    return handle


def _first_line(exc: BaseException) -> str:
    """The exception's first line, without object addresses (``<... at 0x7f...>`` says nothing to a client)."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    line = re.sub(r"<(?:[\w.]*\.)?(\w+) object at 0x[0-9a-fA-F]+>", r"\1", line)
    return re.sub(r"\s*\bat 0x[0-9a-fA-F]+", "", line).strip() or type(exc).__name__


def to_frame(array: np.ndarray, channels: int) -> np.ndarray:
    """An image array (any dtype, gray/RGB(A)) as a contiguous uint8 ``(H, W, channels)`` frame, with the
    values ``nasseg predict`` feeds the net (scaled by the dtype's range, rounded to 8 bits)."""
    if array.ndim == 3 and array.shape[2] in (2, 4):
        array = array[:, :, :-1]  # alpha dropped, as to_channels does
    if array.dtype == np.uint8 and (array.ndim == 2 or array.shape[2] in (1, channels)):
        frame = array if array.ndim == 3 else array[:, :, None]
        return np.ascontiguousarray(np.broadcast_to(frame, (*frame.shape[:2], channels)))  # exact: no float round trip
    image = to_channels(to_float(array), channels)
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class FrameHeader:
    """What an upload's header says, read before a pixel is decoded."""

    fmt: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_header(data: bytes, declared: str | None = None, limits: DecodeLimits = DecodeLimits()) -> FrameHeader:
    """Check an upload up to its header (size, format, declared type, pixel and side limits) without
    decoding it: the service reserves memory by this before :func:`decode_frame` runs."""
    fmt, handle = _checked_open(data, declared, limits)
    with handle:
        return FrameHeader(fmt, *handle.size)


def _checked_open(data: bytes, declared: str | None, limits: DecodeLimits) -> tuple[str, Image.Image]:
    if not data:
        raise DecodeError("the image is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise DecodeError(f"the image is {len(data)} bytes, more than the limit of {limits.max_bytes}",
                          HTTPStatus.REQUEST_ENTITY_TOO_LARGE)  # fmt: skip
    fmt = sniff(data)
    if fmt is None:
        known = next((name for magic, name in UNSUPPORTED_MAGIC.items() if data.startswith(magic)), None)
        text = "text" if _looks_like_text(data) else f"bytes starting {data[:8].hex(' ')}"
        what = f"a {known} file" if known else text
        raise DecodeError(f"the upload is not an image this service reads (PNG, JPEG, BMP, TIFF): it is {what}",
                          HTTPStatus.UNSUPPORTED_MEDIA_TYPE)  # fmt: skip
    _check_declared(declared, fmt)
    return fmt, _open(data, fmt, limits)


def decode_frame(data: bytes, channels: int, declared: str | None = None,
                 limits: DecodeLimits = DecodeLimits()) -> np.ndarray:  # fmt: skip
    """Decode an uploaded image into a uint8 ``(H, W, channels)`` frame (see the module docstring)."""
    fmt, handle = _checked_open(data, declared, limits)
    try:
        with handle:
            array = image_to_array(handle)
        return to_frame(array, channels)
    except (OSError, ValueError, SyntaxError, EOFError, TypeError, KeyError, IndexError, ZeroDivisionError,
            MemoryError, struct.error) as exc:  # Pillow's plugins raise these on crafted headers (a DOUBLE offset)
        raise DecodeError(f"truncated or corrupt {fmt} data ({_first_line(exc)})") from None
