"""The run directory every search writes, and reads back on ``--resume``.

::

    RUN/
      run.json          what was asked: strategy, evaluator, budget, seed, data (written once)
      checkpoint.pt     strategy state after the last finished step (atomic write)
      history.jsonl     one line per evaluated candidate (appended and fsynced as each finishes)
      best.json         the best genotype so far, with provenance; ``zoo.create_model(path)`` builds it
      candidates/KEY/   genotype.json (the candidate with its metrics; nasseg train takes it), and
                        weights.pt where a child may inherit them (RENAS)
      plots/*.png       fitness per step; IoU against MACs with the Pareto front

A search killed at any point loses no finished evaluation: results reach ``history.jsonl`` as they
finish, before the step's checkpoint; on resume the steps after the checkpoint are replayed and
their candidates already in the history are taken from it instead of being trained again.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nasseg.searchers.base import EvalResult, SearchError
from nasseg.zoo.checkpoint import load_checkpoint, save_checkpoint
from nasseg.zoo.genotype import Genotype
from nasseg.zoo.io import atomic_write_bytes, atomic_write_text
from nasseg.zoo.versions import library_versions

# What a resumed run must share with the run it continues (budget and executor may change).
RESUME_MUST_MATCH = ("strategy", "evaluator", "seed", "dataset")


class RunDirectory:
    """Files of one search run (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # -- layout ----------------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def history_path(self) -> Path:
        return self.path / "history.jsonl"

    @property
    def best_path(self) -> Path:
        return self.path / "best.json"

    @property
    def plots_dir(self) -> Path:
        return self.path / "plots"

    @property
    def candidates_dir(self) -> Path:
        return self.path / "candidates"

    def plot(self, name: str) -> Path:
        """``plots/NAME`` (the folder created)."""
        self.plots_dir.mkdir(parents=True, exist_ok=True)
        return self.plots_dir / name

    def stage_dir(self, stage: str) -> Path:
        """The working folder of a searcher's stage (IAC's ``stage1``, ``stage3``: a trainer's checkpoints)."""
        return self.path / stage

    def artifact(self, name: str) -> Path:
        """A file a searcher leaves at the run's top level (IAC's ``base.json``, ``implant.safetensors``)."""
        return self.path / name

    def snapshot(self, folder: str, name: str) -> Path:
        """``FOLDER/NAME`` for genotypes saved along the way (IAC's ``genotypes/epoch-025.json``; created)."""
        (self.path / folder).mkdir(parents=True, exist_ok=True)
        return self.path / folder / name

    def candidate_weights(self, key: str) -> Path:
        """Where candidate ``key`` keeps its trained weights (RENAS: a child inherits its parent's)."""
        return self.candidates_dir / key / "weights.pt"

    def candidate_dir(self, key: str) -> Path:
        """The folder of candidate ``key`` (created)."""
        folder = self.candidates_dir / key
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def write_candidate(self, result: EvalResult) -> Path:
        """``candidates/KEY/genotype.json``: the candidate's genotype with its metrics in the provenance,
        ready for ``nasseg train`` (failed candidates too: their error is in ``history.jsonl``)."""
        metrics = {k: float(v) for k, v in result.metrics.items() if isinstance(v, int | float)}
        provenance = result.genotype.provenance.model_copy(update={"metrics": metrics})
        path = self.candidate_dir(result.key) / "genotype.json"
        atomic_write_text(path, result.genotype.replace(provenance=provenance).to_json())
        return path

    # -- creation / resume -----------------------------------------------------------------------

    def create(self, config: dict[str, Any], resume: bool) -> None:
        """Start a new run (refused if one is there and not ``resume``) or check the one to resume."""
        run_json = self.path / "run.json"
        if resume:
            if not run_json.is_file():
                raise SearchError(f"{self.path}: nothing to resume (no run.json)")
            stored = self.config()
            for key in RESUME_MUST_MATCH:
                if key in stored and json.loads(json.dumps(config.get(key), default=str)) != stored[key]:
                    raise SearchError(f"{self.path} was started with {key} {stored[key]}, not "
                                      f"{config.get(key)}: resume it with the same settings")  # fmt: skip
            return
        if run_json.is_file() or self.history_path.is_file():
            raise SearchError(f"{self.path} already holds a search: pass --resume to continue it, or another --out")
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_json, json.dumps(config, indent=2, default=str) + "\n")

    def annotate(self, key: str, value: Any) -> None:
        """Add ``key`` to ``run.json`` (the plan and the time estimate of a search; never a setting a
        resume compares)."""
        if key in RESUME_MUST_MATCH:
            raise SearchError(f"run.json: {key!r} is a setting, not an annotation")
        text = json.dumps({**self.config(), key: value}, indent=2, default=str) + "\n"
        atomic_write_text(self.path / "run.json", text)

    def config(self) -> dict[str, Any]:
        """``run.json``: what the run was started with."""
        path = self.path / "run.json"
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SearchError(f"{path}: cannot read the run's configuration ({exc})") from None

    # -- checkpoint ------------------------------------------------------------------------------

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Write ``state`` so that a kill at any moment leaves the previous or the new checkpoint."""
        save_checkpoint(self.checkpoint_path, "search", state)

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last checkpoint, or ``None`` when the run died before its first step finished."""
        if not self.checkpoint_path.is_file():
            return None
        return load_checkpoint(self.checkpoint_path, "search", required=("strategy",))

    # -- history ---------------------------------------------------------------------------------

    def append(self, result: EvalResult) -> None:
        """Append one evaluated candidate to ``history.jsonl`` and make it durable."""
        self.path.mkdir(parents=True, exist_ok=True)
        line = json.dumps(result.to_record(), default=float) + "\n"
        with open(self.history_path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def history(self) -> list[EvalResult]:
        """Every finished evaluation, in order (a torn last line from a kill is ignored)."""
        if not self.history_path.is_file():
            return []
        results = []
        lines = self.history_path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                results.append(EvalResult.from_record(json.loads(line)))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                if number == len(lines):  # the process died while writing it
                    break
                raise SearchError(f"{self.history_path}:{number}: unreadable history line ({exc})") from None
        return results

    def truncate_torn_line(self) -> None:
        """Drop a half-written last line (left by a kill) so new lines start clean."""
        if not self.history_path.is_file():
            return
        data = self.history_path.read_bytes()
        if data and not data.endswith(b"\n"):
            atomic_write_bytes(self.history_path, data[: data.rfind(b"\n") + 1])

    # -- result ----------------------------------------------------------------------------------

    def write_best(self, best: EvalResult, searcher: str, dataset: str | None, seed: int, seconds: float) -> Path:
        """``best.json``: the best genotype with its provenance (searcher, data, seed, time, versions)."""
        provenance = best.genotype.provenance.model_dump(mode="json")
        provenance.update(
            searcher=searcher,
            dataset=dataset,
            seed=seed,
            search_seconds=round(seconds, 2),
            metrics={f"search_{k}": float(v) for k, v in best.metrics.items() if isinstance(v, int | float)}
            | {"search_fitness": float(best.fitness)},
            library_versions=library_versions(),
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        if best.extra.get("latency"):
            provenance["latency"] = dict(best.extra["latency"])
        genotype: Genotype = best.genotype.replace(provenance=provenance)
        genotype.to_json(self.best_path)
        return self.best_path
