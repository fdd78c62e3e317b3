"""Executors run candidate evaluations: in this process, in a pool of worker processes
(``--workers N``), or as Ray tasks (``--ray local`` with ``--workers N``, or ``--ray ADDRESS``).
Without ``--workers`` a search on a CPU runs :class:`AutoExecutor` (a batch of candidates in
one-thread worker processes, one per core; a lone candidate here on every thread): the fastest of
the executors measured on a 2-core box (``benchmarks/search_throughput.py``).

Candidates are independent tasks. A failed evaluation (an exception, e.g. out of memory) becomes
an :class:`EvalResult` with ``status="failed"`` and the error's first line; the search goes on.
Results are handed to ``on_result`` as each finishes (the searcher appends them to the history at
once), and returned in the order of the jobs.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasseg.searchers.base import EvalResult, Evaluator, Proposal, SearchError

OnResult = Callable[[EvalResult], None]


@dataclass
class Job:
    """One evaluation: the candidate, its seed and its work folder."""

    proposal: Proposal
    seed: int
    workdir: Path


def run_job(evaluator: Evaluator, job: Job) -> EvalResult:
    """Evaluate one job; any exception becomes a failed result that names the error."""
    start = time.perf_counter()
    try:
        result = evaluator.evaluate(job.proposal, job.seed, job.workdir)
    except Exception as exc:  # noqa: BLE001  (every failure of a candidate is recorded, none stops the search)
        lines = str(exc).strip().splitlines() or [""]
        detail = traceback.format_exc(limit=-3).strip().splitlines()[-1]
        return EvalResult(key=job.proposal.key, genotype=job.proposal.genotype, status="failed",
                          error=f"{type(exc).__name__}: {lines[0]}" if lines[0] else detail,
                          seconds=time.perf_counter() - start, parent=job.proposal.parent,
                          extra=dict(job.proposal.extra))  # fmt: skip
    result.seconds = result.seconds or time.perf_counter() - start
    result.parent = job.proposal.parent
    result.extra = {**job.proposal.extra, **result.extra}
    return result


class InProcessExecutor:
    """Evaluates one candidate after the other in this process."""

    name = "in-process"
    workers = 1

    def map(self, evaluator: Evaluator, jobs: Sequence[Job], on_result: OnResult | None = None) -> list[EvalResult]:
        results = []
        for job in jobs:
            result = run_job(evaluator, job)
            if on_result:
                on_result(result)
            results.append(result)
        return results

    def shutdown(self) -> None:
        """Nothing to release."""

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name}


class RayExecutor:
    """Evaluates candidates as Ray tasks: a local Ray with ``workers`` CPUs, or an existing cluster.

    Each task gets ``cpus_per_task`` CPUs (torch uses that many threads in it). The evaluator is
    shipped to the workers once (``ray.put``); the run directory must be on a file system the
    workers share (true on one machine; on a cluster, a shared mount).
    """

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None, cpus_per_task: int = 1) -> None:
        try:
            import ray
        except ImportError:
            raise SearchError(
                "the Ray executor needs ray: pip install 'nasseg[distributed]' (or pip install ray)"
            ) from None
        if workers is None and address is None:
            raise SearchError("the Ray executor needs --workers N (a local Ray) or --ray ADDRESS (a cluster)")
        self._ray = ray
        self.cpus_per_task = cpus_per_task
        self.address = address
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
            if address:
                ray.init(address=address, **kwargs)
            else:  # local workers import what this process imports (e.g. an evaluator defined in a script's folder)
                path = os.pathsep.join(p for p in sys.path if p)
                ray.init(num_cpus=workers * cpus_per_task, runtime_env={"env_vars": {"PYTHONPATH": path}}, **kwargs)
        self.workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus_per_task)
        self._remote = ray.remote(num_cpus=cpus_per_task, max_retries=0)(_ray_job)

    def map(self, evaluator: Evaluator, jobs: Sequence[Job], on_result: OnResult | None = None) -> list[EvalResult]:
        ray = self._ray
        evaluator_ref = ray.put(evaluator)
        pending = {self._remote.remote(evaluator_ref, job, self.cpus_per_task): index for index, job in enumerate(jobs)}
        results: list[EvalResult | None] = [None] * len(jobs)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            index = pending.pop(done[0])
            try:
                result = ray.get(done[0])
            except Exception as exc:  # noqa: BLE001  (a worker died: the candidate failed, the search goes on)
                job = jobs[index]
                result = EvalResult(key=job.proposal.key, genotype=job.proposal.genotype, status="failed",
                                    error=f"ray worker lost: {type(exc).__name__}: {_last_line(exc)}",
                                    parent=job.proposal.parent, extra=dict(job.proposal.extra))  # fmt: skip
            if on_result:
                on_result(result)
            results[index] = result
        return [r for r in results if r is not None]

    def shutdown(self) -> None:
        """Leave a joined cluster running; stop a local Ray."""
        if self.address is None and self._ray.is_initialized():
            self._ray.shutdown()

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "workers": self.workers, "address": self.address}


class PoolExecutor:
    """Evaluates candidates in ``workers`` spawned processes of ``threads`` torch threads each.

    On a few cores, small nets use a second thread poorly (issue 29: 1.11-1.14x for the cell nets
    at 64 px), so two one-thread processes beat one two-thread process; a plain process pool does it
    without Ray's start-up and memory. The evaluator is pickled to each worker with its job; a
    worker that dies (out of memory, a signal) fails the candidates still pending in that call, and
    the next call starts a new pool.
    """

    name = "pool"

    def __init__(self, workers: int, threads: int = 1) -> None:
        if workers < 1 or threads < 1:
            raise SearchError(f"--workers must be at least 1, got {workers}")
        self.workers = workers
        self.threads = threads
        self._pool: Any = None

    def _executor(self) -> Any:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_set_threads, initargs=(self.threads, sys.path))  # fmt: skip
        return self._pool

    def map(self, evaluator: Evaluator, jobs: Sequence[Job], on_result: OnResult | None = None) -> list[EvalResult]:
        from concurrent.futures import as_completed
        from concurrent.futures.process import BrokenProcessPool

        futures = {self._executor().submit(run_job, evaluator, job): index for index, job in enumerate(jobs)}
        results: list[EvalResult | None] = [None] * len(jobs)
        for future in as_completed(futures):
            index = futures[future]
            try:
                result = future.result()
            except BrokenProcessPool as exc:  # a worker died: its candidate failed, the search goes on
                job = jobs[index]
                result = EvalResult(key=job.proposal.key, genotype=job.proposal.genotype, status="failed",
                                    error=f"worker process lost: {type(exc).__name__}: {_last_line(exc)}",
                                    parent=job.proposal.parent, extra=dict(job.proposal.extra))  # fmt: skip
                self.shutdown()
            if on_result:
                on_result(result)
            results[index] = result
        return [r for r in results if r is not None]

    def shutdown(self) -> None:
        """Stop the worker processes (a later ``map`` starts new ones)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "workers": self.workers, "threads": self.threads}


def _set_threads(threads: int, path: list[str]) -> None:
    """A pool worker: this process's torch threads, and the parent's import path (scripts' folders)."""
    import torch

    sys.path[:] = list(dict.fromkeys([*path, *sys.path]))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    torch.set_num_threads(threads)


def _ray_job(evaluator: Evaluator, job: Job, threads: int) -> EvalResult:
    import torch

    torch.set_num_threads(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    return run_job(evaluator, job)


class AutoExecutor:
    """The default executor on a CPU: a batch of two or more candidates goes to a pool of
    ``workers`` one-thread processes, a lone candidate runs in this process on every thread.

    Why both: on a few cores small nets use a second thread poorly, so two one-thread workers beat
    one two-thread process on a batch (RENAS 1.64x, the GA 1.23x, ``search_speed.json``); a lone
    candidate (a RENAS child, a re-score) has no partner, and there a second thread still gains
    (1.62x for a U-Net at 64 px). The pool starts at the first batch and lives for the search.
    """

    name = "auto"

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = PoolExecutor(workers)
        self.here = InProcessExecutor()

    def map(self, evaluator: Evaluator, jobs: Sequence[Job], on_result: OnResult | None = None) -> list[EvalResult]:
        executor = self.pool if len(jobs) >= 2 else self.here
        return executor.map(evaluator, jobs, on_result)

    def shutdown(self) -> None:
        self.pool.shutdown()

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "workers": self.workers, "threads": 1}


#: the environment variable that sets the default of ``--workers`` (1: every candidate in this process)
WORKERS_ENV = "NASSEG_SEARCH_WORKERS"
MAX_DEFAULT_WORKERS = 8


def default_workers(device: str = "cpu") -> int:
    """The workers of a search without ``--workers``: ``NASSEG_SEARCH_WORKERS`` when set; on a GPU 1;
    on a CPU one per core this process may use, at most ``MAX_DEFAULT_WORKERS``."""
    value = os.environ.get(WORKERS_ENV)
    if value:
        try:
            workers = int(value)
        except ValueError:
            raise SearchError(f"{WORKERS_ENV}={value!r} is not a whole number of workers") from None
        if workers < 1:
            raise SearchError(f"{WORKERS_ENV} must be at least 1, got {workers}")
        return workers
    if device.startswith(("cuda", "mps")):
        return 1
    if device == "auto":
        import torch

        if torch.cuda.is_available():
            return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, MAX_DEFAULT_WORKERS))


Executor = InProcessExecutor | AutoExecutor | PoolExecutor | RayExecutor


def make_executor(workers: int | None = None, ray_address: str | None = None, device: str = "cpu") -> Executor:
    """The executor of ``--workers`` / ``--ray``: in-process for 1 worker, a pool of one-thread
    processes for more, Ray when asked (``ray_address="local"``: a local Ray with ``workers`` CPUs;
    any other address: that cluster); without ``workers`` (None) the :class:`AutoExecutor` with
    :func:`default_workers` on ``device`` (in-process where that is 1)."""
    if workers is not None and workers < 1:
        raise SearchError(f"--workers must be at least 1, got {workers}")
    if ray_address == "local":
        return RayExecutor(workers=workers or 2)
    if ray_address:
        return RayExecutor(workers=workers, address=ray_address)
    if workers is None:
        workers = default_workers(device)
        return AutoExecutor(workers) if workers > 1 else InProcessExecutor()
    if workers > 1:
        return PoolExecutor(workers)
    return InProcessExecutor()


def _last_line(exc: BaseException) -> str:
    """The line of a Ray error that says what went wrong (its first lines name the task)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
