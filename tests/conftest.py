"""Test-wide setup: a private NASSEG_HOME, few threads (the CI machine has two cores)."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _private_nasseg_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASSEG_HOME", str(tmp_path_factory.mktemp("nasseg_home")))
