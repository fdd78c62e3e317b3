"""What ``serving.service`` serves and how: from ``NASSEG_SERVE_KEY`` variables or ``bentoml serve --arg KEY=VALUE``.

``--arg`` values win over the environment; everything but ``model`` has a default. ``nasseg serve``
passes its options in the environment (a path with a comma would not survive ``--arg``).
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nasseg.serving.decode import DecodeLimits
from nasseg.zoo.errors import NassegError

ENV_PREFIX = "NASSEG_SERVE_"


class SettingsError(NassegError):
    """Serving is configured with values it cannot take."""


class ServeSettings(BaseModel):
    """The service's configuration (one set per ``bentoml serve``; every worker reads the same)."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model: str | None = Field(None, description="zoo name, genotype .json or deploy-graph .onnx file")
    threads: int | None = Field(None, ge=1, description="ONNX Runtime intra-op threads per worker (default: cores)")
    workers: int = Field(1, ge=1, description="worker processes, each with its own sessions")
    streams: int | None = Field(
        None, ge=1, description="narrow sessions run side by side under load (default: one per thread on a CPU, 1 on "
        "a GPU; 1: one session)"
    )
    device: str = Field("auto", pattern="^(auto|cpu|cuda)$")
    runtime: str = Field("onnx", pattern="^(onnx|openvino)$", description="onnx (ONNX Runtime) or openvino (CPU)")
    precision: str | None = Field(None, pattern="^(f32|bf16|int8)$", description="OpenVINO: f32, bf16 or int8")
    spin: bool = Field(False, description="let idle ONNX Runtime threads busy-wait (off: decoding gets the cores)")
    max_body_mb: float = Field(20.0, gt=0, description="largest request body, MiB")
    max_pixels: int = Field(25_000_000, ge=1, description="largest decoded image (decompression bomb guard)")
    max_side: int = Field(8192, ge=1, le=8192, description="longest image side the deploy graph takes")
    min_defect_area: int = Field(20, ge=1, description="pixels a region needs to count as a defect (NG)")
    max_defects: int = Field(100, ge=0, description="defects listed per image (largest first)")
    max_request_pixels: int = Field(25_000_000, ge=1, description="decoded pixels in one request, all images together")
    tile: int = Field(1024, ge=32, le=8192, description="frames above tile x tile pixels run in overlapping tiles")
    body_timeout_s: float = Field(10.0, gt=0, description="a request body still arriving after this gets 408")
    api_key: str | None = Field(None, min_length=8, repr=False, description="required as Bearer token or X-API-Key")
    max_images: int = Field(16, ge=1, description="images in one /inspect_batch request")
    max_concurrency: int = Field(32, ge=1, description="requests in flight per service; more get 429")
    timeout_s: float = Field(60.0, gt=0, description="a request still running after this gets 504")
    max_batch_size: int = Field(8, ge=2, description="adaptive batching: most images in one batch")
    max_latency_ms: int = Field(2000, ge=1, description="adaptive batching: latency budget; past it, 503")
    allow_random_weights: bool = Field(False, description="serve a net without trained weights (sizing, speed)")

    @property
    def limits(self) -> DecodeLimits:
        return DecodeLimits(max_bytes=self.max_body_bytes, max_pixels=self.max_pixels, max_side=self.max_side,
                            max_request_pixels=self.max_request_pixels)  # fmt: skip

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 2**20)


def load_settings(arguments: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> ServeSettings:
    """Settings from ``NASSEG_SERVE_*`` variables, overridden by ``arguments`` (bentoml's ``--arg``s)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {key[len(ENV_PREFIX) :].lower(): value for key, value in environ.items()
                              if key.startswith(ENV_PREFIX) and value != ""}  # fmt: skip
    values.update({key.replace("-", "_"): value for key, value in (arguments or {}).items()})
    try:
        return ServeSettings(**values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise SettingsError(f"serving settings: {problems}") from None


def to_environ(settings: ServeSettings) -> dict[str, str]:
    """``NASSEG_SERVE_*`` variables that reproduce ``settings`` (values differing from the defaults)."""
    return {
        f"{ENV_PREFIX}{key.upper()}": str(value) for key, value in settings.model_dump(exclude_defaults=True).items()
    }
