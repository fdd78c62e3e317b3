"""Model cards: what a person choosing edge hardware needs to know about one net.

:func:`card_from_onnx` is the cheap card of an exported file (no export, no benchmark; the BentoML
service answers ``GET /model`` with it). :func:`build_card` writes ``card.md``, ``card.json`` and
``cells.png`` into a folder: genotype summary and picture, parameters, MACs and their convention,
peak activation memory, file sizes, a latency table (from :func:`serving.bench.bench_model`) and
the accuracy recorded in the genotype's provenance.

Counts come from :func:`zoo.profile` run on the ``meta`` device (shapes only, no arithmetic), so a
card costs a fraction of a real forward (well under a second for the zoo nets once torch is warm);
the peak activation memory is tracked there with ``zoo.profile``'s accounting (:func:`model_figures`).
The Markdown page is :mod:`serving.card_markdown`'s.
"""

from __future__ import annotations

import copy
import functools
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasseg import zoo
from nasseg.serving.card_markdown import render_markdown
from nasseg.serving.export import (
    ExportError,
    ExportMetadata,
    default_class_names,
    export,
    quantization_record,
    read_metadata,
    read_props,
)
from nasseg.serving.resolve import weights_file as _weights_file
from nasseg.zoo.errors import NassegError
from nasseg.zoo.genotype import (
    ASPPHead,
    AutoSegNetArch,
    Cell,
    CellNetArch,
    ClassifierHead,
    FusionHead,
    Genotype,
    IACBaseRef,
    IACUNetArch,
    SMPArch,
    UNetArch,
)
from nasseg.zoo.io import atomic_write_text
from nasseg.zoo.plot import plot_genotype
from nasseg.zoo.tiling import OVERLAP, TILE

__all__ = [
    "CARD_SCHEMA", "CardError", "CardResult", "build_card", "card_from_onnx", "card_genotype", "check_bench",
    "genotype_summary", "load_bench", "model_figures", "render_markdown", "run_bench",
]  # fmt: skip

CARD_SCHEMA = "nasseg.card/1"


class CardError(NassegError):
    """A model card cannot be made as asked (a bench file that is not one, an ONNX file of another net)."""


# -- figures -----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _figures(genotype: Genotype) -> tuple[tuple[str, Any], ...]:
    shape = (1, genotype.task.in_channels, *genotype.task.input_size)
    try:
        with torch.device("meta"):
            model = zoo.build_model(genotype).eval()
        result = zoo.profile(model, shape, device="meta")
    except (NotImplementedError, RuntimeError):  # an op without a meta kernel: profile for real
        result = zoo.profile(zoo.build_model(genotype), shape)
    return (
        ("input_shape", list(shape)),
        ("params", result.params_total),
        ("params_trainable", result.params_trainable),
        ("params_auxiliary", result.params_auxiliary),
        ("param_bytes", result.param_bytes),
        ("macs", result.macs),
        ("flops", result.flops),
        ("elementwise_ops", result.elementwise_ops),
        ("macs_convention", result.convention),
        ("activation_bytes", result.peak_activation_bytes),
        ("output_shapes", [list(s) for s in result.output_shapes]),
    )


def model_figures(genotype: Genotype) -> dict[str, Any]:
    """Parameters, MACs, FLOPs, elementwise ops and peak activation bytes of one batch-1 forward at
    ``genotype.task.input_size``: the figures of :func:`zoo.profile` (same convention, same
    numbers), computed on the meta device and cached per genotype."""
    return copy.deepcopy(dict(_figures(genotype)))


# -- genotype summary --------------------------------------------------------------------------


def _cell_summary(cell: Cell) -> dict[str, Any]:
    ops = Counter(op for edges in cell.nodes for op, _ in edges)
    return {
        "nodes": cell.steps,
        "edges": sum(len(edges) for edges in cell.nodes),
        "ops": dict(ops.most_common()),
        "output": cell.output_nodes(),
        "concat": cell.concat if isinstance(cell.concat, str) else list(cell.concat),
        "residual": cell.residual,
    }


def _output_text(genotype: Genotype) -> str:
    task = genotype.task
    k = task.num_classes
    if task.kind == "segmentation":
        return "1 output channel, sigmoid (binary mask)" if k == 1 else f"{k} output channels, softmax (class mask)"
    if task.kind == "classification":
        return f"{k} classes, softmax"
    return f"{k}-channel image (image-to-image translation)"


def _bits(bits: list[bool]) -> str:
    return "".join("1" if b else "0" for b in bits)


def genotype_summary(genotype: Genotype) -> dict[str, Any]:
    """A JSON-ready description of a genotype: ``facts`` (label -> sentence), ``head``, ``cells``
    (per cell: node and edge counts, op counts, output nodes, residual) and ``darts`` text."""
    arch, task = genotype.arch, genotype.task
    facts: dict[str, str] = {}
    head = _output_text(genotype)
    if isinstance(arch, CellNetArch):
        facts["cells"] = (
            f"{arch.layers} cells, {arch.init_channels} initial channels, reduction cells at "
            f"{', '.join(map(str, arch.reductions()))} "
            f"({'own reduce cell' if arch.reduce else 'normal cell at stride 2'})"
        )
        facts["stem"] = f"{arch.stem} (x{arch.STEM_STRIDES[arch.stem]} stride, {arch.stem_multiplier} x C channels)"
        facts["output stride"] = str(arch.output_strides()[-1])
        if isinstance(arch.head, ClassifierHead):
            head = f"global pooling + linear classifier{' (+ auxiliary head in training)' if arch.head.auxiliary else ''}; {head}"  # noqa: E501
        elif isinstance(arch.head, ASPPHead):
            rates = "/".join(map(str, arch.head.rates))
            head = f"DeepLabv3 ASPP (output stride {arch.head.output_stride}, rates {rates}, {arch.head.channels} channels); {head}"  # noqa: E501
        elif isinstance(arch.head, FusionHead):
            ds = ", deep supervision in training" if arch.head.deep_supervision else ""
            head = f"adaptive multi-scale fusion of {arch.head.levels} levels{ds}; {head}"
    elif isinstance(arch, AutoSegNetArch):
        from nasseg.zoo.families.autosegnet import autosegnet_depth, long_skip_levels

        downs, hdc = autosegnet_depth(task.input_size, arch.min_size, arch.min_ratio)
        facts["layers"] = (
            f"{downs} downsampling + {hdc} HDC + bridge + {downs} upsampling layers at "
            f"{task.input_size[0]}x{task.input_size[1]} (depth follows the input size)"
        )
        facts["stem channels"] = str(arch.stem_channels)
        facts["long skips"] = f"{_bits(long_skip_levels(arch.long_skips, downs))} (top level first)"
    elif isinstance(arch, UNetArch):
        facts["encoder widths"] = ", ".join(map(str, arch.channels)) + " (decoder mirrors them)"
        facts["skips"] = f"{_bits(arch.skips)} (inner levels, outermost first)"
        facts["convs"] = (
            f"{arch.kernel}x{arch.kernel}, stride {arch.stride}, norm {arch.norm}, dropout {arch.dropout:g}"
        )
    elif isinstance(arch, IACUNetArch):
        if isinstance(arch.base, IACBaseRef):
            facts["base"] = f"{arch.base.model} (arch {arch.base.arch_hash}, frozen)"
        else:
            facts["encoder"] = arch.base.encoder
            facts["decoder widths"] = ", ".join(map(str, arch.base.decoder_channels))
        if arch.cell is not None:
            levels = "every skip" if arch.levels is None else "skip levels " + ", ".join(map(str, arch.levels))
            facts["implant"] = f"one adaptive cell ({arch.cell_channels} channels) in {levels}"
    elif isinstance(arch, SMPArch):
        facts["architecture"] = f"segmentation-models-pytorch {arch.arch}"
        facts["encoder"] = f"{arch.encoder} (depth {arch.encoder_depth})"
        if arch.decoder_channels:
            facts["decoder widths"] = ", ".join(map(str, arch.decoder_channels))
    cells = {name: _cell_summary(cell) for name, cell in genotype.cells().items()}
    darts = genotype.to_darts() if cells and isinstance(arch, CellNetArch | IACUNetArch) else None
    return {"facts": facts, "head": head, "cells": cells, "darts": darts}


# -- the card of an exported file --------------------------------------------------------------


#: What a deployer must know about running any nasseg graph off the beaten path.
RUNTIME_NOTES = (
    "OpenVINO: on a CPU with bf16 (AVX-512 BF16 or AMX), OpenVINO compiles a graph in bf16 by default. Masks then "
    "agree with ONNX Runtime fp32 on only 99.72 % of pixels (measured for smp-fpn-efficientnet-b0), against "
    "99.9999 % in fp32. Compile with {'INFERENCE_PRECISION_HINT': 'f32'} "
    "(core.compile_model(model, 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})) to get the fp32 masks.",
    f"Frames above {TILE}x{TILE} pixels: nasseg serve and nasseg predict run them in overlapping tiles "
    f"({OVERLAP} px overlap, tile rounded down to the divisor), so memory stays bounded by the tile; "
    "a runtime fed the whole frame needs memory for its whole area.",
    "The deploy graph pads a frame to the divisor by reflection and crops back: the borders of a frame whose sides "
    "are not multiples of the divisor differ slightly from a tiled or cropped run.",
)


def _card_core(genotype: Genotype, figures: dict[str, Any]) -> dict[str, Any]:
    provenance = genotype.provenance.model_dump(mode="json")
    return {
        "schema": CARD_SCHEMA,
        "name": genotype.name,
        "family": genotype.family,
        "arch_hash": genotype.arch_hash,
        "task": genotype.task.model_dump(mode="json"),
        "input_size": list(genotype.task.input_size),
        "params": figures["params"],
        "params_trainable": figures["params_trainable"],
        "params_auxiliary": figures["params_auxiliary"],
        "param_bytes": figures["param_bytes"],
        "macs": figures["macs"],
        "flops": figures["flops"],
        "elementwise_ops": figures["elementwise_ops"],
        "macs_convention": figures["macs_convention"],
        "activation_bytes": figures["activation_bytes"],
        "output_shapes": figures["output_shapes"],
        "summary": genotype_summary(genotype),
        "provenance": provenance,
        "accuracy": provenance["metrics"] or None,
        "runtime_notes": list(RUNTIME_NOTES),
    }


def _deployment(meta: ExportMetadata, props: dict[str, str], path: Path) -> dict[str, Any]:
    return {
        "file": path.name,
        "file_bytes": path.stat().st_size,
        "graph": meta.graph,
        "class_names": list(meta.class_names),
        "threshold": meta.threshold,
        "mean": meta.mean,
        "std": meta.std,
        "divisor": meta.divisor,
        "dynamic_hw": meta.dynamic_hw,
        "quantization": quantization_record(props),
        "nasseg_version": meta.nasseg_version,
    }


def card_from_onnx(path: str | Path) -> dict[str, Any]:
    """The card of an exported nasseg ONNX file, cheaply (no export, no benchmark): its metadata
    (genotype, arch hash, class names, threshold, mean/std, graph, ``quantization`` if recorded,
    the exporting nasseg version), the batch-1 figures of :func:`model_figures` at the genotype's
    input size, the file size, and the provenance (accuracy: ``provenance.metrics``, ``None`` if
    none). Raises :class:`~serving.export.ExportError` for a missing file or a file nasseg did not write."""
    path = Path(path)
    props = read_props(path)
    meta = ExportMetadata.from_props(props, str(path))
    return {**_card_core(meta.genotype, model_figures(meta.genotype)), **_deployment(meta, props, path)}


# -- benchmark results -------------------------------------------------------------------------

_ROW_KEYS = ("runtime", "threads", "height", "width", "batch1")


def check_bench(bench: Any, where: str = "bench", genotype: Genotype | None = None) -> dict[str, Any]:
    """``bench`` if it has the shape :func:`serving.bench.bench_model` returns (and, given a
    ``genotype``, its architecture); :class:`CardError` naming ``where`` and the problem otherwise."""
    if not isinstance(bench, dict):
        raise CardError(f"{where}: a benchmark result must be a JSON object, got {type(bench).__name__}")
    rows = bench.get("rows")
    if not isinstance(rows, list):
        raise CardError(f"{where}: not a benchmark result (no 'rows' list; write one with `nasseg bench --json-out`)")
    for i, row in enumerate(rows):
        missing = [key for key in _ROW_KEYS if not isinstance(row, dict) or key not in row]
        if missing or not isinstance(row["batch1"], dict) or "p50_ms" not in row["batch1"]:
            what = ", ".join(missing) or "batch1.p50_ms"
            raise CardError(f"{where}: rows[{i}] lacks {what}")
    if genotype is not None and bench.get("arch_hash") not in (None, genotype.arch_hash):
        raise CardError(f"{where}: the benchmark is of arch {bench['arch_hash']} ({bench.get('model', '?')}), "
                        f"not of {genotype.name!r} (arch {genotype.arch_hash})")  # fmt: skip
    return bench


def load_bench(path: str | Path, genotype: Genotype | None = None) -> dict[str, Any]:
    """Read a benchmark JSON written by ``nasseg bench --json-out`` and check it (:func:`check_bench`)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CardError(f"{path}: no such benchmark file") from None
    except json.JSONDecodeError as exc:
        raise CardError(f"{path}: line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CardError(f"{path}: cannot read benchmark file: {exc}") from None
    return check_bench(data, str(path), genotype)


def run_bench(model: nn.Module | Genotype, size: tuple[int, int], *, repeats: int = 10,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """A small :func:`serving.bench.bench_model` run for a card: batch 1 and a throughput batch at
    ``size``, 1 and 2 threads, ONNX Runtime fp32 and int8 and PyTorch eager, ``repeats`` timed runs."""
    from nasseg.serving.bench import bench_model  # heavy (ONNX Runtime quantisation); only cards with latency need it

    return bench_model(model, sizes=(tuple(size),), threads=(1, 2), warmup=2, repeats=repeats, progress=progress)


# -- the card folder ---------------------------------------------------------------------------


#: The parts of a benchmark result a card keeps (besides its rows, the latency table).
_BENCH_KEYS = ("model", "weights", "device", "graph", "warmup", "repeats", "files", "int8", "matmul_gflops_per_s",
               "peak_rss_mib", "system", "notes", "seconds")  # fmt: skip


@dataclass(frozen=True)
class CardResult:
    """What :func:`build_card` wrote, and the card itself (the content of ``card.json``)."""

    markdown: Path
    json: Path
    picture: Path
    onnx: Path | None
    card: dict[str, Any]


def _is_onnx(name: str | Path | Genotype) -> bool:
    return not isinstance(name, Genotype) and str(name).endswith(".onnx")


def card_genotype(name: str | Path | Genotype, size: tuple[int, int] | None = None) -> Genotype:
    """The genotype a card describes: a registered name, a genotype ``.json``, the genotype inside
    an exported ``.onnx``, or a :class:`Genotype`; at ``size`` (height, width) when given (checked
    against the net's divisor; size-dependent families such as autosegnet take their depth from it)."""
    genotype = read_metadata(name).genotype if _is_onnx(name) else zoo.resolve_genotype(name)
    if size is not None:
        genotype = zoo.apply_overrides(genotype, {"input_size": [int(s) for s in size]})
    zoo.check_input_size(genotype, genotype.task.input_size)
    return genotype


def _export_for_card(genotype: Genotype, out_dir: Path, weights: Path | None) -> tuple[Path | None, str | None]:
    """Export the net into ``out_dir``: (path, None), or (None, the one-line reason it failed)."""
    model = zoo.create_model(genotype, pretrained=weights is not None)
    graph = "deploy" if genotype.task.kind == "segmentation" else "raw"
    try:
        return export(model, out_dir / f"{genotype.name}.onnx", graph=graph).path, None
    except ExportError as exc:
        return None, str(exc)


def _onnx_deployment(path: Path, genotype: Genotype) -> dict[str, Any]:
    """The deployment fields of an exported file, which must be of ``genotype``'s architecture."""
    props = read_props(path)
    meta = ExportMetadata.from_props(props, str(path))
    if meta.arch_hash != genotype.arch_hash:
        raise CardError(f"{path}: the ONNX file is of arch {meta.arch_hash} ({meta.genotype.name}), "
                        f"not of {genotype.name!r} (arch {genotype.arch_hash})")  # fmt: skip
    return _deployment(meta, props, path)


def _no_deployment(genotype: Genotype) -> dict[str, Any]:
    """The deployment fields when no ONNX file could be made."""
    keys = ("file", "file_bytes", "graph", "threshold", "mean", "std", "divisor", "dynamic_hw", "quantization")
    return {**dict.fromkeys(keys), "class_names": default_class_names(genotype.task.num_classes),
            "nasseg_version": zoo.__version__}  # fmt: skip


def build_card(name: str | Path | Genotype, out_dir: str | Path, *, bench: dict | None = None,
               onnx_path: str | Path | None = None, size: tuple[int, int] | None = None,
               progress: Callable[[str], None] | None = None) -> CardResult:  # fmt: skip
    """Write the model card of ``name`` (a registered name, a genotype ``.json``, an exported
    ``.onnx`` or a :class:`Genotype`) into ``out_dir``: ``card.md``, ``card.json``, ``cells.png``,
    and the fp32 ONNX export ``NAME.onnx`` unless ``onnx_path`` names one already made.

    Figures are for batch 1 at ``size`` (default: the genotype's input size). ``bench`` is a
    :func:`serving.bench.bench_model` result (its rows make the latency table, its files the int8
    size); without it the card says that no latency was measured. ``progress`` gets one line per step."""
    say = progress or (lambda _message: None)
    out_dir = Path(out_dir)
    genotype = card_genotype(name, size)
    onnx_file = Path(onnx_path) if onnx_path is not None else Path(name) if _is_onnx(name) else None
    given = _onnx_deployment(onnx_file, genotype) if onnx_file is not None else None
    if bench is not None:
        bench = check_bench(bench, "bench", genotype)
    if out_dir.exists() and not out_dir.is_dir():
        raise CardError(f"{out_dir}: exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    say(f"profiling {genotype.name}")
    card = _card_core(genotype, model_figures(genotype))
    say("drawing the genotype")
    picture = plot_genotype(genotype, out_dir / "cells.png")
    weights = _weights_file(genotype)
    export_error = None
    if onnx_file is None:
        say(f"exporting {genotype.name} to ONNX")
        onnx_file, export_error = _export_for_card(genotype, out_dir, weights)
    card.update(given or (_onnx_deployment(onnx_file, genotype) if onnx_file else _no_deployment(genotype)))
    int8_file = card["quantization"] is not None
    bench_files = (bench or {}).get("files") or {}
    card["files"] = {
        "onnx-fp32": bench_files.get("onnx-fp32") if int8_file else card["file_bytes"],
        "onnx-int8": card["file_bytes"] if int8_file else bench_files.get("onnx-int8"),
        "weights": weights.stat().st_size if weights is not None else None,
    }
    card["export_error"] = export_error
    card["latency"] = list(bench["rows"]) if bench else []
    card["bench"] = {key: bench.get(key) for key in _BENCH_KEYS} if bench else None
    card["picture"] = picture.name
    card["card_nasseg_version"] = zoo.__version__
    say("writing the card")
    json_path, md_path = out_dir / "card.json", out_dir / "card.md"
    atomic_write_text(json_path, json.dumps(card, indent=2, sort_keys=True) + "\n")
    atomic_write_text(md_path, render_markdown(card))
    return CardResult(md_path, json_path, picture, onnx_file, card)
