"""``nasseg latency table | predict``: a latency model of the target machine, and its predictions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from nasseg.cli import app, console, err_console, print_json
from nasseg.cli.progress import progress_bar
from nasseg.zoo.errors import NassegError

latency_app = typer.Typer(help="Latency tables of the target machine and predicted latency of nets.",
                          no_args_is_help=True)  # fmt: skip
app.add_typer(latency_app, name="latency")

DEFAULT_SPACES = "unet-ga,renas,nas-asdet,iac,autosegnet"


@latency_app.command("table")
def table(
    out: Annotated[Path, typer.Option("--out", help="Where to write the table (JSON).")],
    threads: Annotated[int, typer.Option(min=1, help="ONNX Runtime intra-op threads (as the line will run).")] = 2,
    runtime: Annotated[str, typer.Option(help="onnx-fp32 or onnx-int8.")] = "onnx-fp32",
    size: Annotated[str, typer.Option(help="Frame size HxW the nets will run at.")] = "256x256",
    spaces: Annotated[
        str | None,
        typer.Option(
            help=f"Search spaces whose shapes to time, comma-separated (default: {DEFAULT_SPACES}; none with --config)."
        ),
    ] = None,
    configs: Annotated[
        list[Path] | None,
        typer.Option(
            "--config",
            help="A search's settings (a file `nasseg search NAME ... --print-config` wrote, "
            "or its run folder): time the shapes of the space it searches (its widths, levels, cells). "
            "Repeatable.",
        ),
    ] = None,
    extend: Annotated[
        Path | None,
        typer.Option(help="A table of this machine to extend: its units are kept, only the new ones are timed."),
    ] = None,
    samples: Annotated[int, typer.Option(min=1, help="Random architectures traced per space.")] = 12,
    models: Annotated[str, typer.Option(help="Registered models (or genotype files) to add, comma-separated.")] = "",
    repeats: Annotated[int, typer.Option(min=3, help="Timed runs per unit (the median is kept).")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the sampled architectures.")] = 0,
    calibrate: Annotated[
        int, typer.Option(min=0, help="Whole nets per space timed to calibrate each family's sums (0: none).")
    ] = 3,
    search_size: Annotated[
        int | None,
        typer.Option(
            min=8,
            help="The --image-size searches will train at (AutoSegNet's depth and the "
            "GA's levels follow it; default: the frame size).",
        ),
    ] = None,
) -> None:
    """Time every op of the op table and every fixed block at the shapes the search spaces use, on
    ONNX Runtime on this machine; write the table that `search --latency-table` and `latency predict` read."""
    from nasseg.searchers.configs import load_config
    from nasseg.searchers.space_samples import config_samples, sample_genotypes, space_unit_calls
    from nasseg.serving.bench import parse_list
    from nasseg.serving.latency_table import build_table
    from nasseg.serving.latency_table import calibrate as calibrate_table
    from nasseg.zoo.io import atomic_write_text
    from nasseg.zoo.latency import RUNTIMES
    from nasseg.zoo.sizing import parse_size

    if runtime not in RUNTIMES:
        raise NassegError(f"--runtime {runtime!r}: choose {' or '.join(RUNTIMES)}")
    frame = parse_size(size)
    if spaces is None:
        spaces = "" if configs else DEFAULT_SPACES
    space_list = parse_list(spaces, "--spaces") if spaces.strip() else []
    search_configs = [load_config(path) for path in configs or []]
    model_list = [m.strip() for m in models.split(",") if m.strip()]
    base = extended_table(extend, runtime, threads, frame) if extend is not None else None
    searched = (search_size, search_size) if search_size else None
    calls = space_unit_calls(space_list, samples, frame, model_list, seed, searched, search_configs)
    unique = len({c.key for c in calls if base is None or c.key not in base["units"]})
    with progress_bar(f"timing {unique} units ({runtime}, {threads} threads)", total=unique) as advance:
        data = build_table(calls, runtime=runtime, threads=threads, repeats=repeats, size=frame,
                           sources={"spaces": space_list, "samples": samples, "models": model_list, "seed": seed,
                                    "search_size": list(searched or frame),
                                    "configs": [c.model_dump(mode="json") for c in search_configs]},
                           progress=lambda done, total: advance(), base=base)  # fmt: skip
    nets = [g for space in space_list for g in sample_genotypes(space, samples, searched or frame, seed)[:calibrate]]
    nets += [g for config in search_configs for g in config_samples(config, samples, seed)[:calibrate]]
    if nets:
        with progress_bar(f"calibrating on {len(nets)} whole nets", total=len(nets)) as advance:
            fresh = calibrate_table(data, nets, frame, progress=lambda done, total: advance())
        data["calibration"] = merged_calibration(data.get("calibration", {}), fresh)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(data, indent=1, sort_keys=True) + "\n")
    scales = ", ".join(f"{family} x{row['scale']:.2f}" for family, row in data.get("calibration", {}).items())
    skipped = f"; calibration {scales}" if scales else ""
    skipped += f"; not timed alone: {', '.join(sorted(data['not_timed']))}" if data["not_timed"] else ""
    what = f"{unique} new units ({len(data['units'])} in the table)" if base is not None else f"{unique} units"
    console.print(f"timed {what} in {data['seconds']:.0f} s on {data['machine']} "
                  f"({runtime}, {threads} threads; per-call overhead {data['call_overhead_ms']:.3f} ms){skipped} "
                  f"-> {out}", highlight=False)  # fmt: skip


def merged_calibration(kept: dict, fresh: dict) -> dict:
    """Per family: the median ratio over the nets an extended table was calibrated on and this run's."""
    import statistics

    merged = dict(kept)
    for family, row in fresh.items():
        ratios = [*kept.get(family, {}).get("ratios", []), *row["ratios"]]
        merged[family] = {"scale": round(statistics.median(ratios), 4), "nets": len(ratios), "ratios": ratios}
    return merged


def extended_table(path: Path, runtime: str, threads: int, frame: tuple[int, int]) -> dict:
    """The table ``--extend`` names, checked to be timed as this run times (runtime, threads, size)."""
    from nasseg.zoo.latency import LatencyTable, LatencyTableError

    try:
        data = LatencyTable.load(path).data
    except LatencyTableError as exc:
        raise NassegError(f"--extend: {exc}") from None
    timed = (data.get("runtime"), data.get("threads"), tuple(data.get("size") or ()))
    if timed != (runtime, threads, tuple(frame)):
        raise NassegError(
            f"--extend {path}: timed as {timed[0]}, {timed[1]} threads, size {list(timed[2])}; this "
            f"run times {runtime}, {threads} threads, size {list(frame)}: give the same options"
        )
    return data


@latency_app.command("predict")
def predict(
    model: Annotated[str, typer.Argument(help="Registered model name or genotype JSON file.")],
    table_path: Annotated[Path, typer.Option("--table", help="A table from `nasseg latency table`.")],
    size: Annotated[str | None, typer.Option(help="Frame size HxW (default: the table's).")] = None,
    measure: Annotated[bool, typer.Option("--measure", help="Also time the whole net (exports it; seconds).")] = False,
) -> None:
    """Predicted latency (JSON: predicted_ms, units looked up and estimated, time by unit kind)."""
    from nasseg import zoo
    from nasseg.zoo.latency import LatencyTable
    from nasseg.zoo.sizing import parse_size

    table_ = LatencyTable.load(table_path)
    frame = parse_size(size) if size else tuple(table_.data.get("size") or (256, 256))
    genotype = zoo.resolve_genotype(model)
    result = {"model": genotype.name, "size": list(frame), "runtime": table_.runtime, "threads": table_.threads,
              "table": str(table_path), **table_.predict(genotype, frame).to_dict()}  # fmt: skip
    if measure:
        from nasseg.serving.latency_table import measure_genotype_ms

        with err_console.status(f"exporting {genotype.name} and timing it on {table_.runtime}, {table_.threads} "
                                f"threads at {frame[0]}x{frame[1]} ...", spinner="dots"):  # fmt: skip
            result["measured_ms"] = round(measure_genotype_ms(genotype, frame, table_.threads, table_.runtime), 4)
        ratio = result["measured_ms"] / max(result["predicted_ms"], 1e-9)
        result["measured_over_predicted"] = round(ratio, 3)
        if not 0.5 <= ratio <= 2.0:
            share = result["estimated_share"]
            err_console.print(f"[yellow]note:[/] measured {result['measured_ms']:.2f} ms is {ratio:.1f}x the "
                              f"prediction ({share:.0%} of it estimated); a table made on another machine or "
                              "load, or one that lacks this net's units, predicts poorly: make one here with "
                              "`nasseg latency table --models NAME`", highlight=False)  # fmt: skip
    print_json(result)
