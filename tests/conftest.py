"""Test-wide setup: a private NASSEG_HOME, few threads (the CI machine has two cores)."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

torch.set_num_threads(2)

# CI runs the property tests with fixed draws (reproducible submissions); local runs explore.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _private_nasseg_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASSEG_HOME", str(tmp_path_factory.mktemp("nasseg_home")))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path_factory.mktemp("hf_hub_cache")))  # no user's cached encoders
