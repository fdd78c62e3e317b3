"""Rich progress bars for the long commands (on stderr, so stdout stays machine-readable)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from nasseg.cli import err_console


@contextmanager
def progress_bar(description: str, total: int, fields: str = "") -> Iterator[Callable[..., None]]:
    """Yields ``advance(steps=1, **fields)``; ``fields`` is a format string shown after the bar."""
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn()]  # fmt: skip
    if fields:
        columns.append(TextColumn(fields))
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task(description, total=total, loss="-", iou="-")  # "-" until a value exists

        def advance(steps: int = 1, **values: float) -> None:
            shown = {k: f"{v:.4f}" if isinstance(v, float) and v == v else "-" for k, v in values.items()}
            progress.update(task, advance=steps, **shown)

        yield advance
