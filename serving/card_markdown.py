"""The Markdown page of a model card (:func:`serving.card.build_card` writes it as ``card.md``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nasseg.zoo.units import human, mib

__all__ = ["NO_ACCURACY", "render_markdown"]

NO_ACCURACY = "not trained / no accuracy recorded"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _size_text(nbytes: int | None, missing: str = "not measured") -> str:
    return missing if nbytes is None else f"{mib(nbytes)} ({nbytes:,} bytes)"


def _rate(row: dict[str, Any]) -> str:
    if "gflops_per_s" not in row:
        return "-"
    fraction = row.get("matmul_fraction")
    return f"{row['gflops_per_s']:.1f}" + (f" ({fraction:.0%})" if fraction is not None else "")


def _latency_lines(card: dict[str, Any]) -> list[str]:
    rows, bench = card["latency"], card["bench"]
    if not rows:
        return ["No latency measured. `nasseg report NAME --card DIR` measures it (without `--no-bench`), or "
                "`--bench FILE` takes the JSON of `nasseg bench --json-out`."]  # fmt: skip
    lines = [f"Batch 1 latency in ms ({bench.get('repeats', '?')} timed runs after {bench.get('warmup', '?')} "
             f"warm-up runs), throughput at a larger batch, achieved GFLOP/s = FLOPs / p50. "
             f"Graph timed: {bench.get('graph') or '?'}; weights: {bench.get('weights') or '?'}.", ""]  # fmt: skip
    table = []
    for row in sorted(rows, key=lambda r: (r["height"], r["width"], r["threads"], r["runtime"])):
        lat, thr = row["batch1"], row.get("throughput") or {}
        table.append([row["runtime"], row["threads"], f"{row['height']}x{row['width']}", f"{lat['p50_ms']:.2f}",
                      f"{lat.get('p90_ms', float('nan')):.2f}", f"{lat.get('p99_ms', float('nan')):.2f}",
                      f"{lat.get('mean_ms', float('nan')):.2f}",
                      f"{thr['images_per_s']:.1f} (batch {thr['batch']})" if thr else "-",
                      _rate(row),
                      row.get("provider", "-")])  # fmt: skip
    lines += _md_table(["runtime", "threads", "input", "p50", "p90", "p99", "mean", "images/s",
                        "GFLOP/s (of matmul)", "provider"], table, "lrlrrrrrrl")  # fmt: skip
    best = min(rows, key=lambda r: r["batch1"]["p50_ms"])
    lines += ["", f"Fastest batch-1 setting: **{best['runtime']}, {best['threads']} thread(s)**, "
              f"p50 {best['batch1']['p50_ms']:.2f} ms at {best['height']}x{best['width']}."]  # fmt: skip
    system = bench.get("system") or {}
    matmul = bench.get("matmul_gflops_per_s") or {}
    machine = ", ".join(f"{k} {system[k]}" for k in ("cpu", "cores", "torch", "onnxruntime") if system.get(k))
    if machine:
        lines += ["", f"Measured on: {machine}."]
    if matmul:
        rates = ", ".join(f"{v} GFLOP/s at {k} thread(s)" if k.isdigit() else f"{v} GFLOP/s ({k})"
                          for k, v in matmul.items())  # fmt: skip
        lines.append(f"Reference fp32 matmul (1024 x 1024) on that machine: {rates}.")
    if bench.get("peak_rss_mib") is not None:
        lines.append(f"Peak resident memory of the benchmark process: {bench['peak_rss_mib']} MiB.")
    notes = bench.get("notes") or []
    if notes:
        lines += ["", *[f"- {note}" for note in notes]]
    return lines


def _genotype_lines(card: dict[str, Any]) -> list[str]:
    summary = card["summary"]
    task, outputs = card["task"], card["task"]["num_classes"]
    io = f"{task['in_channels']} input channels -> {outputs} output{'s' * (outputs != 1)}"
    rows = [["family", card["family"]], ["arch hash", f"`{card['arch_hash']}`"], ["task", f"{task['kind']}, {io}"],
            *[[key, value] for key, value in summary["facts"].items()], ["head", summary["head"]]]  # fmt: skip
    lines = [*_md_table(["field", "value"], rows, "ll"), ""]
    for cell_name, cell in summary["cells"].items():
        ops = ", ".join(f"{op} x{n}" for op, n in cell["ops"].items())
        output = "loose ends" if cell["concat"] == "loose" else "concat"
        residual = " + residual of input 1" if cell["residual"] else ""
        lines.append(f"- **{cell_name}** cell: {cell['nodes']} nodes, {cell['edges']} edges ({ops}); output: "
                     f"{output} of nodes {', '.join(map(str, cell['output']))}{residual}")  # fmt: skip
    lines += [""] * bool(summary["cells"]) + [f"![genotype of {card['name']}]({card['picture']})"]
    if summary["darts"]:
        lines += ["", "DARTS format:", "", "```", summary["darts"], "```"]
    return lines


def _accuracy_lines(card: dict[str, Any]) -> list[str]:
    provenance = card["provenance"]
    metrics = card["accuracy"]
    if not metrics:
        lines = [f"{NO_ACCURACY[0].upper()}{NO_ACCURACY[1:]}: the genotype's provenance holds no metrics."]
    else:
        lines = _md_table(["metric", "value"], [[k, f"{v:.4f}"] for k, v in sorted(metrics.items())])
    facts = [f"{key}: {provenance[key]}" for key in ("dataset", "searcher", "seed", "search_seconds", "created")
             if provenance.get(key) is not None]  # fmt: skip
    if facts:
        lines += ["", "Provenance: " + "; ".join(facts) + "."]
    if provenance.get("source"):
        lines += ["", f"Source: {provenance['source']}"]
    return lines


def render_markdown(card: dict[str, Any]) -> str:
    """The Markdown page of a card dict (as :func:`build_card` makes it)."""
    h, w = card["input_size"]
    c = card["task"]["in_channels"]
    files, latency = card["files"], card["latency"]
    best = min(latency, key=lambda r: r["batch1"]["p50_ms"]) if latency else None
    inference_params = card["param_bytes"] * (card["params"] - card["params_auxiliary"]) // max(card["params"], 1)
    memory = inference_params + card["activation_bytes"]
    aux = (
        f"; {card['params_auxiliary']:,} of them in a training-only auxiliary head" if card["params_auxiliary"] else ""
    )
    glance = [
        ["parameters", f"{card['params']:,} ({human(card['params'])}), {mib(card['param_bytes'])} as fp32" + aux],
        [f"MACs (batch 1, {c}x{h}x{w})", f"{card['macs']:,} ({human(card['macs'])})"],
        ["FLOPs (2 x MACs)", human(card["flops"])],
        ["elementwise ops", human(card["elementwise_ops"])],
        ["peak activation memory", mib(card["activation_bytes"])],
        ["inference parameters + peak activations", mib(memory)],
        ["ONNX fp32 file", _size_text(files["onnx-fp32"])],
        ["ONNX int8 file", _size_text(files["onnx-int8"])],
        [
            "fastest batch-1 latency",
            f"{best['batch1']['p50_ms']:.2f} ms p50 ({best['runtime']}, {best['threads']} "
            f"thread(s), {best['height']}x{best['width']})"
            if best
            else "not measured",
        ],  # fmt: skip
        [
            "accuracy",
            ", ".join(f"{k} {v:.4f}" for k, v in sorted(card["accuracy"].items())) if card["accuracy"] else NO_ACCURACY,
        ],  # fmt: skip
    ]
    lines = [f"# Model card: {card['name']}", "",
             f"{card['family']} · {card['task']['kind']} · arch `{card['arch_hash']}` · "
             f"card by nasseg {card['card_nasseg_version']}", "", "## At a glance", "",
             *_md_table(["figure", "value"], glance, "ll"), "",
             f"MACs convention: {card['macs_convention']}", "", "## Genotype", "", *_genotype_lines(card), "",
             "## Compute and memory", "",
             f"One batch-1 forward at {c}x{h}x{w}: {card['macs']:,} MACs ({human(card['flops'])}FLOPs), "
             f"{human(card['elementwise_ops'])} elementwise ops, outputs "
             f"{', '.join('x'.join(map(str, s)) for s in card['output_shapes'])}.", "",
             f"Peak activation memory is {mib(card['activation_bytes'])}: the largest total of activation tensors "
             "alive at once during one no-grad forward (input included, parameters excluded). With the "
             f"{mib(inference_params)} of fp32 parameters used at inference a device needs about {mib(memory)} "
             "for the net, before the runtime's own overhead; activations grow with the input area and the batch.",
             "",
             "## Files", "", *_files_lines(card), "", "## Latency", "", *_latency_lines(card), "",
             "## Accuracy", "", *_accuracy_lines(card), "",
             "## Runtime notes", "", *[f"- {note}" for note in card.get("runtime_notes", [])], ""]  # fmt: skip
    return "\n".join(lines)


def _files_lines(card: dict[str, Any]) -> list[str]:
    files = card["files"]
    rows = []
    if card["file"] is not None:
        record = card.get("quantization")
        kind = "fp32" if record is None else record.get("dtype", "int8") if isinstance(record, dict) else "int8"
        rows.append([f"`{card['file']}`", f"ONNX {kind}, {card['graph']} graph (nasseg {card['nasseg_version']})",
                     _size_text(card["file_bytes"])])  # fmt: skip
    bench_files = (card["bench"] or {}).get("files") or {}
    int8 = (card["bench"] or {}).get("int8") or {}
    calibration = (int8.get("calibration") or {}).get("source")
    int8_label = ", ".join(
        part for part in ("ONNX int8", int8.get("format"), "per-channel" if int8.get("per_channel") else None,
                          "raw graph (benchmark)", f"calibrated on {calibration}" if calibration else None) if part
    )  # fmt: skip
    for key, label in (("onnx-fp32", "ONNX fp32, raw graph (benchmark)"), ("onnx-int8", int8_label)):
        if key in bench_files:
            rows.append(["-", label, _size_text(bench_files[key])])
    rows.append(["weights", "safetensors", _size_text(files["weights"], "none (random initialisation)")])
    lines = _md_table(["file", "what", "size"], rows, "llr")
    if card["graph"] == "deploy":
        names = ", ".join(card["class_names"])
        lines += ["", f"Deploy graph: uint8 NHWC frames in; normalisation (mean {card['mean']}, std {card['std']}), "
                  f"padding to a multiple of {card['divisor']}, net, crop and mask inside; classes {names}; "
                  f"threshold {card['threshold']}; "
                  f"{'dynamic' if card['dynamic_hw'] else 'fixed'} height and width."]  # fmt: skip
    if card["export_error"]:
        lines += ["", f"ONNX export failed: {card['export_error']}"]
    return lines
