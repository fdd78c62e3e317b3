"""The one place that opens ONNX Runtime sessions (used by ``check``, ``bench``, the service and
``nasseg predict --onnx``).

The CUDA provider is asked for only when a CUDA device is really there (the driver answers
``cuDeviceGetCount``), and ONNX Runtime's log is held at FATAL while the session is made, so a
box without CUDA libraries gets the CPU provider and no error spam. Thread counts are always set
explicitly: ``threads`` intra-op threads (default: the CPU cores this process may use) and one
inter-op thread (sequential execution).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import onnxruntime as ort

from nasseg.serving.export import ExportMetadata
from nasseg.zoo.data.images import read_image, to_channels, to_float
from nasseg.zoo.errors import NassegError
from nasseg.zoo.tiling import TILE, needs_tiling, predict_tiled, tile_for

DEVICES = ("auto", "cpu", "cuda")
MAX_SHAPES = 4  # frame shapes an OnnxSegmenter keeps a session of its own for
_FATAL = 4


class RuntimeSetupError(NassegError):
    """An ONNX Runtime session cannot be opened as asked (missing file, no GPU for ``cuda``, ...)."""


@cache
def cuda_device_count() -> int:
    """CUDA devices the driver reports (0 without a driver or GPU); needs neither torch nor CUDA toolkits."""
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            driver = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return count.value
    return 0


def default_threads() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def providers_for(device: str = "auto") -> list[str]:
    """Execution providers to ask for: CUDA (then CPU) where a GPU and the CUDA provider are there."""
    if device not in DEVICES:
        raise RuntimeSetupError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    cuda_ok = "CUDAExecutionProvider" in ort.get_available_providers() and cuda_device_count() > 0
    if device == "cuda" and not cuda_ok:
        raise RuntimeSetupError("device 'cuda' asked for, but no CUDA GPU or no CUDA-enabled onnxruntime is present")
    return (
        ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda_ok and device != "cpu" else ["CPUExecutionProvider"]
    )


def free_dimensions(declared: Sequence[Sequence[int | str | None]], shapes: Sequence[Sequence[int]]) -> dict[str, int]:
    """The values that fix a graph's symbolic input dimensions (``declared``: each input's dims,
    names for the free ones) to the concrete ``shapes``; a fixed dimension that differs is an error."""
    if len(declared) != len(shapes):
        raise RuntimeSetupError(f"the graph takes {len(declared)} inputs, {len(shapes)} shapes given")
    values: dict[str, int] = {}
    for dims, shape in zip(declared, shapes, strict=True):
        if len(dims) != len(shape):
            raise RuntimeSetupError(f"an input of rank {len(dims)} cannot take the shape {tuple(shape)}")
        for dim, value in zip(dims, shape, strict=True):
            if isinstance(dim, str) and dim:
                if values.setdefault(dim, int(value)) != int(value):
                    raise RuntimeSetupError(f"dimension {dim!r} cannot be both {values[dim]} and {value}")
            elif isinstance(dim, int) and dim > 0 and dim != int(value):
                raise RuntimeSetupError(f"the graph fixes a dimension at {dim}; the shape {tuple(shape)} differs")
    return values


@dataclass
class OnnxSession:
    """An open ONNX Runtime session with the provider it got and the file's metadata."""

    session: ort.InferenceSession
    path: Path
    threads: int
    metadata: dict[str, str] = field(default_factory=dict)
    device: str = "auto"
    spin: bool = True

    def specialise(self, *shapes: Sequence[int]) -> OnnxSession:
        """The same graph opened again for inputs of exactly ``shapes``: its free dimensions
        (batch, height, width) fixed, so ONNX Runtime plans shapes, memory and kernels once. Cell
        nets with many small ops run 10-25 % faster so (``autosegnet-synth-defects`` at 256x256,
        2 threads: 27.5 -> 23.5 ms); a line of fixed frames gains it for free."""
        declared = [i.shape for i in self.session.get_inputs()]
        return open_session(self.path, self.device, self.threads, self.spin, free_dimensions(declared, shapes))

    @property
    def provider(self) -> str:
        """The provider that runs the graph (the first one the session took)."""
        return self.session.get_providers()[0]

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.session.get_inputs()]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """Run the graph on positional inputs; returns every output."""
        return self.session.run(None, dict(zip(self.input_names, inputs, strict=True)))


def open_session(path: str | Path, device: str = "auto", threads: int | None = None, spin: bool = True,
                 fixed: dict[str, int] | None = None) -> OnnxSession:  # fmt: skip
    """Open ``path`` on ``device`` (``auto``: CUDA when a GPU is present, CPU otherwise). ``spin=False``
    stops idle intra-op threads from busy-waiting between runs (a server that decodes and encodes
    beside inference on few cores gains from it). ``fixed`` sets free input dimensions by name
    (see :meth:`OnnxSession.specialise`)."""
    path = Path(path)
    if not path.is_file():
        raise RuntimeSetupError(f"{path}: no such ONNX file")
    if threads is not None and threads < 1:
        raise RuntimeSetupError(f"threads must be >= 1, got {threads}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = _FATAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    for name, value in (fixed or {}).items():
        options.add_free_dimension_override_by_name(name, value)
    providers = providers_for(device)
    ort.set_default_logger_severity(_FATAL)  # a CUDA provider that fails to load must not spam the console
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types (InvalidGraph, Fail, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RuntimeSetupError(f"{path}: ONNX Runtime cannot open it ({first})") from None
    finally:
        ort.set_default_logger_severity(2)
    if device == "cuda" and session.get_providers()[0] != "CUDAExecutionProvider":
        raise RuntimeSetupError(f"{path}: the CUDA provider failed to load (CUDA/cuDNN libraries missing?)")
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    return OnnxSession(session, path, options.intra_op_num_threads, metadata, device, spin)


RUNTIMES = ("onnx", "openvino")


def open_graph(path: str | Path, runtime: str = "onnx", device: str = "auto", threads: int | None = None,
               spin: bool = True, precision: str | None = None) -> OnnxSession:  # fmt: skip
    """A session on ``runtime``: ONNX Runtime (an ``.onnx`` file) or OpenVINO's CPU plugin (an IR
    ``.xml`` or an ``.onnx`` file, at ``precision`` f32/bf16, or an int8 IR); both answer alike."""
    if runtime not in RUNTIMES:
        raise RuntimeSetupError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if runtime == "onnx":
        if Path(path).suffix == ".xml":
            raise RuntimeSetupError(f"{path}: an OpenVINO IR; run it with --runtime openvino")
        if precision not in (None, "f32"):
            raise RuntimeSetupError(f"--precision {precision} is for --runtime openvino (ONNX Runtime's int8 is "
                                    "an .int8.onnx file)")  # fmt: skip
        return open_session(path, device, threads, spin)
    if device == "cuda":
        raise RuntimeSetupError("--runtime openvino runs on the CPU; use --device cpu or auto")
    from nasseg.serving.openvino_runtime import OpenVinoError, open_openvino

    try:
        return open_openvino(path, threads or default_threads(), precision)  # type: ignore[return-value]
    except OpenVinoError as exc:
        raise RuntimeSetupError(str(exc)) from None


class OnnxSegmenter:
    """A ``deploy`` graph on ONNX Runtime (or OpenVINO: ``runtime="openvino"``), answering like
    :func:`zoo.inference.predict_array`."""

    def __init__(self, path: str | Path, device: str = "auto", threads: int | None = None, spin: bool = True,
                 runtime: str = "onnx", precision: str | None = None) -> None:  # fmt: skip
        self.runtime = runtime
        self.session = open_graph(path, runtime, device, threads, spin, precision)
        self.metadata = ExportMetadata.from_props(self.session.metadata, str(path))
        if self.metadata.graph != "deploy":
            raise RuntimeSetupError(f"{path}: a {self.metadata.graph!r} graph; predicting needs a 'deploy' export")
        self.genotype = self.metadata.genotype
        self._by_shape: dict[tuple[int, ...], OnnxSession] = {}

    def session_for(self, shape: tuple[int, ...]) -> OnnxSession:
        """The session that runs frames of ``shape``: one opened for that shape
        (:meth:`OnnxSession.specialise`) for the first :data:`MAX_SHAPES` shapes seen (a line's
        frames have one), the shape-free session for any further one."""
        if shape not in self._by_shape and len(self._by_shape) < MAX_SHAPES:
            try:
                self._by_shape[shape] = self.session.specialise(shape)
            except RuntimeSetupError:  # a shape the graph refuses: the shape-free session says why
                return self.session
        return self._by_shape.get(shape, self.session)

    def predict_frames(self, frames: np.ndarray, threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(masks uint8 (N, H, W), probability of the predicted foreground / class (N, H, W)) for
        uint8 frames ``(N, H, W, C)``; ``threshold`` (one-output nets) overrides the exported one."""
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        probabilities, masks = self.session_for(frames.shape).run(frames)
        if probabilities.shape[1] > 1:
            return masks, probabilities.max(1)
        if threshold is not None and threshold != self.metadata.threshold:
            masks = (probabilities[:, 0] > threshold).astype(np.uint8)
        return masks, probabilities[:, 0]

    def predict_frame(
        self,
        frame: np.ndarray,
        threshold: float | None = None,
        tile: int | None = TILE,
        deadline: float | None = None,
        lock: AbstractContextManager | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(mask (H, W), probability (H, W)) of one uint8 frame ``(H, W, C)``; a frame larger than
        ``tile`` (rounded to the divisor) runs in overlapping tiles (:mod:`zoo.tiling`), each under
        ``lock`` when given (other requests run between tiles), stopping at ``deadline``."""
        lock = lock or nullcontext()

        def run(window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            with lock:
                masks, probabilities = self.predict_frames(window[None], threshold)
            return masks[0], probabilities[0]

        if self.tiles(*frame.shape[:2], tile):
            return predict_tiled(frame, run, tile_for(self.metadata.divisor, tile), deadline=deadline)
        return run(frame)

    def tiles(self, height: int, width: int, tile: int | None = TILE) -> bool:
        """Whether a ``height`` x ``width`` frame runs in tiles of ``tile`` (rounded to the net's
        divisor) rather than whole: the one place that decides it (:meth:`predict_frame`, and the
        service before it decodes a frame or batches it)."""
        return tile is not None and needs_tiling(height, width, tile_for(self.metadata.divisor, tile))

    def predict_file(self, path: str | Path, threshold: float | None = None) -> tuple[np.ndarray, ...]:
        """(image as float (H, W, C) in [0, 1], mask, probability) for an image file, as
        :func:`zoo.inference.predict_file` gives them (16-bit images are rounded to 8 bits)."""
        image = to_channels(to_float(read_image(path)), self.genotype.task.in_channels)
        frame = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
        mask, probability = self.predict_frame(frame, threshold)
        return image, mask, probability
