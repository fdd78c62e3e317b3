"""``nasseg export``: a zoo net to an ONNX file a line-side box runs alone, checked on request."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nasseg.cli import app, console, err_console, print_json
from nasseg.serving.check import check
from nasseg.serving.export import GRAPHS, MIN_OPSET, ExportError, export
from nasseg.serving.int8_select import SELECT_CHOICES
from nasseg.serving.quantize import CALIB_COUNT, QuantizeError, compare_int8, int8_path, quantize
from nasseg.serving.resolve import load_for_export


@app.command("export")
def export_command(
    name: Annotated[str, typer.Argument(help="Registered model name or genotype .json.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write (default: NAME.onnx, or NAME.xml for openvino).")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="onnx, or openvino (an IR of the deploy graph, .xml + .bin).")
    ] = "onnx",
    precision: Annotated[
        str, typer.Option(help="openvino: f32, bf16 (runs bf16 where the CPU has it) or int8 (NNCF, --calib).")
    ] = "f32",
    graph: Annotated[str, typer.Option(help="deploy (uint8 frames -> probabilities, mask) or raw.")] = "deploy",
    run_check: Annotated[bool, typer.Option("--check", help="Compare with PyTorch on ONNX Runtime.")] = False,
    opset: Annotated[int, typer.Option(min=MIN_OPSET, help="ONNX opset.")] = MIN_OPSET,
    classes: Annotated[str | None, typer.Option(help="Class names, comma-separated.")] = None,
    threshold: Annotated[float, typer.Option(min=0, max=1, help="Mask threshold of one-output nets.")] = 0.5,
    weights: Annotated[str, typer.Option(help="auto (trained where available), trained or random.")] = "auto",
    static: Annotated[bool, typer.Option("--static", help="Fix H and W to the genotype's input size.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result (and check) as JSON.")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="Also write an int8 twin (OUT.int8.onnx) and compare.")] = False,
    calib: Annotated[Path | None, typer.Option(help="Dataset folder: int8 calibration (train), report (test).")] = None,
    calib_count: Annotated[int, typer.Option(help="Calibration images for --int8.")] = CALIB_COUNT,
    int8_nodes: Annotated[
        str, typer.Option(help="--int8: auto (only node groups measured faster in int8 here) or all.")
    ] = "auto",
    allow_random_weights: Annotated[
        bool, typer.Option("--allow-random-weights", help="Export a net without trained weights (sizing, speed).")
    ] = False,
) -> None:
    """Export a zoo net to ONNX (opset >= 18, dynamic batch and, where the net allows, H/W), or to an
    OpenVINO IR (--format openvino)."""
    if fmt not in ("onnx", "openvino"):
        raise ExportError(f"--format must be onnx or openvino, got {fmt!r}")
    if fmt == "openvino":
        export_openvino_command(name, out, precision, weights, calib, calib_count, allow_random_weights, as_json)
        return
    if precision != "f32":
        raise ExportError("--precision is for --format openvino (ONNX Runtime's int8: --int8 --calib DIR)")
    if graph not in GRAPHS:
        raise ExportError(f"--graph must be one of {', '.join(GRAPHS)}, got {graph!r}")
    if int8 and calib is None:
        raise QuantizeError("--int8 needs --calib DIR (a dataset folder: train images calibrate, test scores)")
    if calib is not None and not int8:
        raise QuantizeError("--calib is only used with --int8")
    if calib is not None and not calib.is_dir():
        raise QuantizeError(f"--calib {calib}: no such folder")
    if int8 and calib_count < 1:
        raise QuantizeError(f"--calib-count must be >= 1, got {calib_count}")
    if int8_nodes not in SELECT_CHOICES:
        raise QuantizeError(f"--int8-nodes must be one of {', '.join(SELECT_CHOICES)}, got {int8_nodes!r}")
    model, note = load_for_export(name, weights, allow_random=allow_random_weights)
    out = out if out is not None else Path(f"{model.genotype.name}.onnx")
    class_names = classes.split(",") if classes is not None else None
    with err_console.status(f"exporting {model.genotype.name} ({graph} graph, {note}) ...", spinner="dots"):
        result = export(model, out, graph=graph, opset=opset, class_names=class_names, threshold=threshold,
                        dynamic_hw=not static)  # fmt: skip
    meta = result.metadata
    axes = "batch, height, width" if meta.dynamic_hw else f"batch (H x W fixed at {meta.genotype.task.input_size})"
    line = (f"wrote {out}: {graph} graph of {meta.genotype.name} (arch {meta.arch_hash}), {note}, dynamic {axes}, "
            f"{out.stat().st_size / 2**20:.1f} MiB, {result.seconds:.1f} s")  # fmt: skip
    report = None
    if run_check:
        with err_console.status(f"checking {out} against PyTorch ...", spinner="dots"):
            report = check(out, model)
    quantized = comparison = None
    if int8:
        with err_console.status(f"quantising {out} to int8 ({calib_count} calibration images) ...", spinner="dots"):
            quantized = quantize(out, int8_path(out), calib, count=calib_count, select=int8_nodes)
        with err_console.status(f"scoring fp32 and int8 on {calib} (test split) ...", spinner="dots"):
            comparison = compare_int8(out, quantized.path, calib)
    if as_json:
        int8_json = {"path": str(quantized.path), "quantization": quantized.quantization,
                     "comparison": comparison.to_dict()} if quantized else None  # fmt: skip
        print_json({"path": str(out), "graph": graph, "model": meta.genotype.name, "arch_hash": meta.arch_hash,
                    "dynamic_hw": meta.dynamic_hw, "class_names": meta.class_names, "weights": note,
                    "seconds": round(result.seconds, 2), "check": report.to_dict() if report else None,
                    "int8": int8_json})  # fmt: skip
    else:
        console.print(line, highlight=False)
        if report is not None:
            console.print(report.summary(), highlight=False)
        if quantized is not None:
            kind = "int8 QDQ, per-channel weights" if quantized.quantization["per_channel"] else "kept float"
            console.print(f"wrote {quantized.path}: {kind}, calibrated on "
                          f"{quantized.quantization['calibration']['count']} images, "
                          f"{quantized.path.stat().st_size / 2**20:.1f} MiB, {quantized.seconds:.1f} s",
                          highlight=False)  # fmt: skip
            console.print(f"  int8 nodes: {quantized.quantization['note']}", highlight=False)
            for text in comparison.lines():
                console.print(text, highlight=False)
    if report is not None:
        report.raise_for_failure()


def export_openvino_command(name: str, out: Path | None, precision: str, weights: str, calib: Path | None,
                            calib_count: int, allow_random: bool, as_json: bool) -> None:  # fmt: skip
    """``nasseg export NAME --format openvino``: the deploy graph through ONNX into an IR (see
    :mod:`serving.openvino_runtime`); the ONNX step stays in a temporary folder."""
    import tempfile

    from nasseg.serving.openvino_runtime import check_precision, export_openvino

    check_precision(precision)
    if calib is not None and not calib.is_dir():
        raise QuantizeError(f"--calib {calib}: no such folder")
    model, note = load_for_export(name, weights, allow_random=allow_random)
    out = out if out is not None else Path(f"{model.genotype.name}.xml")
    with tempfile.TemporaryDirectory(prefix="nasseg-export-") as tmp:
        onnx_file = Path(tmp) / f"{model.genotype.name}.onnx"
        with err_console.status(f"exporting {model.genotype.name} (deploy graph, {note}) to OpenVINO "
                                f"({precision}) ...", spinner="dots"):  # fmt: skip
            export(model, onnx_file)
            export_openvino(onnx_file, out, precision, calib, calib_count)
    size = (out.stat().st_size + out.with_suffix(".bin").stat().st_size) / 2**20
    if as_json:
        print_json({"path": str(out), "weights_file": str(out.with_suffix(".bin")), "format": "openvino",
                    "precision": precision, "model": model.genotype.name, "arch_hash": model.genotype.arch_hash,
                    "weights": note, "mib": round(size, 2)})  # fmt: skip
        return
    console.print(f"wrote {out} (+ {out.with_suffix('.bin').name}): OpenVINO IR of the deploy graph of "
                  f"{model.genotype.name} (arch {model.genotype.arch_hash}), {precision}, {note}, {size:.1f} MiB; "
                  f"run it with nasseg serve {out} --runtime openvino", highlight=False)  # fmt: skip
