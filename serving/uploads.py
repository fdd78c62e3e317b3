"""HTTP side of the service's inputs: multipart uploads read under limits and decoded into frames,
client faults as 4xx JSON errors (one JSON object each: :mod:`serving.gate`).

BentoML's own multipart parsing reads bodies of any size, fetches a URL given in place of a
file and answers some malformed inputs with 500, so the service's input specs read the request
here instead: the ``Content-Length`` and the streamed byte count are held to the body limit (413),
the form must be ``multipart/form-data`` (415) with the named file field (400), and every upload
goes through :func:`serving.decode.decode_frame` in a worker thread (the event loop stays free).
"""

from __future__ import annotations

import logging
import time
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import anyio.to_thread
import numpy as np
from bentoml.exceptions import BentoMLException, ServiceUnavailable
from pydantic_core import core_schema
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from nasseg.serving.decode import DecodeError, DecodeLimits, FrameHeader, decode_frame, read_header

MAX_FORM_FIELDS = 16
#: the service's reservation for a request's frames, by their (width, height): awaited before decoding
Reserve = Callable[[list[tuple[int, int]]], Awaitable[None]]


class ClientError(BentoMLException):
    """A request the service refuses; BentoML answers it with ``status`` and ``{"error": message}``."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message, error_code=status)


@dataclass
class Upload:
    """One decoded image: the uint8 ``(H, W, C)`` frame, its file name, when its request arrived."""

    frame: np.ndarray
    filename: str | None
    received: float
    decode_ms: float


class UploadField:
    """Pydantic marker for an :class:`Upload` field: no validation (the input spec decodes), and a
    ``file``/``image`` JSON schema so the OpenAPI page offers a file picker."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.any_schema()

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: Any) -> dict[str, Any]:
        return {"type": "file", "format": "image"} if handler.mode == "validation" else {"type": "string"}


async def _limited(request: Request, max_bytes: int, timeout_s: float) -> AsyncIterator[bytes]:
    """The body's chunks, held to ``max_bytes`` (413) and to ``timeout_s`` for the whole body (408):
    a client that sends headers and then stalls frees its concurrency slot after ``timeout_s``."""
    received = 0
    deadline = anyio.current_time() + timeout_s
    stream = request.stream()
    while True:
        with anyio.move_on_after(max(deadline - anyio.current_time(), 0)) as scope:
            try:
                chunk = await stream.__anext__()
            except StopAsyncIteration:
                return
        if scope.cancelled_caught:
            raise ClientError(f"the request body did not arrive within {timeout_s:g} s ({received} bytes came)",
                              HTTPStatus.REQUEST_TIMEOUT)  # fmt: skip
        received += len(chunk)
        if received > max_bytes:
            raise ClientError(f"request body is over the limit of {max_bytes} bytes",
                              HTTPStatus.REQUEST_ENTITY_TOO_LARGE)  # fmt: skip
        yield chunk


async def read_form(request: Request, max_bytes: int, max_files: int = 1, body_timeout_s: float = 10.0) -> Any:
    """The multipart form of ``request``, read under the body limit and the body-read timeout (a few
    more files than ``max_files`` are parsed, so that the caller can say how many it takes)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise ClientError(f"request body of {length} bytes is over the limit of {max_bytes} bytes",
                          HTTPStatus.REQUEST_ENTITY_TOO_LARGE)  # fmt: skip
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "multipart/form-data":
        raise ClientError(f"send the image as a multipart/form-data file field, e.g. curl -F image=@frame.png "
                          f"(got content type {media or 'none'!r})", HTTPStatus.UNSUPPORTED_MEDIA_TYPE)  # fmt: skip
    body = _limited(request, max_bytes, body_timeout_s)
    parser = MultiPartParser(request.headers, body, max_files=max_files + MAX_FORM_FIELDS,
                             max_fields=MAX_FORM_FIELDS, max_part_size=64 * 2**10)  # fmt: skip
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise ClientError(f"unreadable multipart/form-data body ({exc.message})") from None


async def read_images(request: Request, field: str, channels: int, limits: DecodeLimits,
                      max_images: int = 1, body_timeout_s: float = 10.0,
                      reserve: Reserve | None = None) -> list[Upload]:  # fmt: skip
    """The decoded files of form field ``field`` (exactly one unless ``max_images`` > 1), their
    pixels together held to ``limits.max_request_pixels`` (413).

    Every file's header is read and checked first; then ``reserve(sizes)`` (the service's large-frame
    slot) is awaited with the (width, height) of all of them, and only then is anything decoded: a
    request's decode buffers exist only once the memory for them is reserved."""
    received = time.perf_counter()
    form = await read_form(request, limits.max_bytes, max_images, body_timeout_s)
    try:
        values = form.getlist(field)
        if not values:
            names = ", ".join(repr(k) for k in form.keys()) or "none"
            raise ClientError(f"missing form field {field!r} with the image file (fields sent: {names}); "
                              f"e.g. curl -F {field}=@frame.png")  # fmt: skip
        texts = [v for v in values if not isinstance(v, UploadFile)]
        if texts:
            raise ClientError(f"form field {field!r} must be a file upload (curl -F {field}=@frame.png), "
                              "not a text value or URL")  # fmt: skip
        if len(values) > max_images:
            hint = "; /inspect_batch takes several" if max_images == 1 else ""
            raise ClientError(f"form field {field!r} holds {len(values)} files; at most {max_images}{hint}")
        files, pixels = [], 0
        for value in values:
            data = await value.read()
            header = await _header(data, value, limits)
            pixels += header.pixels
            if pixels > limits.max_request_pixels:
                raise ClientError(f"the request's images hold more than {limits.max_request_pixels} pixels in all "
                                  f"(the limit per request); send fewer or smaller images",
                                  HTTPStatus.REQUEST_ENTITY_TOO_LARGE)  # fmt: skip
            files.append((value, data, header))
        if reserve is not None:
            await reserve([(h.width, h.height) for _, _, h in files])
        return [await _decode(value, data, channels, limits, received) for value, data, _ in files]
    finally:
        await form.close()


def clean_filename(name: str | None) -> str | None:
    """An upload's file name as the service repeats it: control characters dropped, at most 255 characters."""
    if name is None:
        return None
    cleaned = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp"))
    return cleaned[:255] or None


async def _header(data: bytes, upload: UploadFile, limits: DecodeLimits) -> FrameHeader:
    try:
        return await anyio.to_thread.run_sync(read_header, data, upload.content_type, limits)
    except DecodeError as exc:
        name = clean_filename(upload.filename)
        raise ClientError(f"{name + ': ' if name else ''}{exc}", exc.status) from None


async def _decode(upload: UploadFile, data: bytes, channels: int, limits: DecodeLimits, received: float) -> Upload:
    start = time.perf_counter()
    filename = clean_filename(upload.filename)
    try:
        frame = await anyio.to_thread.run_sync(decode_frame, data, channels, upload.content_type, limits)
    except DecodeError as exc:
        name = f"{filename}: " if filename else ""
        raise ClientError(f"{name}{exc}", exc.status) from None
    return Upload(frame, filename, received, (time.perf_counter() - start) * 1000)


class _ClientFaultFilter(logging.Filter):
    """BentoML logs every refused request with a traceback at ERROR; a client fault gets one WARNING line."""

    def filter(self, record: logging.LogRecord) -> bool:
        fault = record.exc_info[1] if record.exc_info else None
        if isinstance(fault, ClientError | ServiceUnavailable):
            status = int(fault.error_code)
            record.msg, record.args = "%s refused (%d): %s", (record.getMessage(), status, fault.message)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


REQUEST_ERROR_LOGGERS = ("bentoml._internal.server.http_app",)


def quiet_client_faults(loggers: tuple[str, ...] = REQUEST_ERROR_LOGGERS) -> None:
    """Install :class:`_ClientFaultFilter` on BentoML's request-error loggers (once each)."""
    for name in loggers:
        target = logging.getLogger(name)
        if not any(isinstance(f, _ClientFaultFilter) for f in target.filters):
            target.addFilter(_ClientFaultFilter())
