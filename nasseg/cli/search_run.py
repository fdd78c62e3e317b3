"""Running a search from its config: build it, record it in ``run.json``, run it with a progress
bar (step, best fitness so far, ETA) and say where the result is. The strategies' commands
(:mod:`nasseg.cli.search_commands`) register on :data:`search_app` and end in :func:`run_config`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from nasseg.cli import console, err_console, print_json
from nasseg.searchers import Searcher, SearchError, SearchResult, StepReport
from nasseg.searchers.configs import SearchConfig, make_searcher
from nasseg.searchers.latency import LatencyObjective

search_app = typer.Typer(help="Search a segmentation net on a dataset folder (one command per searcher).",
                         no_args_is_help=True)  # fmt: skip


def run_config(config: SearchConfig, out: Path | None, resume: Path | None, as_json: bool = False,
               print_config: bool = False) -> SearchResult | None:  # fmt: skip
    """Build the search ``config`` describes and run it in ``out`` (or continue ``resume``); its
    ``run.json`` holds the config and the versions it ran under. ``print_config``: print it, run nothing."""
    if print_config:
        typer.echo(config.model_dump_json(indent=2))
        return None
    built = config.build()
    run_dir, resuming = run_directory(built.name, out, resume)
    searcher = make_searcher(config, run_dir, built)
    result = run_search(searcher, resuming, built.label, as_json)
    line = built.epilogue(result) if built.epilogue is not None else None
    if line and not as_json:
        console.print(line, highlight=False)
    return result


def run_directory(strategy: str, out: Path | None, resume: Path | None) -> tuple[Path, bool]:
    """The run directory and whether to resume it (``--resume RUN`` wins over ``--out``)."""
    if resume is not None and out is not None and out != resume:
        raise SearchError(f"--out {out} and --resume {resume} name different run directories; give one")
    if resume is not None:
        return resume, True
    return out or Path("runs") / f"search-{strategy}", False


def run_search(searcher: Searcher, resume: bool, label: str, as_json: bool = False) -> SearchResult:
    """Run ``searcher`` with a progress display (step, best fitness so far, ETA); print where the result is."""
    total = searcher.budget.steps
    if not as_json:
        err_console.print(search_plan(searcher, label), highlight=False, soft_wrap=True)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[status]}")]  # fmt: skip
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task(f"search {label}", total=total, status="starting")

        def on_result(result: Any) -> None:
            state = f"{result.key}: {result.fitness:.4g}" if result.ok else f"{result.key}: failed ({result.error})"
            progress.update(task, status=state)

        def on_step(report: StepReport) -> None:
            best = f"{report.best_fitness:.4g}" if report.best_fitness is not None else "-"
            progress.update(task, completed=report.step, status=f"best {best} | {report.evaluations} evaluated")
            if report.step == 1 and report.results:
                per_step = report.seconds / max(report.step, 1)
                searcher.run_dir.annotate("estimate", {
                    "plan": search_plan(searcher, label), "first_step_seconds": round(per_step, 1),
                    "steps": total, "total_minutes": round(per_step * total / 60, 1) if total else None})  # fmt: skip
                if total:
                    progress.console.print(f"first step took {per_step:.0f} s: about {per_step * total / 60:.1f} "
                                           f"minutes for the {total} steps", highlight=False)  # fmt: skip
                if total and per_step * total > 3600:
                    progress.console.print(f"[yellow]note:[/] at this pace the search takes about "
                                           f"{per_step * total / 3600:.1f} hours here; fewer steps or evaluations, "
                                           "a smaller --image-size or --max-images, or a smaller space (for the GA: "
                                           "--widths, --layers, -K, -T) make it shorter",
                                           highlight=False, soft_wrap=True)  # fmt: skip
                warning = nothing_learns(report.results)
                if warning:
                    progress.console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)

        result = searcher.run(resume=resume, on_step=on_step, on_result=on_result)
    if searcher.strategy.latency is not None and result.genotype is not None:
        measure_best_latency(result.run_dir / "best.json", searcher.strategy.latency, as_json)
    failed = sum(1 for r in result.history if not r.ok)
    summary = {"run_dir": str(result.run_dir), "steps": result.steps, "evaluations": len(result.history),
               "failed": failed, "seconds": round(result.seconds, 1),
               "best": None if result.best is None else {"key": result.best.key, "fitness": result.best.fitness,
                                                          "metrics": result.best.metrics, "macs": result.best.macs,
                                                          "arch_hash": result.best.genotype.arch_hash},
               "best_json": str(result.run_dir / "best.json") if result.genotype else None}  # fmt: skip
    if as_json:
        print_json(summary)
    elif result.best is None:
        console.print(f"no candidate finished ({failed} failed); see {result.run_dir / 'history.jsonl'}")
    else:
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.best.metrics.items() if isinstance(v, int | float))
        console.print(f"best of {len(result.history)} candidates ({failed} failed): fitness "
                      f"{result.best.fitness:.4f} ({fitness_meaning(searcher)}); {metrics} -> {summary['best_json']}",
                      highlight=False)  # fmt: skip
    return result


def search_plan(searcher: Searcher, label: str) -> str:
    """One line: what the search will do, before it starts (budget, candidate training, image size)."""
    budget = searcher.budget
    parts = [f"{name} {value:g}" for name, value in (("steps", budget.steps), ("evaluations", budget.evaluations),
                                                      ("seconds", budget.seconds)) if value is not None]  # fmt: skip
    fidelity = getattr(searcher.evaluator, "fidelity", None)
    if fidelity is not None:
        low, high = fidelity.min_steps_per_epoch or 1, fidelity.max_steps_per_epoch
        steps = f"at least {low}" if high is None else str(high) if high <= low else f"{low}-{high}"
        parts.append(f"each candidate trained {fidelity.epochs} epoch(s) of {steps} steps, batch "
                     f"{fidelity.batch_size}, at {fidelity.image_size[0]}x{fidelity.image_size[1]} px")  # fmt: skip
    stages = getattr(searcher.strategy, "plan_words", None)
    if stages:
        parts.append(stages)
    space = getattr(searcher.strategy, "space", None)
    if space is not None and hasattr(space, "describe"):
        described = space.describe()
        if "widths" in described:
            parts.append(f"widths {described['widths']}, {described.get('layers')} levels")
    return f"search {label}: " + "; ".join(parts) + "; the bar's eta follows the steps done"


def nothing_learns(results: list[Any], floor: float = 0.02) -> str | None:
    """A warning when every scored candidate of the first step has val IoU near 0 (nothing learns)."""
    ious = [r.metrics.get("iou") for r in results if r.ok and r.metrics.get("iou") is not None]
    if not ious or max(ious) >= floor:
        return None
    return (
        f"every candidate of the first step scored val IoU below {floor} (best {max(ious):.4f}): nothing "
        "learns at this fidelity; raise --min-steps / --max-steps or --max-images, search at a larger "
        "--image-size, or on easier data (nasseg data make synth-defects --difficulty medium)"
    )


def fitness_meaning(searcher: Searcher) -> str:
    """What the fitness number of the final line is, in words."""
    strategy = searcher.strategy
    elite = getattr(strategy, "elite_evaluations", 1)
    meaning = getattr(strategy, "fitness_words", None) or "the strategy's fitness"
    if elite > 1:
        meaning += f"; the best's is the mean of up to {elite} scorings with fresh seeds"
    if strategy.latency is not None and strategy.latency.target_ms is not None:
        meaning += f"; times the latency factor over {strategy.latency.target_ms:g} ms"
    return meaning


def measure_best_latency(best_json: Path, objective: LatencyObjective, quiet: bool = False) -> dict[str, Any]:
    """Time the best genotype's whole net on ONNX Runtime (the table's threads and runtime, at the
    objective's size) and write it beside the prediction in ``best.json``'s ``provenance.latency``."""
    from nasseg.serving.latency_table import measure_genotype_ms
    from nasseg.zoo.genotype import Genotype

    genotype = Genotype.from_json(best_json)
    record = dict(genotype.provenance.latency or objective.record(genotype))
    with err_console.status("measuring the best net's latency on ONNX Runtime"):
        record["measured_ms"] = round(measure_genotype_ms(genotype, objective.size, objective.table.threads,
                                                          objective.table.runtime), 4)  # fmt: skip
    record["measured_on"] = "this machine (the raw ONNX graph, random weights)"
    provenance = {**genotype.provenance.model_dump(mode="json"), "latency": record}
    genotype.replace(provenance=provenance).to_json(best_json)
    if not quiet:
        console.print(f"best net: predicted {record['predicted_ms']:.2f} ms, measured {record['measured_ms']:.2f} ms "
                      f"at {objective.size[0]}x{objective.size[1]} ({objective.table.runtime}, "
                      f"{objective.table.threads} threads)", highlight=False)  # fmt: skip
    return record
