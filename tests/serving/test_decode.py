"""Hardened decoding of uploaded bytes (serving.decode): limits, sniffing, modes, and the same frames
as ``nasseg predict`` reads from files."""

from __future__ import annotations

import re
from http import HTTPStatus
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from upload_images import corrupt_idat, encode, good_images, png_header_only, rgb

from nasseg.serving.decode import DecodeError, DecodeLimits, decode_frame, sniff, to_frame
from nasseg.zoo.data.images import read_image, to_channels, to_float

GOOD = good_images()


def _reference(path: Path, channels: int) -> np.ndarray:
    """The frame OnnxSegmenter.predict_file builds from a file (what nasseg predict --onnx feeds the net)."""
    image = to_channels(to_float(read_image(path)), channels)
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", sorted(GOOD))
@pytest.mark.parametrize("channels", [1, 3])
def test_frames_match_what_predict_reads_from_files(name: str, channels: int, tmp_path: Path) -> None:
    filename, data = GOOD[name]
    (tmp_path / filename).write_bytes(data)
    frame = decode_frame(data, channels)
    assert frame.dtype == np.uint8 and frame.flags.c_contiguous and frame.shape[2] == channels
    np.testing.assert_array_equal(frame, _reference(tmp_path / filename, channels))


def test_exif_orientation_is_applied() -> None:
    assert decode_frame(GOOD["exif-rotated-jpeg"][1], 3).shape == (53, 37, 3)


def test_uint8_fast_path_equals_float_path() -> None:
    picture = rgb(9, 11)
    for array in (picture, picture[:, :, 0], picture[:, :, :1]):
        float_path = np.clip(np.round(to_channels(to_float(array), 3) * 255.0), 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(to_frame(array, 3), float_path)


def test_sniff_by_magic_bytes() -> None:
    assert sniff(GOOD["rgb-odd-size"][1]) == "PNG"
    assert sniff(GOOD["cmyk-jpeg"][1]) == "JPEG"
    assert sniff(GOOD["bmp"][1]) == "BMP"
    assert sniff(GOOD["tiff"][1]) == "TIFF"
    assert sniff(b"GIF89a....") is None


PNG = GOOD["rgb-odd-size"][1]
JPEG = GOOD["cmyk-jpeg"][1]
BAD = {
    "empty": (b"", None, HTTPStatus.BAD_REQUEST, "empty (0 bytes)"),
    "random": (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), None,
               HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "not an image"),
    "text": (b"hello, this is not a picture\n" * 10, "image/png", HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "it is text"),
    "gif": (encode(Image.fromarray(rgb(8, 8)), "GIF"), None, HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "not an image"),
    "truncated-png": (PNG[: len(PNG) // 2], None, HTTPStatus.BAD_REQUEST, "truncated or corrupt PNG"),
    "truncated-jpeg": (JPEG[: len(JPEG) // 2], None, HTTPStatus.BAD_REQUEST, "truncated or corrupt JPEG"),
    "corrupt-png": (corrupt_idat(PNG), None, HTTPStatus.BAD_REQUEST, "corrupt PNG"),
    "png-labelled-jpeg": (PNG, "image/jpeg", HTTPStatus.BAD_REQUEST, "declared as image/jpeg but its bytes are a PNG"),
    "declared-gif": (PNG, "image/gif", HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "declared as 'image/gif'"),
    "pixel-bomb": (png_header_only(100_000, 100_000), None, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "pixels"),
    "too-long-side": (png_header_only(9000, 1), None, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "each side must be"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_uploads_say_what_is_wrong(name: str) -> None:
    data, declared, status, words = BAD[name]
    with pytest.raises(DecodeError, match=re.escape(words)) as info:
        decode_frame(data, 3, declared)
    assert info.value.status == status
    assert "\n" not in str(info.value)


def test_limits_are_configurable() -> None:
    with pytest.raises(DecodeError, match="more than the limit of 100") as info:
        decode_frame(PNG, 3, limits=DecodeLimits(max_bytes=100))
    assert info.value.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    with pytest.raises(DecodeError, match="37x53|53x37") as info:
        decode_frame(PNG, 3, limits=DecodeLimits(max_pixels=1000))
    assert info.value.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE


@pytest.mark.parametrize(
    "declared", [None, "", "application/octet-stream", "image/*", "image/png; charset=x", "image/x-png"]
)
def test_generic_or_matching_content_types_are_accepted(declared: str | None) -> None:
    assert decode_frame(PNG, 3, declared).shape == (37, 53, 3)


def test_errors_name_no_object_address() -> None:
    png = bytearray(encode(Image.fromarray(rgb(16, 16))))
    png[29] ^= 0xFF  # the IHDR checksum
    with pytest.raises(DecodeError) as info:
        decode_frame(bytes(png), 3)
    assert not re.search(r"0x[0-9a-f]{6,}", str(info.value)), str(info.value)
    from nasseg.serving.decode import _first_line

    text = _first_line(
        SyntaxError("broken PNG file (bad header checksum in <PIL.PngImagePlugin.PngStream object at 0x7f3a>)")
    )
    assert text == "broken PNG file (bad header checksum in PngStream)"
