"""What reaches the service: known paths only, an optional API key, and a JSON body on every error.

BentoML's metrics middleware is the outermost and labels each request with its path, so 3,000
distinct unknown paths once made ``/metrics`` 24 MB. :func:`bound_metric_labels` wraps that
middleware so that every path the service does not have is counted under one label,
:data:`UNKNOWN_PATH`; the original path travels in the scope for the error message. Then
:class:`GateMiddleware` (BentoML's service middleware):

- answers a request to a path the service does not have with a JSON 404;
- with an API key set (``--api-key`` or ``NASSEG_SERVE_API_KEY``), a request without
  ``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` gets a JSON 401; the probes (``/livez``,
  ``/healthz``, ``/readyz``) stay open for the orchestrator;
- every 4xx/5xx body leaves as one JSON object ``{"error": "..."}``: BentoML's ``[{"error": ...}]``
  is unwrapped, Starlette's plain-text 404/405 are wrapped, and a 503 says why it happened instead
  of BentoML's "An unexpected error has occurred" (with ``Retry-After``).
"""

from __future__ import annotations

import contextvars
import hmac
import json
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

#: Paths the service answers (BentoML's, the API's and the model card).
KNOWN_PATHS = frozenset({"/", "/docs.json", "/schema.json", "/segment", "/inspect", "/inspect_batch", "/model",
                         "/livez", "/healthz", "/readyz", "/metrics"})  # fmt: skip
UNKNOWN_PATH = "/unknown-path"
ORIGINAL_PATH = "nasseg.original_path"
PROBES = frozenset({"/livez", "/healthz", "/readyz"})
STATIC_PREFIX = "/static_content/"
UNAVAILABLE = ("the service cannot take this request now: the model is still warming up, the batch queue is over "
               "its latency budget (max_latency_ms), or it is busy with other frames above the tile size; retry "
               "shortly, or send fewer images at once")  # fmt: skip


def _static_dir() -> Path:
    import bentoml

    return Path(bentoml.__file__).parent / "_internal" / "server" / "static_content"


def is_known_path(path: str, static_dir: Path | None = None) -> bool:
    """True for the service's own paths and for files that really are in BentoML's static content."""
    if path in KNOWN_PATHS:
        return True
    if not path.startswith(STATIC_PREFIX):
        return False
    root = (static_dir or _static_dir()).resolve()
    target = (root / path[len(STATIC_PREFIX) :]).resolve()
    return target.is_relative_to(root) and target.is_file()


def presented_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The API key a request carries (``Authorization: Bearer KEY`` or ``X-API-Key: KEY``), if any."""
    for name, value in headers:
        name = name.lower()
        if name == b"x-api-key":
            return value.decode("latin-1").strip()
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].decode("latin-1").strip()
    return None


def error_body(body: bytes, status: int) -> bytes:
    """One JSON object ``{"error": ...}`` for an error response's body, whatever shape it came in."""
    try:
        value = json.loads(body)
    except ValueError:
        value = None
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        value = value[0]
    if status == HTTPStatus.SERVICE_UNAVAILABLE and (not isinstance(value, dict) or "unexpected" in str(value)):
        value = {"error": UNAVAILABLE}
    if not isinstance(value, dict) or "error" not in value:
        text = body.decode("utf-8", "replace").strip() if value is None else ""
        value = {"error": text or HTTPStatus(status).phrase}
    return json.dumps(value).encode()


async def _answer(send: Any, status: int, message: str, extra: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _refuse_websocket(scope: dict, receive: Any, send: Any) -> None:
    """The service has no WebSocket endpoint: 403 with a JSON body where the server can send one
    (the ASGI ``websocket.http.response`` extension), else a plain close (which the server turns into 403)."""
    await receive()  # websocket.connect
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps({"error": "this service has no WebSocket endpoint; POST images to /segment, /inspect or "
                                "/inspect_batch"}).encode()  # fmt: skip
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "websocket.http.response.start", "status": 403, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})


#: what to run when the current request ends (set by :class:`GateMiddleware`; tasks a request starts
#: copy the context and so share the list)
REQUEST_CLEANUPS: contextvars.ContextVar[list[Callable[[], Awaitable[None]]] | None] = contextvars.ContextVar(
    "nasseg_request_cleanups", default=None
)


class GateMiddleware:
    """ASGI middleware: unknown paths, the API key and JSON error bodies (see the module docstring)."""

    def __init__(self, app: Any, api_key: str | None = None) -> None:
        self.app = app
        self.api_key = api_key  # from the service settings (which read NASSEG_SERVE_API_KEY): one source
        self.static_dir = _static_dir()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await _refuse_websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get(ORIGINAL_PATH, scope.get("path", ""))
        if not is_known_path(path, self.static_dir):
            await _answer(send, 404, f"no such endpoint {path[:200]!r}; the service has POST /segment, /inspect, "
                                     "/inspect_batch and GET /model, /readyz, /livez, /metrics, / (docs)")  # fmt: skip
            return
        if self.api_key and path not in PROBES:
            key = presented_key(scope.get("headers", []))
            if key is None or not hmac.compare_digest(key.encode(), self.api_key.encode()):
                await _answer(send, 401, "missing or wrong API key: send the header 'Authorization: Bearer KEY' "
                              "or 'X-API-Key: KEY'", [(b"www-authenticate", b"Bearer")])  # fmt: skip
                return
        cleanups: list[Callable[[], Awaitable[None]]] = []
        token = REQUEST_CLEANUPS.set(cleanups)
        try:
            await self.app(scope, receive, _JsonErrors(send))
        finally:
            REQUEST_CLEANUPS.reset(token)
            for cleanup in reversed(cleanups):
                await cleanup()


def on_request_end(cleanup: Callable[[], Awaitable[None]]) -> None:
    """Run ``cleanup`` once the current request's answer is sent (or the request failed), whatever
    happened in between: what a request reserved (the large-frame slot) is always given back."""
    cleanups = REQUEST_CLEANUPS.get()
    if cleanups is None:
        raise RuntimeError("on_request_end outside a request that went through GateMiddleware")
    cleanups.append(cleanup)


def bound_metric_labels() -> None:
    """Wrap BentoML's traffic-metrics middleware (once) so unknown paths share the label :data:`UNKNOWN_PATH`.

    A patch of BentoML 1.4 internals (``RunnerTrafficMetricsMiddleware``, the outermost middleware of
    a ``@bentoml.service``); the soak benchmark and a test check that ``/metrics`` stays bounded."""
    from bentoml._internal.server.http import instruments

    middleware = instruments.RunnerTrafficMetricsMiddleware
    if getattr(middleware, "_nasseg_bounded", False):
        return
    original = middleware.__call__
    static_dir = _static_dir()

    async def bounded(self: Any, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope.get("type") == "http" and not is_known_path(path, static_dir):
            scope = {**scope, "path": UNKNOWN_PATH, ORIGINAL_PATH: path}
        await original(self, scope, receive, send)

    middleware.__call__ = bounded
    middleware._nasseg_bounded = True


class _JsonErrors:
    """An ASGI ``send`` that holds an error response's body and sends it again as one JSON object."""

    def __init__(self, send: Any) -> None:
        self.send = send
        self.start: dict | None = None
        self.body = b""

    async def __call__(self, message: dict) -> None:
        if message["type"] == "http.response.start" and message["status"] >= 400:
            self.start, self.body = message, b""
            return
        if self.start is None or message["type"] != "http.response.body":
            await self.send(message)
            return
        self.body += message.get("body", b"")
        if message.get("more_body", False):
            return
        status = self.start["status"]
        body = error_body(self.body, status)
        drop = (b"content-length", b"content-type")
        headers = [(k, v) for k, v in self.start["headers"] if k.lower() not in drop]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == HTTPStatus.SERVICE_UNAVAILABLE and not any(k.lower() == b"retry-after" for k, _ in headers):
            headers.append((b"retry-after", b"1"))
        await self.send({**self.start, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})
