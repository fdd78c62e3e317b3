"""ONNX export of zoo nets: a ``raw`` graph (the net alone) or a ``deploy`` graph (the default)
that a line-side box runs with nothing else.

``deploy``: ``frames`` uint8 ``(N, H, W, C)`` in; inside the graph the cast to [0, 1], the
normalisation with the zoo's MEAN/STD, padding to the net's divisor (reflect, replicate where the
frame is too small, exactly as :func:`zoo.pad_to_multiple`), the net, the crop back; out come
``probabilities`` float32 ``(N, K, H, W)`` (sigmoid for one-output nets, softmax otherwise) and
``mask`` uint8 ``(N, H, W)`` (probability > threshold, or the arg-max class).
``raw``: ``input`` float32 NCHW (sides multiples of the divisor) in, ``logits`` out.

Exporter: ``torch.onnx.export(dynamo=True)`` (``torch.export`` with ``dynamic_shapes``). Its
symbolic shapes either prove that batch, height and width are free or fail loudly, where the
legacy TorchScript tracer silently bakes in any size that passes through Python; it is also the
supported exporter (the TorchScript one is deprecated since PyTorch 2.9). Where dynamic height and
width do not export, the graph falls back to the genotype's input size (dynamic batch only) and
says so in its metadata (``dynamic_hw``).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn
from torch.export import Dim

from nasseg import zoo
from nasseg.zoo.data.dataset import MEAN, STD, normalise
from nasseg.zoo.errors import NassegError
from nasseg.zoo.genotype import Genotype
from nasseg.zoo.io import atomic_output
from nasseg.zoo.training.losses import flatten_outputs

GRAPHS = ("deploy", "raw")
MIN_OPSET = 18
DEFAULT_THRESHOLD = 0.5

#: Registered models that cannot be exported, and why (tests/serving/test_all_models.py reproduces
#: every reason). Empty: every registered model exports with dynamic batch, height and width.
NOT_EXPORTABLE: dict[str, str] = {}

_QUIET_LOGGERS = ("torch", "torch.export", "torch._dynamo", "torch.fx", "torch.onnx", "onnxscript", "onnx_ir")


class ExportError(NassegError):
    """A net cannot be exported as asked (wrong graph for its task, bad class names, exporter failure)."""


@dataclass(frozen=True)
class ExportMetadata:
    """The deployment contract written into the ONNX file's metadata."""

    graph: str
    genotype: Genotype
    arch_hash: str
    class_names: list[str]
    threshold: float
    mean: float
    std: float
    divisor: int
    dynamic_hw: bool
    nasseg_version: str
    weights: str = "unknown"  # "trained", "random" (built untrained, for sizing and speed) or "unknown"

    def to_props(self) -> dict[str, str]:
        """String key/values for ``ModelProto.metadata_props``."""
        return {
            "nasseg.graph": self.graph,
            "nasseg.genotype": self.genotype.to_json(),
            "nasseg.arch_hash": self.arch_hash,
            "nasseg.class_names": json.dumps(self.class_names),
            "nasseg.threshold": repr(self.threshold),
            "nasseg.mean": repr(self.mean),
            "nasseg.std": repr(self.std),
            "nasseg.divisor": str(self.divisor),
            "nasseg.dynamic_hw": json.dumps(self.dynamic_hw),
            "nasseg.version": self.nasseg_version,
            "nasseg.weights": self.weights,
        }

    @classmethod
    def from_props(cls, props: dict[str, str], where: str = "<onnx>") -> ExportMetadata:
        """Parse what :meth:`to_props` wrote (``where`` names the file in errors)."""
        try:
            return cls(
                graph=props["nasseg.graph"],
                genotype=Genotype.from_json(props["nasseg.genotype"]),
                arch_hash=props["nasseg.arch_hash"],
                class_names=json.loads(props["nasseg.class_names"]),
                threshold=float(props["nasseg.threshold"]),
                mean=float(props["nasseg.mean"]),
                std=float(props["nasseg.std"]),
                divisor=int(props["nasseg.divisor"]),
                dynamic_hw=json.loads(props["nasseg.dynamic_hw"]),
                nasseg_version=props["nasseg.version"],
                weights=props.get("nasseg.weights", "unknown"),
            )
        except (KeyError, ValueError) as exc:
            raise ExportError(f"{where}: not a nasseg export (metadata {exc} missing or malformed)") from None


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote."""

    path: Path
    metadata: ExportMetadata
    seconds: float


def read_props(path: str | Path) -> dict[str, str]:
    """The key/value metadata of an exported graph file: an ONNX file's ``metadata_props``, or an
    OpenVINO IR's (``.xml``) ``rt_info["nasseg"]`` (the weights are not loaded). The one reader."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such ONNX file")
    if path.suffix.lower() == ".xml":
        from nasseg.serving.openvino_runtime import OpenVinoError, read_ir_metadata

        try:
            return read_ir_metadata(path)
        except OpenVinoError as exc:
            raise ExportError(str(exc)) from None
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends
        raise ExportError(f"{path}: not an ONNX file ({type(exc).__name__})") from None
    return {p.key: p.value for p in proto.metadata_props}


#: The metadata key of an int8 file's quantisation record (JSON), written by :func:`serving.quantize.quantize`.
QUANTIZATION_KEY = "nasseg.quantization"


def quantization_record(props: dict[str, str]) -> Any:
    """The quantisation record in a graph's metadata (see :func:`read_props`): a dict, the raw text
    where it is not JSON, or None for a float graph."""
    text = props.get(QUANTIZATION_KEY, props.get("quantization"))
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def read_metadata(path: str | Path) -> ExportMetadata:
    """The nasseg metadata of an exported ONNX file, or of an OpenVINO IR made from one."""
    return ExportMetadata.from_props(read_props(path), str(path))


# -- the graphs --------------------------------------------------------------------------------


def _pad_index(size: Any, pad: Any, replicate: torch.Tensor) -> torch.Tensor:
    """Source rows for ``size + pad`` output rows: reflected past the end, or clamped (replicate)."""
    index = torch.arange(size + pad)
    reflect = torch.where(index < size, index, 2 * (size - 1) - index)
    return torch.where(replicate, index.clamp(max=size - 1), reflect)


def pad_in_graph(x: torch.Tensor, divisor: int) -> torch.Tensor:
    """:func:`zoo.pad_to_multiple` (``reflect``, all-replicate where a side is too short to reflect)
    on an NCHW batch, written with shape arithmetic and gathers so that it exports with symbolic H/W."""
    height, width = x.shape[-2], x.shape[-1]
    bottom, right = (divisor - height % divisor) % divisor, (divisor - width % divisor) % divisor
    zero = torch.zeros((), dtype=torch.int64)
    replicate = (zero + bottom >= height) | (zero + right >= width)
    x = x.index_select(2, _pad_index(height, bottom, replicate))
    return x.index_select(3, _pad_index(width, right, replicate))


class RawGraph(nn.Module):
    """The net alone; the main output of deep-supervision nets."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return flatten_outputs(self.net(x))[0]


class DeployGraph(nn.Module):
    """uint8 NHWC frames -> (probabilities (N, K, H, W), uint8 mask (N, H, W)); see the module docstring."""

    def __init__(self, net: nn.Module, divisor: int, threshold: float = DEFAULT_THRESHOLD) -> None:
        super().__init__()
        self.net, self.divisor, self.threshold = net, divisor, threshold

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = frames.shape[1], frames.shape[2]
        x = normalise(frames.permute(0, 3, 1, 2).to(torch.float32) / 255.0)  # zoo.data.images.to_float for uint8
        logits = flatten_outputs(self.net(pad_in_graph(x, self.divisor)))[0][..., :height, :width]
        if logits.shape[1] == 1:
            probabilities = torch.sigmoid(logits)
            return probabilities, (probabilities[:, 0] > self.threshold).to(torch.uint8)
        probabilities = logits.softmax(1)
        return probabilities, probabilities.argmax(1).to(torch.uint8)


# -- export ------------------------------------------------------------------------------------


def default_class_names(num_classes: int) -> list[str]:
    """``background, foreground`` for one-output (sigmoid) nets, ``class_0 ..`` otherwise."""
    return ["background", "foreground"] if num_classes == 1 else [f"class_{i}" for i in range(num_classes)]


def _class_names(genotype: Genotype, names: Sequence[str] | None) -> list[str]:
    num_classes = genotype.task.num_classes
    if names is None:
        return list(genotype.task.class_names or default_class_names(num_classes))
    names = [n.strip() for n in names]
    expected = 2 if num_classes == 1 else num_classes
    if len(names) != expected or not all(names) or len(set(names)) != len(names):
        raise ExportError(f"model {genotype.name!r} needs {expected} distinct class names "
                          f"({'background and foreground' if num_classes == 1 else 'one per output'}), "
                          f"got {','.join(names)!r}")  # fmt: skip
    return names


def _graph_and_shapes(
    model: nn.Module, graph: str, threshold: float, dynamic_hw: bool
) -> tuple[nn.Module, tuple[torch.Tensor], dict[str, Any], list[str], list[str]]:
    """The module to export, an example input, its dynamic shapes, input and output names."""
    task, divisor = model.genotype.task, int(getattr(model, "divisor", 1))
    nominal_h, nominal_w = task.input_size
    batch = Dim("batch", min=1, max=4096)
    if graph == "raw":
        # Sides must stay multiples of the divisor: height = divisor * blocks. Distinct example
        # sides keep torch.export from merging the two symbols.
        if dynamic_hw:
            example = torch.randn(2, task.in_channels, 2 * divisor, 3 * divisor)
            blocks = 8192 // divisor
            shapes = {0: batch, 2: Dim("h_blocks", min=1, max=blocks) * divisor,
                      3: Dim("w_blocks", min=1, max=blocks) * divisor}  # fmt: skip
        else:
            example, shapes = torch.randn(2, task.in_channels, nominal_h, nominal_w), {0: batch}
        return RawGraph(model), (example,), {"x": shapes}, ["input"], ["logits"]
    if dynamic_hw:
        example = torch.randint(0, 256, (2, 2 * divisor + 3, 3 * divisor + 5, task.in_channels), dtype=torch.uint8)
        shapes = {0: batch, 1: Dim("height", min=1, max=8192), 2: Dim("width", min=1, max=8192)}
    else:
        example = torch.randint(0, 256, (2, nominal_h, nominal_w, task.in_channels), dtype=torch.uint8)
        shapes = {0: batch}
    module = DeployGraph(model, divisor, threshold)
    return module, (example,), {"frames": shapes}, ["frames"], ["probabilities", "mask"]


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """Hold back the exporters' warnings, log lines and prints (yields what was printed)."""
    captured = io.StringIO()
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.CRITICAL + 1)
        with warnings.catch_warnings(), contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            warnings.simplefilter("ignore")
            yield captured
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _to_onnx(module: nn.Module, example: tuple[torch.Tensor], shapes: dict[str, Any], names: tuple[list[str],
             list[str]], opset: int) -> onnx.ModelProto:  # fmt: skip
    with _quiet(), torch.no_grad():
        program = torch.onnx.export(module.eval(), example, None, dynamo=True, dynamic_shapes=shapes,
                                    opset_version=opset, input_names=names[0], output_names=names[1],
                                    external_data=False, verbose=False, report=False)  # fmt: skip
    return program.model_proto


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip() and "Refer to" not in line]
    summary = next((line for line in lines if line.startswith("<class")), lines[0] if lines else "")
    return f"{type(exc).__name__}: {summary}"[:300]


def _weights_of(model: nn.Module) -> str:
    """What :func:`zoo.create_model` said about the net's weights (``model.pretrained``)."""
    pretrained = getattr(model, "pretrained", None)
    return "unknown" if pretrained is None else ("trained" if pretrained else "random")


def export(model: nn.Module | str | Path | Genotype, path: str | Path, graph: str = "deploy", opset: int = MIN_OPSET,
           class_names: Sequence[str] | None = None, threshold: float = DEFAULT_THRESHOLD,
           dynamic_hw: bool = True, check_model: bool = True, weights: str | None = None) -> ExportResult:  # fmt: skip
    """Write ``model`` (a zoo net, or a name/path/genotype built with random weights) to ``path`` as
    ONNX; ``graph`` is ``deploy`` or ``raw`` (see the module docstring). Height and width are
    dynamic where the net allows (``dynamic_hw=False`` fixes them to the genotype's input size);
    ``check_model`` runs ``onnx.checker`` with ``full_check``. ``weights`` ("trained", "random")
    is recorded in the metadata; by default "trained" for a net made with ``pretrained=True``,
    "random" for one made with ``pretrained=False``, "unknown" for any other module."""
    start = time.perf_counter()
    if not isinstance(model, nn.Module):
        model = zoo.create_model(model)
    genotype: Genotype | None = getattr(model, "genotype", None)
    if genotype is None:
        raise ExportError(
            "export needs a zoo net (a module with .genotype and .divisor); build it with zoo.create_model"
        )
    if graph not in GRAPHS:
        raise ExportError(f"graph must be one of {', '.join(GRAPHS)}, got {graph!r}")
    if opset < MIN_OPSET:
        raise ExportError(f"opset must be >= {MIN_OPSET}, got {opset}")
    if not 0.0 <= threshold <= 1.0:
        raise ExportError(f"threshold must be in [0, 1], got {threshold}")
    if graph == "deploy" and genotype.task.kind != "segmentation":
        raise ExportError(f"model {genotype.name!r} is a {genotype.task.kind} net: the deploy graph is for "
                          "segmentation nets; export it with graph 'raw'")  # fmt: skip
    names = _class_names(genotype, class_names)
    model = model.eval()
    proto, dynamic, failure = None, dynamic_hw, None
    for dynamic in (True, False) if dynamic_hw else (False,):
        module, example, shapes, inputs, outputs = _graph_and_shapes(model, graph, threshold, dynamic)
        try:
            proto = _to_onnx(module, example, shapes, (inputs, outputs), opset)
            break
        except Exception as exc:  # torch.export / the ONNX translation fail with many exception types
            failure = exc
    if proto is None:
        known = f"; known: {NOT_EXPORTABLE[genotype.name]}" if genotype.name in NOT_EXPORTABLE else ""
        raise ExportError(f"model {genotype.name!r}: ONNX export failed ({_first_line(failure)}){known}") from failure
    metadata = ExportMetadata(graph=graph, genotype=genotype, arch_hash=genotype.arch_hash, class_names=names,
                              threshold=float(threshold), mean=float(MEAN), std=float(STD),
                              divisor=int(getattr(model, "divisor", 1)), dynamic_hw=dynamic,
                              nasseg_version=zoo.__version__, weights=weights or _weights_of(model))  # fmt: skip
    for key, value in metadata.to_props().items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = f"nasseg {graph} graph of {genotype.name} (arch {genotype.arch_hash})"
    if check_model:
        try:
            onnx.checker.check_model(proto, full_check=True)
        except onnx.checker.ValidationError as exc:
            raise ExportError(f"model {genotype.name!r}: onnx.checker rejects the graph ({_first_line(exc)})") from None
    path = Path(path)
    with atomic_output(path) as tmp:  # a killed export leaves the previous file, never a truncated one
        onnx.save_model(proto, str(tmp))
    return ExportResult(path, metadata, time.perf_counter() - start)
