"""The options every ``nasseg search STRATEGY`` command shares, defined once (the names are the
configs' field names: :meth:`searchers.configs.SearchConfig.from_options` fills a config from them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# Options shared by every `nasseg search STRATEGY` command.
DataOption = Annotated[Path, typer.Option("--data", help="Dataset folder (ROOT/{train,val,test}/{images,masks}).")]
OutOption = Annotated[Path | None, typer.Option("--out", help="Run directory (default: runs/search-STRATEGY).")]
ResumeOption = Annotated[
    Path | None, typer.Option("--resume", help="Continue the search in this run directory (same settings).")
]
SeedOption = Annotated[int, typer.Option(help="One seed fixes the search on CPU.")]
WorkersOption = Annotated[
    int | None, typer.Option("--workers", min=1, help="Evaluate N candidates at once in one-thread worker processes.")
]
RayOption = Annotated[
    str | None, typer.Option("--ray", help="Evaluate as Ray tasks: 'local' (with --workers N) or a cluster's address.")
]
DeviceOption = Annotated[str, typer.Option(help="cpu, cuda, auto.")]
SecondsOption = Annotated[float | None, typer.Option("--max-seconds", min=1, help="Stop after this much search time.")]
EpochsOption = Annotated[int, typer.Option("--epochs", min=1, help="Training epochs per candidate (fidelity).")]
SizeOption = Annotated[int, typer.Option("--image-size", min=8, help="Training crop side while searching.")]
ImagesOption = Annotated[int | None, typer.Option("--max-images", min=2, help="Training images per candidate.")]
ValImagesOption = Annotated[int | None, typer.Option("--max-val-images", min=1, help="Validation images scored.")]
StepsOption = Annotated[int | None, typer.Option("--max-steps", min=1, help="Optimiser steps per epoch at most.")]
MinStepsOption = Annotated[
    int, typer.Option("--min-steps", min=1, help="Optimiser steps per epoch at least (small sets are reused).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
LatencyTableOption = Annotated[
    Path | None,
    typer.Option("--latency-table", help="Latency table of the target machine (`nasseg latency table`): every "
                 "candidate's predicted latency is recorded, and --latency-target penalises slow ones."),
]  # fmt: skip
LatencyTargetOption = Annotated[
    float | None,
    typer.Option("--latency-target", min=0.001, help="Latency budget in ms at --latency-size (MnasNet's soft "
                 "constraint: a score is multiplied by (LAT / target) ** -weight over it)."),
]  # fmt: skip
LatencyWeightOption = Annotated[
    float, typer.Option("--latency-weight", min=0, help="The penalty's exponent (0.07: MnasNet; 0.5 or more is "
                        "nearly a hard limit).")
]  # fmt: skip
LatencySizeOption = Annotated[str, typer.Option("--latency-size", help="Frame size HxW the latency is for.")]
PrintConfigOption = Annotated[
    bool, typer.Option("--print-config", help="Print the search's config as JSON and stop (replay it with --config).")
]
