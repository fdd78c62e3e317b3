"""``nasseg search NAME``: one command per searcher, made from its config class.

A searcher's options are its config's fields (:mod:`nasseg.searchers.configs`): each field's
description is the option's help, its default the option's default, and
:func:`nasseg.searchers.configs.base.option` names flags that differ from ``--field-name``
(``-K``, ``--random``). The latency objective's fields become ``--latency-*``; ``--out``,
``--resume``, ``--json`` and ``--print-config`` say where the run goes and how it prints. So a new
searcher needs a strategy module, a config class and its line in
:data:`nasseg.searchers.configs.CONFIGS`; nothing here changes.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Annotated, Any, Literal

import typer
from pydantic.fields import FieldInfo

from nasseg.cli.search_options import JsonOption, OutOption, PrintConfigOption, ResumeOption
from nasseg.cli.search_run import run_config, search_app
from nasseg.searchers.configs import CONFIGS, LatencySettings, SearchConfig

#: options of every command that are not settings of the search
RUN_OPTIONS: dict[str, tuple[Any, Any]] = {
    "out": (OutOption, None),
    "resume": (ResumeOption, None),
    "as_json": (JsonOption, False),
    "print_config": (PrintConfigOption, False),
}


def option_type(annotation: Any) -> Any:
    """The type the command line parses for a field's ``annotation``: text for choices and lists
    (the config validates them, with errors that name the option), ``X | None`` kept."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in args if a is not type(None)]
        return option_type(inner[0]) | None if len(inner) == 1 else str | None
    if origin is Literal:
        return int if all(isinstance(a, int) for a in args) else str
    if origin is tuple:
        return str
    return annotation


def option_default(value: Any) -> Any:
    """A field's default as the command line shows it (tuples as ``64,128,256``)."""
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else value


def parameter(name: str, field: FieldInfo, prefix: str = "") -> inspect.Parameter:
    """The command-line parameter for config field ``name``."""
    kind = option_type(field.annotation)
    flags = list((field.json_schema_extra or {}).get("flags", [])) if isinstance(field.json_schema_extra, dict) else []
    if not flags:
        flag = f"--{prefix}{name}".replace("_", "-")
        flags = [f"{flag}/--no-{flag[2:]}" if kind is bool and field.default is True else flag]
    annotation = Annotated[kind, typer.Option(*flags, help=field.description or "")]
    default = inspect.Parameter.empty if field.is_required() else option_default(field.default)
    return inspect.Parameter(f"{prefix}{name}", inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def parameters(config: type[SearchConfig]) -> list[inspect.Parameter]:
    """The parameters of ``config``'s command: its fields, the latency objective's, then the run's."""
    fields = [parameter(name, field) for name, field in config.model_fields.items()
              if name not in ("searcher", "latency")]  # fmt: skip
    latency = [parameter(name, field, "latency_") for name, field in LatencySettings.model_fields.items()]
    run = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
           for name, (annotation, default) in RUN_OPTIONS.items()]  # fmt: skip
    return [*fields, *latency, *run]


def register(name: str, config: type[SearchConfig]) -> None:
    """Add ``nasseg search NAME``, whose options fill ``config``."""

    def command(**options: Any) -> None:
        out, resume = options.pop("out"), options.pop("resume")
        as_json, print_config = options.pop("as_json"), options.pop("print_config")
        run_config(config.from_options(options), out, resume, as_json, print_config)

    params = parameters(config)
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    command.__name__ = f"search_{name.replace('-', '_')}"
    command.__doc__ = config.summary
    search_app.command(name)(command)


for _name, _config in CONFIGS.items():
    register(_name, _config)

__all__ = ["register"]
