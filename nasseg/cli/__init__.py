"""The ``nasseg`` command line: the typer app, its error handling, and its command modules.

Every user error (a malformed genotype, an unknown name, weights of another architecture, an
input size a net cannot take) prints one line ``error: ...`` to stderr and exits with code 2;
``nasseg --debug ...`` shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import click
import typer
import typer.core
from rich.console import Console
from rich.markup import escape

import zoo

# Wide tables when piped (CI logs, files); the terminal's width otherwise.
console = Console(width=None if sys.stdout.isatty() else 150)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 150)


class _State:
    debug = False


class _ErrorHandlingGroup(typer.core.TyperGroup):
    """Turns :class:`zoo.NassegError` into a one-line message and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except zoo.NassegError as exc:
            if _State.debug:
                raise
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            sys.exit(2)


app = typer.Typer(
    cls=_ErrorHandlingGroup,
    help="Searched segmentation networks: zoo, reports, export and serving.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nasseg {zoo.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    _State.debug = debug


def print_json(value: Any) -> None:
    """Machine-readable output on stdout."""
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True) + "\n")


def main() -> None:
    """Entry point of the ``nasseg`` script."""
    app()


from nasseg.cli import bench, data, demo, models, search, serve, serving, training  # noqa: E402,F401  (registers the commands)
