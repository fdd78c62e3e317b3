"""Static int8 quantisation of an exported graph with ONNX Runtime, and the fp32-vs-int8 report.

:func:`quantize` runs ``onnxruntime.quantization.quant_pre_process`` (graph optimisation and ONNX
shape inference; skipped with a note where it fails), then ``quantize_static`` in QDQ format with
per-channel int8 weights, calibrated on images of a dataset folder's train split (or, without a
folder, of the bundled ``synth-defects`` set, generated on the spot). The calibration inputs
follow the graph: uint8 NHWC frames for a ``deploy`` graph, normalised float NCHW (sides padded to
the divisor) for a ``raw`` one. Activations are uint8 on x86 (the U8S8 kernels; weights at 7 bits
where the CPU has no VNNI, against saturation) and int8 elsewhere, as ONNX Runtime advises. The
output head (sigmoid / softmax / arg-max) stays float, so probabilities are not rounded to 8 bits.
The nasseg metadata is copied into the int8 file, plus ``nasseg.quantization`` (JSON: int8, QDQ,
per-channel, calibration source and count), so :func:`serving.export.read_metadata` and
:class:`serving.runtime.OnnxSegmenter` work on it unchanged.

:func:`compare_int8` scores the fp32 and int8 files on a folder's test split (IoU and friends from
one confusion matrix each), and puts sizes and batch-1 latencies side by side; where int8 is
slower on this CPU, its verdict says so.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import math
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry
from onnxruntime.quantization.shape_inference import quant_pre_process

from nasseg.serving.export import QUANTIZATION_KEY, ExportMetadata, quantization_record, read_metadata, read_props
from nasseg.serving.int8_select import SELECT_CHOICES, node_groups, select_nodes
from nasseg.serving.runtime import OnnxSession, default_threads, open_session
from nasseg.serving.timing import cpu_flags, cpu_model, interleaved_stats
from nasseg.zoo.data.dataset import normalise
from nasseg.zoo.data.folder import DatasetError, SegmentationFolder, mask_to_index, open_folder
from nasseg.zoo.data.images import IMAGE_SUFFIXES, ImageReadError, read_image, to_channels, to_float
from nasseg.zoo.data.synthetic import make_dataset
from nasseg.zoo.errors import NassegError
from nasseg.zoo.io import atomic_copy
from nasseg.zoo.sizing import crop_to_original, pad_to_multiple
from nasseg.zoo.training.losses import predict_classes
from nasseg.zoo.training.metrics import ConfusionMatrix

CALIB_COUNT = 32
MAX_CALIB_SIDE = 256
METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
           "percentile": CalibrationMethod.Percentile}  # fmt: skip
ACTIVATIONS = ("auto", "uint8", "int8")
#: Kept in float: the output head (8-bit probabilities would move masks at the threshold).
FLOAT_OPS = frozenset({"Sigmoid", "Softmax", "ArgMax"})
#: BatchNormalization's scale is 1-D: quantise it per channel along axis 0 (the default axis 1 does not exist).
PER_CHANNEL_AXES = {"BatchNormalization": 0}
#: Calibrate one image at a time: ranges (or histograms) are merged after each, so memory holds one
#: image's activations instead of all of them (16 images of a cell net at 256 x 256 took 13 GB).
CALIB_STRIDE = 1
_QUIET_LOGGERS = ("", "onnxruntime", "onnxruntime.quantization")
#: ONNX Runtime 1.2x+ can keep calibration ranges in a file, so trial graphs calibrate once.
_HAS_CALIB_CACHE = "calibration_cache_path" in inspect.signature(quantize_static).parameters


class QuantizeError(NassegError):
    """A graph cannot be quantised as asked (no calibration images, quantiser or ORT failure, ...)."""


@dataclass(frozen=True)
class QuantizeResult:
    """What :func:`quantize` wrote."""

    path: Path
    source: Path
    metadata: ExportMetadata
    quantization: dict[str, Any]
    seconds: float


def int8_path(path: str | Path) -> Path:
    """Where the int8 twin of ``path`` goes: ``model.onnx`` -> ``model.int8.onnx``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.int8{path.suffix or '.onnx'}")


def read_quantization(path: str | Path) -> dict[str, Any] | None:
    """The ``nasseg.quantization`` record of an ONNX file (None for an fp32 file)."""
    return quantization_record(read_props(path))


# -- calibration data ---------------------------------------------------------------------------


def _image_files(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def calibration_files(calib_dir: str | Path, count: int, seed: int = 0) -> list[Path]:
    """Up to ``count`` images of the folder's train split (a seeded sample), or of the folder itself
    when it is a plain folder of images."""
    root = Path(calib_dir)
    if not root.is_dir():
        raise QuantizeError(f"calibration folder {root}: no such folder")
    try:
        files = [s.image for s in open_folder(root, seed=seed, check=False).splits["train"]]
    except DatasetError as exc:
        files = _image_files(root)
        if not files:
            raise QuantizeError(f"calibration folder {root}: no images ({exc.problems[0]})") from None
    if not files:
        raise QuantizeError(f"calibration folder {root}: no training images")
    order = np.random.default_rng(seed).permutation(len(files))[:count]
    return [files[i] for i in sorted(order.tolist())]


def fit_to_size(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An ``(H, W, C)`` image mirrored out (``symmetric``) where it is smaller than ``size``, then
    centre-cropped to ``size``."""
    height, width = size
    pad_h, pad_w = max(height - image.shape[0], 0), max(width - image.shape[1], 0)
    if pad_h or pad_w:
        image = np.pad(image, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)),
                       mode="symmetric")  # fmt: skip
    top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
    return image[top : top + height, left : left + width]


def graph_input(image: np.ndarray, meta: ExportMetadata) -> np.ndarray:
    """One float ``(H, W, C)`` image in [0, 1] as a batch of one for the graph: uint8 NHWC frames
    for ``deploy``, normalised float32 NCHW for ``raw``."""
    if meta.graph == "deploy":
        return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)[None]
    return np.ascontiguousarray(normalise(image.transpose(2, 0, 1)), dtype=np.float32)[None]


def calibration_size(meta: ExportMetadata, size: int | tuple[int, int] | None) -> tuple[int, int]:
    """The calibration input size: fixed-size graphs take their own; otherwise ``size`` (default
    the genotype's input size, at most 256 a side); raw graphs round up to the divisor."""
    if not meta.dynamic_hw:
        return tuple(meta.genotype.task.input_size)
    if size is None:
        size = tuple(min(side, MAX_CALIB_SIDE) for side in meta.genotype.task.input_size)
    height, width = (size, size) if isinstance(size, int) else size
    if height < 1 or width < 1:
        raise QuantizeError(f"calibration size must be positive, got {height}x{width}")
    if meta.graph == "raw":
        height, width = (-(-height // meta.divisor) * meta.divisor, -(-width // meta.divisor) * meta.divisor)
    return int(height), int(width)


class FolderCalibrationReader(CalibrationDataReader):
    """Feeds ``quantize_static`` one image at a time, shaped for the graph (see :func:`graph_input`)."""

    def __init__(self, files: Sequence[Path], meta: ExportMetadata, input_name: str, size: tuple[int, int]) -> None:
        self.files, self.meta, self.input_name, self.size = list(files), meta, input_name, size
        self.rewind()

    def load(self, path: Path) -> np.ndarray:
        """The graph input of one calibration image."""
        try:
            image = to_channels(to_float(read_image(path)), self.meta.genotype.task.in_channels)
        except (ImageReadError, ValueError) as exc:
            raise QuantizeError(f"calibration image {path}: {exc}") from None
        return graph_input(fit_to_size(image, self.size), self.meta)

    def get_next(self) -> dict[str, np.ndarray] | None:
        path = next(self._files, None)
        return None if path is None else {self.input_name: self.load(path)}

    def rewind(self) -> None:
        self._files = iter(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def set_range(self, start_index: int, end_index: int) -> None:
        """Serve only ``files[start_index:end_index]`` (ONNX Runtime's strided calibration)."""
        self._files = iter(self.files[start_index:end_index])


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Hold the quantiser's logging (pre-processing advice, per-channel axis notes) at ERROR."""
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def activation_choice(activation: str = "auto") -> tuple[QuantType, bool]:
    """(activation type, reduce_range) for this CPU, following ONNX Runtime's advice."""
    if activation not in ACTIVATIONS:
        raise QuantizeError(f"activation type must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    flags = cpu_flags()
    x86 = any(f.startswith(("sse", "avx")) for f in flags)
    vnni = bool({"avx512_vnni", "avx_vnni", "avx_vnni_int8"} & flags)
    if activation == "auto":
        activation = "uint8" if x86 else "int8"
    return (QuantType.QUInt8 if activation == "uint8" else QuantType.QInt8), x86 and not vnni


def _first_line(exc: BaseException) -> str:
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {text}"[:300]


def bundled_calibration(root: Path, count: int, size: tuple[int, int], seed: int) -> Path:
    """A bundled ``synth-defects`` set with at least ``count`` training images of ``size``."""
    return make_dataset("synth-defects", root, n=max(3, math.ceil(count / 0.7) + 1), size=max(16, *size), seed=seed)


def _preprocess(path: Path, out: Path) -> tuple[Path, str]:
    """``quant_pre_process``: ORT graph optimisation and ONNX shape inference. Its symbolic shape
    inference is left out: it is for transformer graphs, fails on some dynamic-H/W CNN graphs, and
    where it fails it leaves ``sym_shape_infer_temp.onnx`` in the working directory. Returns the
    graph to quantise (the exported one where pre-processing fails) and what was done."""
    try:
        with _quiet_quantizer():
            quant_pre_process(str(path), str(out), skip_symbolic_shape=True)
    except Exception as exc:  # the optimiser and shape inference raise many exception types
        return path, f"skipped ({_first_line(exc)})"
    return out, "yes (ORT optimisation, ONNX shape inference)"


def quantisable_ops() -> list[str]:
    """The op types the quantiser may make int8: all it has QDQ or QLinear kernels for, less the head."""
    return sorted((set(QLinearOpsRegistry) | set(QDQRegistry)) - FLOAT_OPS)


def quantize_graph(model_in: str | Path, out: str | Path, reader: CalibrationDataReader, activation_type: QuantType,
                   reduce_range: bool, method: str = "minmax", nodes: Sequence[str] | None = None,
                   cache: Path | None = None) -> None:  # fmt: skip
    """The one quantiser call (QDQ, per-channel int8 weights, sigmoid/softmax/argmax kept float):
    :func:`quantize` and the latency table (:mod:`serving.latency_table`) both use it. ``nodes``:
    quantise only these (default: every quantisable node); ``cache``: a calibration-range file,
    written by the first call and read by later ones (where this ONNX Runtime has the option)."""
    reader.rewind()
    options = {"calibration_cache_path": str(cache)} if cache is not None and _HAS_CALIB_CACHE else {}
    with _quiet_quantizer():
        quantize_static(str(model_in), str(out), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=activation_type, weight_type=QuantType.QInt8, reduce_range=reduce_range,
                        calibrate_method=METHODS[method], op_types_to_quantize=quantisable_ops(),
                        nodes_to_quantize=list(nodes) if nodes is not None else None,
                        extra_options={"QDQOpTypePerChannelSupportToAxis": PER_CHANNEL_AXES,
                                       "CalibStridedMinMax": CALIB_STRIDE}, **options)  # fmt: skip


def quantize(path: str | Path, out: str | Path | None = None, calib_dir: str | Path | None = None, *,
             count: int = CALIB_COUNT, size: int | tuple[int, int] | None = None, method: str = "minmax",
             activation: str = "auto", preprocess: bool = True, seed: int = 0, select: str = "auto",
             threads: int | None = None) -> QuantizeResult:  # fmt: skip
    """Quantise the exported fp32 graph at ``path`` to int8 (QDQ, per-channel weights) and write it
    to ``out`` (default :func:`int8_path`). Calibration: ``count`` train images of ``calib_dir``
    (default: the bundled synth-defects set), fitted to ``size`` (see :func:`calibration_size`);
    ``method`` is minmax, entropy or percentile; ``activation`` auto, uint8 or int8. ``select``:
    ``auto`` quantises only the node groups that ran faster in int8 on this CPU, timed at the
    calibration size with ``threads`` threads (:mod:`serving.int8_select`; where none gains, every
    op stays float and the record says so); ``all`` every quantisable node."""
    start = time.perf_counter()
    path = Path(path)
    meta = read_metadata(path)
    out = Path(out) if out is not None else int8_path(path)
    if out.resolve() == path.resolve():
        raise QuantizeError(f"{out}: the int8 file would overwrite its fp32 source")
    if count < 1:
        raise QuantizeError(f"calibration count must be >= 1, got {count}")
    if method not in METHODS:
        raise QuantizeError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}")
    if select not in SELECT_CHOICES:
        raise QuantizeError(f"int8 node selection must be one of {', '.join(SELECT_CHOICES)}, got {select!r}")
    activation_type, reduce_range = activation_choice(activation)
    calib_size = calibration_size(meta, size)
    input_name = open_session(path, device="cpu", threads=1).input_names[0]
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nasseg-int8-") as tmp:
        if calib_dir is None:
            calib_root = bundled_calibration(Path(tmp) / "synth-defects", count, calib_size, seed)
            source = f"bundled synth-defects set (generated, seed {seed}), train split"
        else:
            calib_root, source = Path(calib_dir), f"{calib_dir} (train split)"
        files = calibration_files(calib_root, count, seed)
        reader = FolderCalibrationReader(files, meta, input_name, calib_size)
        probe = reader.load(files[0])  # to try the int8 graph on, once written
        model_in, preprocessed = _preprocess(path, Path(tmp) / "pre.onnx") if preprocess else (path, "not asked")
        staged = Path(tmp) / out.name  # written, labelled and tried here; then renamed into place
        cache = Path(tmp) / "ranges.json"
        try:
            selection = None
            if select == "auto":
                quantize_nodes = lambda nodes, dest: quantize_graph(  # noqa: E731
                    model_in, dest, reader, activation_type, reduce_range, method, nodes, cache
                )
                groups = node_groups(onnx.load(str(model_in), load_external_data=False), quantisable_ops())
                selection = select_nodes(path, groups, quantize_nodes, probe, calib_size, Path(tmp),
                                         threads=threads or default_threads())  # fmt: skip
            if selection is not None and not selection.nodes:  # the exported graph itself, as fast as fp32
                atomic_copy(path, staged)
            else:
                quantize_graph(model_in, staged, reader, activation_type, reduce_range, method,
                               selection.nodes if selection else None, cache)  # fmt: skip
        except QuantizeError:
            raise
        except Exception as exc:  # the quantiser raises ValueError, RuntimeError, ORT errors ...
            raise QuantizeError(f"{path}: int8 quantisation failed ({_first_line(exc)})") from None
        kept_float = selection is not None and not selection.nodes
        record = {"dtype": "float32 (no int8 gain)" if kept_float else "int8",
                  "format": None if kept_float else "QDQ", "per_channel": not kept_float,
                  "weights": "float32" if kept_float else "int8",
                  "selection": selection.to_record() if selection else {"mode": "all"},
                  "note": selection.sentence() if selection else "every quantisable node",
                  "activations": "uint8" if activation_type == QuantType.QUInt8 else "int8",
                  "reduce_range": reduce_range, "float_ops": sorted(FLOAT_OPS), "method": method,
                  "calibration": {"source": source, "count": len(files), "size": list(calib_size)},
                  "preprocessed": preprocessed, "onnxruntime": ort.__version__, "fp32_file": path.name}  # fmt: skip
        proto = onnx.load(str(staged))
        props = {p.key: p.value for p in proto.metadata_props}
        props.update(meta.to_props())
        props[QUANTIZATION_KEY] = json.dumps(record, sort_keys=True)
        del proto.metadata_props[:]
        for key, value in props.items():
            proto.metadata_props.add(key=key, value=value)
        kind = "float (no int8 gain on the CPU it was made on)" if kept_float else "int8 QDQ"
        proto.doc_string = f"nasseg {meta.graph} graph of {meta.genotype.name} (arch {meta.arch_hash}), {kind}"
        onnx.save_model(proto, str(staged))
        try:
            session = open_session(staged, device="cpu", threads=1)
            session.run(probe)
        except Exception as exc:  # noqa: BLE001 - a broken int8 graph: say so in one line
            raise QuantizeError(f"{out}: the int8 graph does not run on ONNX Runtime ({_first_line(exc)})") from None
        atomic_copy(staged, out)
    return QuantizeResult(out, path, read_metadata(out), record, time.perf_counter() - start)


# -- fp32 against int8 --------------------------------------------------------------------------


@dataclass
class Int8Comparison:
    """fp32 and int8 side by side: test-split metrics, file sizes, batch-1 latencies, a verdict."""

    fp32_path: Path
    int8_path: Path
    data: str
    split: str
    images: int
    fp32_metrics: dict[str, Any]
    int8_metrics: dict[str, Any]
    mask_agreement: float
    fp32_bytes: int
    int8_bytes: int
    latency_size: tuple[int, int]
    threads: int
    fp32_latency: dict[str, float]
    int8_latency: dict[str, float]
    cpu: str = field(default_factory=cpu_model)

    @property
    def iou_delta(self) -> float:
        """int8 IoU minus fp32 IoU (negative: int8 lost accuracy)."""
        return float(self.int8_metrics["iou"] - self.fp32_metrics["iou"])

    @property
    def latency_ratio(self) -> float:
        """int8 p50 over fp32 p50 (> 1: int8 is slower)."""
        return self.int8_latency["p50_ms"] / self.fp32_latency["p50_ms"]

    def verdict(self) -> str:
        """A plain sentence: is int8 faster or slower than fp32 on this CPU, and by how much."""
        ratio = self.latency_ratio
        where = f"on this CPU ({self.cpu}, {self.threads} thread{'s' * (self.threads != 1)})"
        figures = f"p50 {self.int8_latency['p50_ms']:.1f} ms vs {self.fp32_latency['p50_ms']:.1f} ms"
        if ratio > 1.0:
            return f"int8 is {ratio:.2f}x SLOWER than fp32 {where}: {figures}."
        return f"int8 is {1 / ratio:.2f}x faster than fp32 {where}: {figures}."

    def lines(self) -> list[str]:
        """The report as a few human-readable lines."""
        f, i = self.fp32_metrics, self.int8_metrics
        h, w = self.latency_size
        return [
            f"fp32 vs int8 on {self.data} ({self.split} split, {self.images} images):",
            f"  IoU   fp32 {f['iou']:.4f}  int8 {i['iou']:.4f}  (delta {self.iou_delta:+.4f}); "
            f"Dice fp32 {f['dice']:.4f}  int8 {i['dice']:.4f}; masks agree on "
            f"{100 * self.mask_agreement:.2f} % of pixels",
            f"  size  fp32 {self.fp32_bytes / 2**20:.2f} MiB  int8 {self.int8_bytes / 2**20:.2f} MiB "
            f"({self.fp32_bytes / max(self.int8_bytes, 1):.1f}x smaller)",
            f"  latency at batch 1, {h}x{w}: fp32 p50 {self.fp32_latency['p50_ms']:.2f} ms "
            f"(p90 {self.fp32_latency['p90_ms']:.2f})  int8 p50 {self.int8_latency['p50_ms']:.2f} ms "
            f"(p90 {self.int8_latency['p90_ms']:.2f})",
            f"  {self.verdict()}",
        ]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (metrics without the per-class tables)."""
        strip = lambda m: {k: v for k, v in m.items() if k != "per_class"}  # noqa: E731
        return {"fp32_path": str(self.fp32_path), "int8_path": str(self.int8_path), "data": self.data,
                "split": self.split, "images": self.images, "fp32": strip(self.fp32_metrics),
                "int8": strip(self.int8_metrics), "iou_delta": self.iou_delta, "mask_agreement": self.mask_agreement,
                "bytes": {"fp32": self.fp32_bytes, "int8": self.int8_bytes},
                "latency": {"batch": 1, "size": list(self.latency_size), "threads": self.threads,
                            "fp32": self.fp32_latency, "int8": self.int8_latency},
                "int8_over_fp32_latency": round(self.latency_ratio, 4), "int8_slower": self.latency_ratio > 1.0,
                "cpu": self.cpu, "verdict": self.verdict()}  # fmt: skip


def predict_mask(session: OnnxSession, meta: ExportMetadata, image: np.ndarray) -> np.ndarray:
    """The class-index mask ``(H, W)`` a graph gives for one float ``(H, W, C)`` image in [0, 1]
    (raw graphs: padded to the divisor, cropped back, thresholded / arg-maxed as the zoo does)."""
    x = graph_input(image, meta)
    if meta.graph == "deploy":
        return session.run(x)[1][0]
    padded, padding = pad_to_multiple(torch.from_numpy(x), meta.divisor)
    logits = torch.from_numpy(session.run(padded.numpy())[0])
    return predict_classes(crop_to_original(logits, padding), meta.threshold)[0].numpy()


def load_pair(sample: Any, in_channels: int, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    image = to_channels(to_float(read_image(sample.image)), in_channels)
    return image, mask_to_index(read_image(sample.mask), num_classes)


def scoring_folder(root: str | Path) -> SegmentationFolder:
    try:
        return open_folder(root)
    except DatasetError as exc:
        raise QuantizeError(f"{root}: cannot score fp32 and int8 on it, it needs a dataset folder with masks "
                            f"({len(exc.problems)} problem(s), first: {exc.problems[0]})") from None  # fmt: skip


def compare_int8(fp32_path: str | Path, int8_file: str | Path, data_dir: str | Path | SegmentationFolder,
                 split: str = "test", threads: int | None = None, warmup: int = 3, repeats: int = 20,
                 max_images: int | None = None) -> Int8Comparison:  # fmt: skip
    """Score both graphs on ``split`` of ``data_dir`` and time them at batch 1 on its first image
    (``threads`` intra-op threads, default every core this process may use)."""
    folder = data_dir if isinstance(data_dir, SegmentationFolder) else scoring_folder(data_dir)
    fp32_meta, int8_meta = read_metadata(fp32_path), read_metadata(int8_file)
    if fp32_meta.arch_hash != int8_meta.arch_hash or fp32_meta.graph != int8_meta.graph:
        raise QuantizeError(f"{int8_file} is not the int8 twin of {fp32_path} (arch {int8_meta.arch_hash} "
                            f"{int8_meta.graph} vs {fp32_meta.arch_hash} {fp32_meta.graph})")  # fmt: skip
    task = fp32_meta.genotype.task
    if task.num_classes != folder.model_classes:
        raise QuantizeError(f"{fp32_path}: the net has {task.num_classes} output(s), but {folder.root} has "
                            f"{folder.num_classes} classes (needs {folder.model_classes})")  # fmt: skip
    samples = folder.splits[split][:max_images] if max_images else folder.splits[split]
    if not samples:
        raise QuantizeError(f"{folder.root}: the {split} split has no images")
    threads = threads or default_threads()
    sessions = [open_session(p, device="cpu", threads=threads) for p in (fp32_path, int8_file)]
    matrices = [ConfusionMatrix(folder.num_classes) for _ in sessions]
    equal = total = 0
    for sample in samples:
        image, target = load_pair(sample, task.in_channels, folder.num_classes)
        masks = [predict_mask(s, fp32_meta, image) for s in sessions]
        for matrix, mask in zip(matrices, masks, strict=True):
            matrix.update(torch.from_numpy(mask.astype(np.int64)), torch.from_numpy(target.astype(np.int64)))
        equal, total = equal + int((masks[0] == masks[1]).sum()), total + masks[0].size
    image, _ = load_pair(samples[0], task.in_channels, folder.num_classes)
    x = graph_input(image, fp32_meta)
    if fp32_meta.graph == "raw":
        x = pad_to_multiple(torch.from_numpy(x), fp32_meta.divisor)[0].numpy()
    timed = interleaved_stats({"fp32": lambda: sessions[0].run(x), "int8": lambda: sessions[1].run(x)}, warmup, repeats)
    latencies = [timed["fp32"], timed["int8"]]
    return Int8Comparison(
        fp32_path=Path(fp32_path), int8_path=Path(int8_file), data=str(folder.root), split=split,
        images=len(samples), fp32_metrics=matrices[0].compute(folder.classes),
        int8_metrics=matrices[1].compute(folder.classes), mask_agreement=equal / max(total, 1),
        fp32_bytes=Path(fp32_path).stat().st_size, int8_bytes=Path(int8_file).stat().st_size,
        latency_size=(int(x.shape[1 if fp32_meta.graph == "deploy" else 2]),
                      int(x.shape[2 if fp32_meta.graph == "deploy" else 3])),
        threads=threads, fp32_latency=latencies[0], int8_latency=latencies[1],
    )  # fmt: skip
