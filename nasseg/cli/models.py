"""``nasseg list | info | report | validate``: the models of the zoo."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from nasseg import zoo
from nasseg.cli import app, console, err_console, print_json
from nasseg.zoo.genotype import Genotype
from nasseg.zoo.registry import genotype_dirs
from nasseg.zoo.units import human as _human
from nasseg.zoo.units import mib as _bytes


def _has_weights(genotype: Genotype) -> bool:
    from nasseg.zoo.weight_files import find_weights

    try:
        find_weights(genotype)
    except zoo.WeightsError:
        return False
    return True


def _costs() -> dict[str, dict]:
    """The shipped models' parameters and MACs (``genotypes/costs.json``; read without torch)."""
    import json
    from importlib import resources

    try:
        return json.loads((resources.files("nasseg.genotypes") / "costs.json").read_text())
    except (OSError, ValueError):
        return {}


def _data_name(genotype: Genotype) -> str:
    """The data set a model was trained on, as a short name (``synth-defects``), or ``-``."""
    dataset = genotype.provenance.dataset or ""
    return dataset.split(" ", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "-"


def _macs_text(cost: dict | None) -> str:
    return f"{cost['macs'] / 1e9:.2f} G" if cost else "-"


@app.command("list")
def list_command(
    pattern: Annotated[str, typer.Argument(help="Shell-style pattern, e.g. 'smp-*'.")] = "*",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output (every field).")] = False,
    wide: Annotated[bool, typer.Option("--wide", help="Every column (about 130 characters wide).")] = False,
) -> None:
    """List the registered models: name, family, data, test IoU, MACs and weights (--wide: all columns)."""
    costs = _costs()
    rows = []
    for name in zoo.list_models(pattern):
        genotype = zoo.get_genotype(name)
        task = genotype.task
        cost = costs.get(name)
        rows.append(
            {
                "name": name,
                "family": genotype.family,
                "task": task.kind,
                "data": _data_name(genotype),
                "in_channels": task.in_channels,
                "num_classes": task.num_classes,
                "input_size": list(task.input_size),
                "weights": _has_weights(genotype),
                "test_iou": genotype.provenance.metrics.get("test_iou"),
                "macs": cost["macs"] if cost else None,
                "macs_size": cost["macs_size"] if cost else None,
                "params": cost["params"] if cost else None,
                "searcher": genotype.provenance.searcher or "",
                "source": genotype.provenance.source or "",
            }
        )
    if as_json:
        print_json(rows)
        return
    if wide:
        table = Table(title=f"nasseg models ({len(rows)})")
        columns = ("name", "family", "task", "data", "input", "classes", "weights", "test IoU", "GMACs", "params",
                   "searcher")  # fmt: skip
    else:  # 80 columns: no box, one space between columns
        table = Table(title=f"nasseg models ({len(rows)})", box=None, padding=(0, 1, 0, 0), title_justify="left")
        columns = ("name", "family", "data", "IoU", "GMACs", "wts")
    for column in columns:
        table.add_column(column, no_wrap=column == "name", justify="right" if column in ("IoU", "GMACs") else "left")
    for row in rows:
        iou = f"{row['test_iou']:.3f}" if row["test_iou"] is not None else "-"
        macs = f"{row['macs'] / 1e9:.2f}" if row["macs"] is not None else "-"
        weights = "yes" if row["weights"] else "-"
        if wide:
            size = "x".join(map(str, row["input_size"]))
            params = f"{row['params'] / 1e6:.2f} M" if row["params"] is not None else "-"
            table.add_row(row["name"], row["family"], row["task"], row["data"], f"{row['in_channels']}x{size}",
                          str(row["num_classes"]), weights, iou, macs, params, row["searcher"] or "-")  # fmt: skip
        else:
            table.add_row(row["name"], row["family"], row["data"], iou, macs, weights)
    console.print(table)
    console.print("IoU: test IoU of the shipped weights; GMACs at 256x256 for segmentation nets (classification "
                  "nets at their input size); wts: trained weights here. --wide: every column; --json: all fields.",
                  highlight=False)  # fmt: skip


@app.command()
def info(
    name: Annotated[str, typer.Argument(help="Registered name or path to a genotype .json.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the canonical genotype JSON.")] = False,
) -> None:
    """Show a model's genotype: task, architecture hash, cells, weights and provenance."""
    genotype = zoo.resolve_genotype(name)
    if as_json:
        sys.stdout.write(genotype.to_json())
        return
    try:
        model = zoo.build_model(genotype)
        total, divisor = sum(p.numel() for p in model.parameters()), str(model.divisor)
        auxiliary = sum(p.numel() for name, p in model.named_parameters() if name.startswith("auxiliary"))
        params = f"{total - auxiliary:,} (the net as deployed)"
        if auxiliary:
            params += f" + {auxiliary:,} in the auxiliary head (training only) = {total:,}"
    except zoo.BuildError as exc:
        params, divisor = f"- ({exc})", "-"
    table = Table(show_header=False, title=f"{genotype.name}")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    task = genotype.task
    table.add_row("family", genotype.family)
    table.add_row(
        "task",
        f"{task.kind}, {task.in_channels} -> {task.num_classes}, input {task.input_size[0]}x{task.input_size[1]}",
    )
    table.add_row("arch hash", genotype.arch_hash)
    table.add_row("parameters", params)
    cost = _costs().get(genotype.name)
    if cost and genotype.source is not None and genotype.source.parent == genotype_dirs()[0].resolve():
        table.add_row("MACs", f"{_macs_text(cost)} at {'x'.join(map(str, cost['macs_size']))} (FLOPs = 2 x MACs)")
    metrics = genotype.provenance.metrics
    if "test_iou" in metrics:
        dice = f", Dice {metrics['test_dice']:.3f}" if "test_dice" in metrics else ""
        table.add_row("test IoU", f"{metrics['test_iou']:.3f}{dice} (the shipped weights, on the test split of "
                                  f"{_data_name(genotype)})")  # fmt: skip
    recipe = genotype.provenance.train_recipe or {}
    if recipe.get("crop"):
        table.add_row("trained at", f"{'x'.join(map(str, recipe['crop']))} px ({recipe.get('data', 'see dataset')}); "
                                    "serve frames of about that scale")  # fmt: skip
    table.add_row("input divisor", divisor)
    table.add_row("weights", "available" if _has_weights(genotype) else ("missing" if genotype.weights else "none"))
    if genotype.cells():
        table.add_row("DARTS format", genotype.to_darts() if genotype.family in ("cellnet", "iac-unet") else "-")
    provenance = genotype.provenance
    for key in ("searcher", "dataset", "seed", "source"):
        value = getattr(provenance, key)
        if value is not None:
            table.add_row(key, str(value))
    if genotype.source is not None:
        table.add_row("file", str(genotype.source))
    console.print(table)


@app.command()
def report(
    name: Annotated[str, typer.Argument(help="Registered name or path to a genotype .json (or, with --card, .onnx).")],
    input_size: Annotated[
        tuple[int, int] | None,
        typer.Option("--input-size", "--size", help="Input height and width (default: the genotype's)."),
    ] = None,
    batch: Annotated[int, typer.Option(min=1, help="Batch size of the profiled forward pass.")] = 1,
    layers: Annotated[int, typer.Option(help="Rows of the per-layer table, by MACs (0: none, -1: all).")] = 12,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    card: Annotated[
        Path | None,
        typer.Option("--card", help="Write a model card (card.md, card.json, cells.png, NAME.onnx) into this folder."),
    ] = None,
    bench_file: Annotated[
        Path | None, typer.Option("--bench", help="With --card: latency from this `nasseg bench --json-out` file.")
    ] = None,
    no_bench: Annotated[bool, typer.Option("--no-bench", help="With --card: measure no latency.")] = False,
) -> None:
    """Parameters, MACs, FLOPs, elementwise work and peak activation memory of one forward pass;
    with --card, a model card for choosing edge hardware (latency measured unless --no-bench)."""
    if card is not None or bench_file is not None or no_bench:
        _write_card(name, card, input_size, bench_file, no_bench)
        return
    genotype = zoo.resolve_genotype(name)
    if input_size is not None:  # size-dependent families (autosegnet) take their depth from it
        genotype = zoo.apply_overrides(genotype, {"input_size": list(input_size)})
    height, width = genotype.task.input_size
    model = zoo.build_model(genotype)
    shape = (batch, genotype.task.in_channels, height, width)
    with err_console.status(f"profiling {genotype.name} at {shape} ...", spinner="dots"):
        result = zoo.profile(model, shape)
    if as_json:
        print_json({"model": genotype.name, "arch_hash": genotype.arch_hash, **result.to_dict()})
        return
    summary = Table(title=f"{genotype.name}  (arch {genotype.arch_hash})", show_header=False)
    summary.add_column("figure", style="bold")
    summary.add_column("value", justify="right")
    summary.add_row("input", "x".join(map(str, shape)))
    summary.add_row("parameters", f"{result.params_total:,}")
    summary.add_row("  trainable", f"{result.params_trainable:,}")
    if result.params_auxiliary:
        summary.add_row("  auxiliary head (training only)", f"{result.params_auxiliary:,}")
    summary.add_row("parameter memory", _bytes(result.param_bytes))
    summary.add_row("MACs", f"{result.macs:,}  ({_human(result.macs)})")
    summary.add_row("FLOPs (2 x MACs)", _human(result.flops))
    summary.add_row("elementwise ops", _human(result.elementwise_ops))
    summary.add_row("peak activation memory", _bytes(result.peak_activation_bytes))
    summary.add_row("outputs", ", ".join("x".join(map(str, s)) for s in result.output_shapes))
    console.print(summary)
    console.print(f"[dim]{result.convention}[/]")
    if layers:
        rows = sorted(result.layers, key=lambda row: -row.macs)
        rows = rows if layers < 0 else rows[:layers]
        table = Table(title=f"layers by MACs ({len(rows)} of {len(result.layers)})")
        for column in ("layer", "type", "output", "params", "MACs", "elementwise"):
            table.add_column(column, justify="left" if column in ("layer", "type") else "right", overflow="fold")
        for row in rows:
            table.add_row(
                row.name,
                row.type,
                "x".join(map(str, row.output_shape)),
                f"{row.params:,}",
                f"{row.macs:,}",
                f"{row.elementwise_ops:,}",
            )
        console.print(table)


def _write_card(
    name: str, out_dir: Path | None, size: tuple[int, int] | None, bench_file: Path | None, no_bench: bool
) -> None:
    """``nasseg report NAME --card DIR``: benchmark (or read --bench), then write the card and list its files."""
    from nasseg.serving.card import CardError, build_card, card_genotype, load_bench, run_bench

    if out_dir is None:
        raise CardError("--bench and --no-bench go with --card DIR")
    if bench_file is not None and no_bench:
        raise CardError("--bench FILE and --no-bench exclude each other")
    genotype = card_genotype(name, size)
    with err_console.status(f"model card of {genotype.name} ...", spinner="dots") as status:

        def progress(message: str) -> None:
            status.update(f"{genotype.name}: {message} ...")

        bench = None
        if bench_file is not None:
            bench = load_bench(bench_file, genotype)
        elif not no_bench:
            bench = run_bench(genotype, genotype.task.input_size, progress=progress)
        result = build_card(name, out_dir, bench=bench, size=size, progress=progress)
    console.print(f"[green]card[/] of {genotype.name} (arch {genotype.arch_hash}):", highlight=False)
    for path in (result.markdown, result.json, result.picture, result.onnx):
        if path is not None:
            console.print(f"  {path}", highlight=False, soft_wrap=True)


@app.command()
def register(
    source: Annotated[Path, typer.Argument(help="A trained genotype .json, or the run folder of nasseg train.")],
    name: Annotated[str | None, typer.Option(help="Register under this name (default: the genotype's).")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing registration, or shadow a shipped model's name.")
    ] = False,
) -> None:
    """Register a trained model (genotype + weights) in $NASSEG_HOME/genotypes, so that
    create_model(NAME, pretrained=True), nasseg predict NAME and nasseg serve NAME find it."""
    from nasseg.zoo.registry import register as register_model
    from nasseg.zoo.registry import shipped_names

    target = register_model(source, name=name, force=force)
    registered = target.stem
    if registered in shipped_names():
        err_console.print(f"[yellow]note:[/] {registered!r} is also a shipped model; yours now shadows it "
                          "(pass --name to keep both)", highlight=False)  # fmt: skip
    console.print(f"[green]registered[/] {registered} -> {target}\n"
                  f"try: nasseg predict {registered} images/   or   zoo.create_model({registered!r}, pretrained=True)",
                  highlight=False, soft_wrap=True)  # fmt: skip


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Genotype .json files to check.")],
) -> None:
    """Check genotype files against the contract, and that each builds (on the meta device: no
    memory, under a second). Exit 1 when one is valid but cannot be built."""
    from nasseg.zoo.budget import check_build_size

    unbuildable = 0
    for path in files:
        genotype = Genotype.from_json(path)
        try:
            params = check_build_size(genotype)
        except zoo.BuildError as exc:
            unbuildable += 1
            err_console.print(f"[red]not buildable[/] {path}: valid genotype, but {exc}", highlight=False)
            continue
        console.print(f"[green]ok[/] {path}: {genotype.name} ({genotype.family}), arch {genotype.arch_hash}, "
                      f"{params / 1e6:.2f} M params, buildable", highlight=False)  # fmt: skip
    if unbuildable:
        raise typer.Exit(1)
