"""``nasseg search``: the group of the five searchers' commands, and replaying a run.

Each strategy's command is made from its config class (:mod:`nasseg.cli.search_commands`): its
options fill the config, and :func:`nasseg.cli.search_run.run_config` builds the search, records
the config in ``run.json`` and runs it. ``nasseg search --config RUN/run.json --out NEW`` replays a
run from its config, and ``nasseg search --resume RUN`` continues one without repeating its options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nasseg.cli import app
from nasseg.cli.search_options import JsonOption, OutOption
from nasseg.cli.search_run import run_config, search_app
from nasseg.searchers import SearchError
from nasseg.searchers.configs import load_config

app.add_typer(search_app, name="search")


@search_app.callback(invoke_without_command=True)
def search_group(
    context: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", help="Replay the search a config file or a run's run.json describes.")
    ] = None,
    out: OutOption = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue the search in this run directory, with its config.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Search a net: `nasseg search STRATEGY --data DIR ...`, or replay one: `nasseg search --config RUN/run.json`."""
    if context.invoked_subcommand is not None:
        if config is not None or out is not None or resume is not None:
            raise SearchError("--config, --out and --resume before a strategy's name are for replaying a run "
                              "(nasseg search --config RUN/run.json --out NEW); give a strategy's options after "
                              "its name")  # fmt: skip
        return
    if config is None and resume is None:
        typer.echo(context.get_help())
        raise typer.Exit(0)
    run_config(load_config(config if config is not None else resume), out, resume, as_json)


# The strategies' commands: one per config class (nasseg.searchers.configs.CONFIGS).
from nasseg.cli import search_commands  # noqa: E402,F401
