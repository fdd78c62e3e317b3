"""The README's commands, as ``benchmarks/readme_walkthrough.py`` reads them: every one a user can
paste names a real command with options that parse (the walk-through runs them all; this checks
them in seconds)."""

from __future__ import annotations

import importlib.util
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main

from nasseg.cli import app

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("readme_walkthrough", ROOT / "benchmarks" / "readme_walkthrough.py")
walkthrough = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = walkthrough  # its dataclasses look their module up
spec.loader.exec_module(walkthrough)


def _parse(words: list[str]) -> None:
    """Resolve ``nasseg WORDS`` to its command and parse its options, running nothing."""
    command: Any = typer.main.get_command(app)
    path, args, group_args = ["nasseg"], words[1:], []
    while hasattr(command, "list_commands") and args:
        if args[0].startswith("-"):  # a group's option: --debug, nasseg search --config FILE
            option = next((p for p in command.params if args[0] in p.opts), None)
            taken = 1 if option is None or option.is_flag else 2
            group_args, args = group_args + args[:taken], args[taken:]
            continue
        group_args = []
        context = command.make_context(" ".join(path), [], resilient_parsing=True)
        path.append(args[0])
        command, args = command.get_command(context, args[0]), args[1:]
        if command is None:
            raise AssertionError(f"no such command: {' '.join(path)}")
    command.make_context(" ".join(path), group_args if hasattr(command, "list_commands") else list(args))


def _nasseg_commands() -> list[str]:
    commands = walkthrough.readme_commands(ROOT / "README.md")
    return [part.strip() for c in commands if c.kind in ("run", "serve") and c.language == "bash"
            for part in c.text.split("&&") if part.strip().startswith("nasseg")]  # fmt: skip


def test_the_readme_is_read_as_a_walk_through() -> None:
    commands = walkthrough.readme_commands(ROOT / "README.md")
    kinds = {c.kind for c in commands}
    assert {"run", "serve", "synopsis", "setup"} <= kinds
    assert any(c.text == "nasseg demo" for c in commands)  # after the install, in the same line
    assert all("[" not in c.text for c in commands if c.kind == "run" and c.language == "bash")
    searches = {shlex.split(t)[2] for t in _nasseg_commands() if t.startswith("nasseg search ") and t[14] != "-"}
    assert searches == {"unet-ga", "autosegnet", "renas", "nas-asdet", "iac"}  # every searcher has a runnable example


@pytest.mark.parametrize("command", _nasseg_commands())
def test_every_readme_command_parses(command: str) -> None:
    words = shlex.split(command)
    _parse(words[: words.index(">")] if ">" in words else words)  # bash runs them: a redirect is the shell's


def test_a_command_with_a_wrong_option_fails_to_parse() -> None:
    with pytest.raises(Exception, match="No such option"):
        _parse(["nasseg", "train", "unet-small", "--data", "d", "--epoch", "3"])
    with pytest.raises(AssertionError, match="no such command"):
        _parse(["nasseg", "search", "darts"])
