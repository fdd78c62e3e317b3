"""The ``nasseg`` command line: the typer app, its error handling, and its command modules.

Every user error (a malformed genotype, an unknown name, weights of another architecture, an
input size a net cannot take) prints one line ``error: ...`` to stderr and exits with code 2;
``nasseg --debug ...`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Annotated, Any

import click
import typer
import typer.core
import typer.main
from rich.console import Console
from rich.markup import escape

from nasseg.zoo._version import __version__
from nasseg.zoo.errors import NassegError

# Wide tables when piped (CI logs, files); the terminal's width otherwise.
console = Console(width=None if sys.stdout.isatty() else 150)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 150)


class _State:
    debug = False


#: command -> (module of nasseg.cli that defines it, the line ``nasseg --help`` shows). A command's
#: module is imported only when the command runs (or shows its own help), so that ``nasseg --help``
#: and ``nasseg list`` cost no torch, ONNX or BentoML import; a test holds these lines to the commands.
COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("models", "List the registered models: name, family, data, test IoU, MACs and weights (--wide: all "
                       "columns)."),
    "info": ("models", "Show a model's genotype: task, architecture hash, cells, weights and provenance."),
    "report": ("models", "Parameters, MACs, FLOPs, elementwise work and peak activation memory of one forward "
                         "pass; with --card, a model card for choosing edge hardware (latency measured unless "
                         "--no-bench)."),
    "register": ("models", "Register a trained model (genotype + weights) in $NASSEG_HOME/genotypes, so that "
                           "create_model(NAME, pretrained=True), nasseg predict NAME and nasseg serve NAME find it."),
    "validate": ("models", "Check genotype files against the contract, and that each builds (on the meta device: "
                           "no memory, under a second). Exit 1 when one is valid but cannot be built."),
    "data": ("data", "Bundled data sets, public-set importers and dataset folder checks."),
    "train": ("training", "Train a zoo model on a dataset folder; checkpoints every epoch (resume with --resume)."),
    "evaluate": ("training", "IoU, Dice/F1, pixel accuracy, precision and recall of a trained model on a split."),
    "predict": ("training", "Masks and overlay PNGs (a person can look at them) for images."),
    "search": ("search", "Search a segmentation net on a dataset folder (one command per searcher)."),
    "export": ("export", "Export a zoo net to ONNX (opset >= 18, dynamic batch and, where the net allows, H/W), or "
                          "to an OpenVINO IR (--format openvino)."),
    "bench": ("bench", "Latency p50/p90/p99 at batch 1, throughput, GFLOP/s: ONNX Runtime fp32/int8 vs PyTorch "
                       "eager; with --data, one table across every runtime with IoU on the test split."),
    "latency": ("latency", "Latency tables of the target machine and predicted latency of nets."),
    "serve": ("serve", "Serve a model over HTTP (BentoML): /segment, /inspect, /inspect_batch, /model, /readyz, "
                       "/metrics."),
    "demo": ("demo", "The main job end to end: a shipped searched model inspects fresh frames, exports, serves."),
}  # fmt: skip


class _ErrorHandlingGroup(typer.core.TyperGroup):
    """The root group: commands load lazily (:data:`COMMANDS`), and a :class:`zoo.NassegError`
    becomes a one-line message and exit code 2."""

    _listing_help = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)  # only the root group is of this class (sub-apps are plain TyperGroups)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return super().get_command(ctx, name)
        module, text = COMMANDS[name]
        if _ErrorHandlingGroup._listing_help:  # `nasseg --help`: the line, without importing the command
            return click.Command(name, help=text, short_help=text)
        importlib.import_module(f"nasseg.cli.{module}")
        return typer.main.get_command(app).commands.get(name)  # type: ignore[attr-defined]

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        _ErrorHandlingGroup._listing_help = True
        try:
            super().format_help(ctx, formatter)
        finally:
            _ErrorHandlingGroup._listing_help = False

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NassegError as exc:
            if _State.debug:
                raise
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            sys.exit(2)


def _flags_show_no_type() -> None:
    """typer 0.2x prints a type beside every option in help, ``--debug <bool>`` included, as if flags
    took values; a flag's help shows no type (``--resume`` is a switch, not ``--resume true``)."""
    from typer.core import TyperOption

    if getattr(TyperOption, "_nasseg_flags", False):
        return
    original = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else original(self, ctx)

    TyperOption.display_type_rich = display_type_rich
    TyperOption._nasseg_flags = True


_flags_show_no_type()

app = typer.Typer(
    cls=_ErrorHandlingGroup,
    help="Searched segmentation networks: zoo, reports, export and serving.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nasseg {__version__}")
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
