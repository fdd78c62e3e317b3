"""``nasseg data make | check``: bundled synthetic data sets and dataset folder checks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nasseg.cli import app, console, err_console
from nasseg.cli.progress import progress_bar
from nasseg.zoo.data.folder import open_folder
from nasseg.zoo.data.synthetic import DATASETS, check_options, make_dataset

data_app = typer.Typer(help="Bundled data sets, public-set importers and dataset folder checks.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("make")
def make(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(DATASETS)}.")],
    out: Annotated[Path, typer.Option(help="Output folder (the folder dataset format).")],
    n: Annotated[int, typer.Option(min=3, help="Number of samples (70/15/15 train/val/test).")] = 60,
    size: Annotated[int, typer.Option(min=16, help="Image side in pixels.")] = 128,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same images.")] = 0,
    pairs: Annotated[bool, typer.Option(help="Also write defect-free translation pairs (synth-defects).")] = False,
    difficulty: Annotated[
        str, typer.Option(help="synth-defects: hard (DAGM-like), medium or easy (learnable at search budgets).")
    ] = "hard",
) -> None:
    """Generate a bundled data set deterministically from a seed."""
    check_options(name, n, size, pairs, difficulty)  # before the progress bar: a bad option draws none
    with progress_bar(f"making {name}", total=n) as advance:
        make_dataset(name, out, n=n, size=size, seed=seed, pairs=pairs, progress=advance, difficulty=difficulty)
    console.print(f"wrote {n} samples of {name} ({size}x{size}, seed {seed}) to {out}", highlight=False)


@data_app.command("check")
def check(root: Annotated[Path, typer.Argument(help="Dataset folder.")], seed: int = 0) -> None:
    """Check a dataset folder; list every problem by file (exit code 2 if there is any)."""
    console.print(f"ok {open_folder(root, seed=seed).describe()}", highlight=False)


@data_app.command("import")
def import_command(
    fmt: Annotated[
        str,
        typer.Argument(
            metavar="FORMAT", help="mvtec, dagm, kolektor2, magnetic-tile, neu-seg, isbi-em or crackforest."
        ),
    ],
    src: Annotated[Path, typer.Argument(help="The unpacked download (see the README for each layout).")],
    out: Annotated[Path, typer.Option(help="Output folder (the folder dataset format).")],
    classes: Annotated[
        str, typer.Option(help="binary (background, defect) or per-defect (mvtec, magnetic-tile).")
    ] = "binary",
    split: Annotated[str, typer.Option(help="source (the set's own splits, where it has them) or seeded.")] = "source",
    seed: Annotated[int, typer.Option(help="Seed of the 70/15/15 split where one is made.")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a non-empty --out.")] = False,
) -> None:
    """Import a public defect or EM data set from its download into the folder format (nothing is fetched)."""
    from nasseg.zoo.data.importers import plan_import
    from nasseg.zoo.data.importers.common import write_folder

    plan = plan_import(fmt, src, classes, split, seed)
    with progress_bar(f"importing {fmt}", total=len(plan.samples)) as advance:
        write_folder(plan, out, str(src), fmt, progress=advance, overwrite=overwrite,
                     note=lambda line: err_console.print(f"[yellow]note:[/] {line}", highlight=False, soft_wrap=True))
    console.print(f"ok {open_folder(out, seed=seed).describe()}\nsplit: {plan.split_rule}", highlight=False)
