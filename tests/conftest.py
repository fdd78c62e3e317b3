"""Test-wide setup: a private NASSEG_HOME, few threads (the CI machine has two cores), and searches
that evaluate their candidates in this process unless a test asks for workers (a pool's start-up
costs more than a tiny search's candidates; the default executor has its own tests)."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

torch.set_num_threads(2)
os.environ.setdefault("NASSEG_SEARCH_WORKERS", "1")

# CI runs the property tests with fixed draws (reproducible submissions); local runs explore.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _private_nasseg_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASSEG_HOME", str(tmp_path_factory.mktemp("nasseg_home")))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path_factory.mktemp("hf_hub_cache")))  # no user's cached encoders


@pytest.fixture(scope="session")
def tiny_latency_table(tmp_path_factory: pytest.TempPathFactory):
    """A real latency table (ONNX Runtime, 1 thread) of unet-small's and a DARTS cell net's units at 32 px."""
    import json

    from nasseg import zoo
    from nasseg.serving.latency_table import build_table
    from nasseg.zoo.latency import trace_genotype

    calls = [c for name in ("unet-small", "nas-asdet-darts-v2")
             for c in trace_genotype(zoo.resolve_genotype(name), (32, 32), keep_modules=True)]  # fmt: skip
    path = tmp_path_factory.mktemp("latency") / "table.json"
    path.write_text(json.dumps(build_table(calls, threads=1, repeats=3, size=(32, 32))))
    return path
