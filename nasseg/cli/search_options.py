"""The options of every ``nasseg search`` command that are not settings of the search: where the
run goes and how it prints (the settings are the config's fields: :mod:`nasseg.cli.search_commands`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

OutOption = Annotated[Path | None, typer.Option("--out", help="Run directory (default: runs/search-STRATEGY).")]
ResumeOption = Annotated[
    Path | None, typer.Option("--resume", help="Continue the search in this run directory (same settings).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
PrintConfigOption = Annotated[
    bool, typer.Option("--print-config", help="Print the search's config as JSON and stop (replay it with --config).")
]
