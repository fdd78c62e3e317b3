"""OpenVINO beside ONNX Runtime (issue 30): the deploy graph as an OpenVINO IR, and a session with
the same interface as :class:`serving.runtime.OnnxSession`, so that ``predict``, ``serve`` and
``bench`` run either behind one segmenter (tiling, batching and pre/post-processing stay in the one
graph and the one :class:`serving.runtime.Segmenter`).

- **Export**: ``export_openvino(ONNX, OUT.xml, precision)`` converts a deploy ONNX file
  (``ov.convert_model``) and keeps the contract: uint8 frames in, probabilities and mask out, and
  the nasseg metadata (genotype, arch hash, class names, ...) in the IR's ``rt_info["nasseg"]``.
  ``f32`` and ``bf16`` write the same float IR (bf16 is how the CPU plugin runs it, recorded in
  ``rt_info`` and applied when the IR is opened); ``int8`` is NNCF post-training quantization,
  calibrated on the same train images as ONNX Runtime's ``--int8``.
- **Precision**: on a CPU with AVX-512 BF16 or AMX, OpenVINO runs f32 graphs in bf16 by default;
  nasseg always states the precision (``INFERENCE_PRECISION_HINT``): f32 unless asked.
- **Telemetry** is off: OpenVINO's converter and NNCF fall back to their stubs when the
  ``openvino_telemetry`` module cannot be imported, which :func:`telemetry_off` arranges before
  either loads (nothing is written to the user's home).

OpenVINO is the ``openvino`` extra (``pip install nasseg[openvino]``); without it, asking for the
runtime is a one-line :class:`serving.runtime.RuntimeSetupError`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nasseg.zoo.errors import NassegError

PRECISIONS = ("f32", "bf16", "int8")
PRECISION_KEY = "nasseg.openvino_precision"
HINTS = {"f32": "f32", "bf16": "bf16", "int8": "f32"}  # int8: the quantized ops run int8, the rest f32


class OpenVinoError(NassegError):
    """OpenVINO is missing, or cannot convert, quantise or open a graph as asked."""


def telemetry_off() -> None:
    """Make OpenVINO's converter and NNCF use their telemetry stubs (call before importing them)."""
    if "openvino_telemetry" not in sys.modules:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # import fails -> their stubs


def _openvino() -> Any:
    telemetry_off()
    try:
        import openvino
    except ImportError:
        raise OpenVinoError("the OpenVINO runtime is not installed: pip install 'nasseg[openvino]'") from None
    return openvino


def available() -> bool:
    """Whether OpenVINO can be imported here."""
    try:
        _openvino()
    except OpenVinoError:
        return False
    return True


def cpu_capabilities() -> list[str]:
    """The CPU plugin's optimisation capabilities (``FP32``, ``BF16``, ``INT8``, ...)."""
    return list(_openvino().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def bf16_supported() -> bool:
    """Whether this CPU runs bf16 natively (AVX-512 BF16 or AMX), as OpenVINO reports it."""
    return "BF16" in cpu_capabilities()


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise OpenVinoError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bf16" and not bf16_supported():
        raise OpenVinoError("precision bf16: this CPU has no native bf16 (no AVX-512 BF16 or AMX); use f32 or int8")
    return precision


# -- export ------------------------------------------------------------------------------------


def export_openvino(onnx_path: str | Path, out: str | Path, precision: str = "f32", calib_dir: Path | None = None,
                    count: int = 64, seed: int = 0) -> Path:  # fmt: skip
    """Write ``out`` (``.xml`` and its ``.bin``) from a deploy ONNX file at ``precision`` (see the module
    docstring); both files are written to temp names and renamed, the weights first."""
    from nasseg.serving.export import read_metadata
    from nasseg.zoo.io import atomic_copy

    ov = _openvino()
    precision = check_precision(precision)
    onnx_path, out = Path(onnx_path), Path(out)
    if out.suffix != ".xml":
        raise OpenVinoError(f"--out {out}: an OpenVINO IR is a .xml file (with its .bin beside it)")
    meta = read_metadata(onnx_path)
    if meta.graph != "deploy":
        raise OpenVinoError(f"{onnx_path}: a {meta.graph!r} graph; an OpenVINO export takes the deploy graph")
    try:
        model = ov.convert_model(str(onnx_path))
    except Exception as exc:  # the converter raises its own error types
        raise OpenVinoError(f"{onnx_path}: OpenVINO cannot convert it ({_first_line(exc)})") from None
    if precision == "int8":
        model = _quantize(model, onnx_path, meta, calib_dir, count, seed)
    for key, value in {**meta.to_props(), PRECISION_KEY: precision}.items():
        model.set_rt_info(value, ["nasseg", key])
    import tempfile

    with tempfile.TemporaryDirectory(prefix="nasseg-ov-", dir=out.parent if out.parent.is_dir() else None) as tmp:
        staged = Path(tmp) / "model.xml"
        ov.save_model(model, str(staged), compress_to_fp16=False)
        atomic_copy(staged.with_suffix(".bin"), out.with_suffix(".bin"))
        atomic_copy(staged, out)
    return out


def _quantize(model: Any, onnx_path: Path, meta: Any, calib_dir: Path | None, count: int, seed: int) -> Any:
    """NNCF post-training quantization of ``model`` on the train images ONNX Runtime's int8 calibrates on."""
    import tempfile

    telemetry_off()
    try:
        import nncf
    except ImportError:
        raise OpenVinoError("precision int8 needs NNCF: pip install 'nasseg[openvino]'") from None
    from nasseg.serving.quantize import (
        FolderCalibrationReader,
        bundled_calibration,
        calibration_files,
        calibration_size,
    )

    size = calibration_size(meta, None)
    with tempfile.TemporaryDirectory(prefix="nasseg-ov-calib-") as tmp:
        bundled = calib_dir is None
        root = bundled_calibration(Path(tmp) / "calib", count, size, seed) if bundled else Path(calib_dir)
        files = calibration_files(root, count, seed)
        reader = FolderCalibrationReader(files, meta, "frames", size)
        frames = [reader.load(path) for path in files]
    try:
        return nncf.quantize(model, nncf.Dataset(frames), subset_size=len(frames))
    except Exception as exc:  # NNCF raises many types
        raise OpenVinoError(f"{onnx_path}: NNCF int8 quantization failed ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


# -- sessions ----------------------------------------------------------------------------------


def read_rt_metadata(model: Any) -> dict[str, str]:
    """The nasseg metadata an IR carries in ``rt_info["nasseg"]`` (empty when it has none)."""
    info = model.get_rt_info()
    if "nasseg" not in info:
        return {}
    return {str(k): v.astype(str) if hasattr(v, "astype") else str(v) for k, v in dict(info["nasseg"]).items()}


def read_ir_metadata(path: Path) -> dict[str, str]:
    """The nasseg metadata of an IR file (:class:`OpenVinoError` when it cannot be read)."""
    try:
        model = _openvino().Core().read_model(str(path))
    except OpenVinoError:
        raise
    except Exception as exc:  # noqa: BLE001 - OpenVINO's own error types
        raise OpenVinoError(f"{path}: OpenVINO cannot read it ({_first_line(exc)})") from None
    return read_rt_metadata(model)


@dataclass
class OpenVinoSession:
    """A graph compiled by OpenVINO's CPU plugin, with :class:`serving.runtime.OnnxSession`'s interface."""

    model: Any
    compiled: Any
    path: Path
    threads: int
    precision: str
    metadata: dict[str, str] = field(default_factory=dict)

    def specialise(self, *shapes: Sequence[int]) -> OpenVinoSession:
        """The same graph compiled for inputs of exactly ``shapes`` (static shapes plan once)."""
        model = self.model.clone()
        try:
            model.reshape({i: list(map(int, shape)) for i, shape in enumerate(shapes)})
        except Exception as exc:  # noqa: BLE001 - a shape the graph refuses
            from nasseg.serving.runtime import RuntimeSetupError

            raise RuntimeSetupError(f"{self.path}: OpenVINO cannot fix the shape {shapes} "
                                    f"({_first_line(exc)})") from None  # fmt: skip
        return OpenVinoSession(model, _compile(model, self.threads, self.precision), self.path, self.threads,
                               self.precision, self.metadata)  # fmt: skip

    @property
    def provider(self) -> str:
        return f"OpenVINO CPU ({self.precision})"

    @property
    def input_names(self) -> list[str]:
        return [port.get_any_name() for port in self.compiled.inputs]

    @property
    def output_names(self) -> list[str]:
        return [port.get_any_name() for port in self.compiled.outputs]

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        results = self.compiled(list(inputs))
        return [np.asarray(results[port]) for port in self.compiled.outputs]


def _compile(model: Any, threads: int, precision: str) -> Any:
    ov = _openvino()
    config = {"INFERENCE_PRECISION_HINT": HINTS[precision], "INFERENCE_NUM_THREADS": int(threads),
              "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
              "ENABLE_CPU_PINNING": False}  # fmt: skip  # the box also decodes, serves and runs other runtimes
    return ov.Core().compile_model(model, "CPU", config)


def open_openvino(path: str | Path, threads: int, precision: str | None = None) -> OpenVinoSession:
    """Open an IR (``.xml``) or an ONNX file on OpenVINO's CPU plugin. ``precision``: f32 or bf16
    (default: what the IR records, f32 for ONNX files; an int8 IR runs its quantized ops in int8)."""
    from nasseg.serving.runtime import RuntimeSetupError

    ov = _openvino()
    path = Path(path)
    if not path.is_file():
        raise RuntimeSetupError(f"{path}: no such model file")
    try:
        model = ov.Core().read_model(str(path))
    except Exception as exc:  # noqa: BLE001 - OpenVINO's own error types
        raise RuntimeSetupError(f"{path}: OpenVINO cannot read it ({_first_line(exc)})") from None
    if path.suffix == ".xml":
        metadata = read_rt_metadata(model)
    else:
        from nasseg.serving.export import read_metadata

        metadata = read_metadata(path).to_props()
    recorded = metadata.get(PRECISION_KEY, "f32")
    precision = check_precision(precision or recorded)
    if precision == "int8" and recorded != "int8":
        raise RuntimeSetupError(f"{path}: a float graph; int8 on OpenVINO needs an int8 IR "
                                "(nasseg export NAME --format openvino --precision int8)")  # fmt: skip
    if recorded == "int8":
        precision = "int8"  # the IR is quantized: its float parts run f32
    return OpenVinoSession(model, _compile(model, threads, precision), path, threads, precision, metadata)
