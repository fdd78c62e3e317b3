"""The BentoML service: masks and defect reports for camera frames over HTTP.

``bentoml serve serving.service:Segmenter`` (``nasseg serve NAME_OR_ONNX`` starts it) with the
model and limits from :mod:`serving.settings` (``NASSEG_SERVE_*`` or ``--arg``). Each worker opens
its sessions on the ``deploy`` graph (:mod:`serving.session_pool`: a wide one on all its threads for
a lone request, narrow ones side by side under load), warms them up, and then answers ``/readyz``.

- ``POST /segment``: multipart file field ``image`` -> the mask as PNG, the (EXIF-oriented) image's size;
- ``POST /inspect``: multipart file field ``image`` -> JSON: verdict, defects, model, arch hash, latency;
- ``POST /inspect_batch``: file field ``images``, repeated -> a JSON list, one inspection per image;
- ``GET /model``: the model card (:func:`serving.card.card_from_onnx`); BentoML's ``/livez``,
  ``/readyz`` (ready once the session is warm) and ``/metrics`` stay as they are.

``/inspect_batch`` is batchable: BentoML merges concurrent requests into batches of up to
``max_batch_size`` images within ``max_latency_ms``. Inference runs on the pool's sessions (its
``threads`` are the worker's whole budget); decoding and encoding run beside it in threads.
Client faults are 4xx ``{"error": "..."}`` (see :mod:`serving.uploads`); more than
``max_concurrency`` requests in flight get 429, a request past ``timeout_s`` gets 504 and its
work stops at the next tile or batch. Frames above ``tile`` x ``tile`` pixels (line-scan cameras)
run in overlapping tiles (:mod:`zoo.tiling`): memory stays bounded by the tile, and other requests
get the session between tiles. A request's images hold at most ``max_request_pixels`` in all
(413), and its body must arrive within ``body_timeout_s`` (408). Unknown paths, the optional API
key and JSON error bodies are handled in :mod:`serving.gate`.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import io
import logging
import threading
import time
from pathlib import Path
from typing import Annotated, Any, ClassVar

import anyio.to_thread
import bentoml
import numpy as np
from bentoml.exceptions import ServiceUnavailable
from PIL import Image
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from nasseg.serving.defects import find_defects
from nasseg.serving.gate import GateMiddleware, bound_metric_labels, on_request_end
from nasseg.serving.resolve import resolve_onnx
from nasseg.serving.runtime import OnnxSegmenter, default_threads, providers_for
from nasseg.serving.session_pool import SessionPool, WideLock, default_streams
from nasseg.serving.settings import ServeSettings, SettingsError, load_settings
from nasseg.serving.uploads import Upload, UploadField, quiet_client_faults, read_images
from nasseg.zoo.tiling import Abandoned

logger = logging.getLogger("nasseg.serve")
SETTINGS: ServeSettings = load_settings(vars(bentoml.use_arguments()))
UploadIn = Annotated[Upload, UploadField()]
WARMUP_SIZE = 64


# -- responses ---------------------------------------------------------------------------------


class BBox(BaseModel):
    x: int
    y: int
    width: int
    height: int


class DefectOut(BaseModel):
    class_index: int
    class_name: str
    bbox: BBox
    area: int
    mean_probability: float


class InspectionOut(BaseModel):
    """One frame's inspection: ``verdict`` is NG when a defect covers at least ``min_defect_area`` pixels."""

    verdict: str
    defects: list[DefectOut]
    defect_count: int
    defects_truncated: bool
    small_regions: int
    min_defect_area: int
    width: int
    height: int
    filename: str | None
    model: str
    arch_hash: str
    latency_ms: dict[str, float]


# -- inputs: the request is read and decoded before BentoML batches anything -----------------------


class _UploadSpec(bentoml.IODescriptor):
    """Input spec reading multipart uploads itself (limits, one-line 4xx errors); see serving.uploads."""

    upload_field: ClassVar[str] = "image"
    max_images: ClassVar[int] = 1

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.multipart_fields = list(cls.model_fields)  # OpenAPI: a multipart form with a file

    @classmethod
    async def from_http_request(cls, request: Request, serde: Any) -> _UploadSpec:
        service: Segmenter = bentoml.get_current_service()
        service.raise_unless_ready()
        uploads = await read_images(request, cls.upload_field, service.channels, SETTINGS.limits, cls.max_images,
                                    SETTINGS.body_timeout_s, reserve=service.reserve_large)  # fmt: skip
        return cls.model_construct(**{cls.upload_field: uploads if cls.max_images > 1 else uploads[0]})


class ImageInput(_UploadSpec):
    image: UploadIn


class ImagesInput(_UploadSpec):
    upload_field: ClassVar[str] = "images"
    max_images: ClassVar[int] = SETTINGS.max_images
    images: list[UploadIn]


# -- GET /model ----------------------------------------------------------------------------------


async def _model_card(_: Request) -> Response:
    service: Segmenter = bentoml.get_current_service()
    return JSONResponse(await anyio.to_thread.run_sync(service.card))


card_app = Starlette(routes=[Route("/model", _model_card, methods=["GET"])])


# -- the service -----------------------------------------------------------------------------------


@bentoml.asgi_app(card_app, path="/", name="model-card")
@bentoml.service(
    name="nasseg",
    workers=SETTINGS.workers,
    traffic={"timeout": SETTINGS.timeout_s, "max_concurrency": SETTINGS.max_concurrency},
)
class Segmenter:
    """One ONNX Runtime session per worker on the configured model's ``deploy`` graph."""

    def __init__(self) -> None:
        if SETTINGS.model is None:
            raise SettingsError("no model to serve: set NASSEG_SERVE_MODEL or pass --arg model=NAME_OR_ONNX")
        self.onnx_path: Path = resolve_onnx(SETTINGS.model, allow_random=SETTINGS.allow_random_weights)
        threads = SETTINGS.threads or default_threads()
        on_gpu = SETTINGS.runtime == "onnx" and providers_for(SETTINGS.device)[0] == "CUDAExecutionProvider"
        self.pool = SessionPool(self._open, threads, default_streams(SETTINGS.streams, threads, on_gpu))
        self.segmenter = self.pool.wide  # metadata, tiling decisions
        meta = self.segmenter.metadata
        self.channels = meta.genotype.task.in_channels
        self.class_names = meta.class_names
        self.model_name, self.arch_hash = meta.genotype.name, meta.arch_hash
        self._card: dict | None = None
        self._large_frames = asyncio.Semaphore(1)  # one tiled frame's arrays (~300 MB at 8192x3000) at a time
        self._ready = threading.Event()
        threading.Thread(target=self._warm_up, name="nasseg-warm-up", daemon=True).start()
        logger.info("serving %s (arch %s) from %s on %s, %d threads; under load %d sessions of %d",
                    self.model_name, self.arch_hash, self.onnx_path, self.segmenter.session.provider,
                    self.pool.threads, max(self.pool.streams, 1), self.pool.narrow_threads)  # fmt: skip

    def _open(self, threads: int) -> OnnxSegmenter:
        return OnnxSegmenter(self.onnx_path, SETTINGS.device, threads, spin=SETTINGS.spin, runtime=SETTINGS.runtime,
                             precision=SETTINGS.precision)  # fmt: skip

    def _warm_up(self) -> None:
        """One small inference on every session and the model card, before /readyz says yes."""
        try:
            warm = np.zeros((1, WARMUP_SIZE, WARMUP_SIZE, self.channels), np.uint8)
            for segmenter in [self.pool.wide, *self.pool.narrow]:
                segmenter.predict_frames(warm)
        except Exception:  # ONNX Runtime raises its own types; /readyz stays 503 and the log says why
            logger.exception("warm-up inference of %s failed; the service stays not ready", self.onnx_path)
            return
        try:
            self.card()
        except Exception:  # the card is informative: GET /model retries it and reports its error
            logger.exception("the model card of %s could not be made", self.onnx_path)
        self._ready.set()

    def __is_ready__(self) -> bool:
        return self._ready.is_set()

    def raise_unless_ready(self) -> None:
        if not self._ready.is_set():
            raise ServiceUnavailable("the model is still warming up; retry when /readyz answers 200")

    def card(self) -> dict:
        """The model card of the served ONNX file (computed once)."""
        if self._card is None:
            from nasseg.serving.card import card_from_onnx

            self._card = card_from_onnx(self.onnx_path)
        return self._card

    # -- inference -------------------------------------------------------------------------------

    def _infer(self, frames: list[np.ndarray], deadline: float | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """(mask, probability) per frame; frames of one size run as one batch, one batch at a time.
        Frames above the tile size run tile by tile (other requests get the session between tiles),
        and the work stops at ``deadline`` (the request's timeout: its client has had a 504)."""
        results: list[Any] = [None] * len(frames)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, frame in enumerate(frames):
            if self.segmenter.tiles(*frame.shape[:2], SETTINGS.tile):
                results[index] = self.segmenter.predict_frame(frame, tile=SETTINGS.tile, deadline=deadline,
                                                              lock=WideLock(self.pool))  # fmt: skip
            else:
                by_shape.setdefault(frame.shape, []).append(index)
        for indices in by_shape.values():
            if deadline is not None and time.monotonic() > deadline:
                raise Abandoned("the request's timeout passed before its batch ran")
            with self.pool.session() as segmenter:
                masks, probabilities = segmenter.predict_frames(np.stack([frames[i] for i in indices]))
            for row, index in enumerate(indices):
                results[index] = (masks[row], probabilities[row])
        return results

    def _inspection(self, upload: Upload, mask: np.ndarray, probability: np.ndarray, infer_ms: float) -> dict:
        start = time.perf_counter()
        found = find_defects(mask, probability, self.class_names, SETTINGS.min_defect_area)
        done = time.perf_counter()
        latency = {"decode": upload.decode_ms, "inference": infer_ms, "defects": (done - start) * 1000,
                   "total": (done - upload.received) * 1000}  # fmt: skip
        return {**found.to_dict(SETTINGS.max_defects), "width": int(mask.shape[1]), "height": int(mask.shape[0]),
                "filename": upload.filename, "model": self.model_name, "arch_hash": self.arch_hash,
                "latency_ms": {k: round(v, 2) for k, v in latency.items()}}  # fmt: skip

    async def _run(self, frames: list[np.ndarray]) -> tuple[list[tuple[np.ndarray, np.ndarray]], float]:
        start = time.perf_counter()
        deadline = time.monotonic() + SETTINGS.timeout_s
        results = await anyio.to_thread.run_sync(self._infer, frames, deadline)
        return results, (time.perf_counter() - start) * 1000

    async def reserve_large(self, sizes: list[tuple[int, int]]) -> None:
        """The one slot for requests whose frames, by their headers, hold more than a tile's pixels or
        need tiling (their decode buffers, then a mask, probabilities and labels of up to 25 Mpx,
        stay in memory until the answer is sent); others need none. Taken before decoding, given
        back when the request ends (:func:`serving.gate.on_request_end`). A request that cannot get
        the slot within a third of the timeout gets 503 (Retry-After). After a large request the C
        heap is trimmed, so its freed arrays go back to the system."""
        pixels = sum(width * height for width, height in sizes)
        if pixels <= SETTINGS.tile**2 and not any(self.segmenter.tiles(h, w, SETTINGS.tile) for w, h in sizes):
            return
        try:
            with anyio.fail_after(SETTINGS.timeout_s / 3):  # then 503 + Retry-After, not a 504 much later
                await self._large_frames.acquire()
        except TimeoutError:
            raise ServiceUnavailable("busy with other frames above the tile size; retry shortly") from None

        async def release() -> None:
            self._large_frames.release()
            await anyio.to_thread.run_sync(trim_heap)

        on_request_end(release)

    # -- endpoints -------------------------------------------------------------------------------

    @bentoml.api(route="/segment", input_spec=ImageInput)
    async def segment(self, image: UploadIn) -> Image.Image:
        """The predicted mask as a PNG of the image's size (0/255 for one-class nets, class indices otherwise)."""
        [(mask, _)], _ = await self._run([image.frame])
        scale = 255 if self.segmenter.genotype.task.num_classes == 1 else 1  # as nasseg predict writes masks
        png = await anyio.to_thread.run_sync(_png, mask * np.uint8(scale))
        return Response(png, media_type="image/png",
                        headers={"X-Nasseg-Model": self.model_name, "X-Nasseg-Arch-Hash": self.arch_hash})  # fmt: skip

    @bentoml.api(route="/inspect", input_spec=ImageInput)
    async def inspect(self, image: UploadIn) -> InspectionOut:
        """Verdict (OK / NG), defect regions (class, bbox, area, mean probability), model, latency."""
        [(mask, probability)], infer_ms = await self._run([image.frame])
        found = await anyio.to_thread.run_sync(self._inspection, image, mask, probability, infer_ms)
        return InspectionOut(**found)

    @bentoml.api(route="/inspect_batch", input_spec=ImagesInput, batchable=True,
                 max_batch_size=SETTINGS.max_batch_size, max_latency_ms=SETTINGS.max_latency_ms)  # fmt: skip
    async def inspect_batch(self, images: list[UploadIn]) -> list[InspectionOut]:
        """``/inspect`` for every file of the repeated ``images`` field; concurrent requests are batched."""
        results, infer_ms = await self._run([upload.frame for upload in images])
        per_image = infer_ms / max(len(images), 1)
        return await anyio.to_thread.run_sync(
            lambda: [self._inspection(u, m, p, per_image) for u, (m, p) in zip(images, results, strict=True)]
        )


Segmenter.add_asgi_middleware(GateMiddleware, api_key=SETTINGS.api_key)
bound_metric_labels()
quiet_client_faults()


@functools.cache
def _libc() -> Any:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to trim
        return None


def trim_heap() -> None:
    """Give freed C-heap memory back to the system (glibc ``malloc_trim``; a no-op elsewhere)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _png(mask: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(mask)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
