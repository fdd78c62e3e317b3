"""Fixtures of the searcher tests: a tiny dataset and a tiny U-Net space."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from nasseg.zoo.data.synthetic import make_dataset
from nasseg.zoo.genotype import Genotype


class TinyUNetSpace:
    """U-Nets of 3 levels with widths from {4, 8} and random skip bits (fast to train at 32 px)."""

    name = "tiny-unet"

    def sample(self, rng: random.Random) -> Genotype:
        channels = [rng.choice([4, 8]) for _ in range(3)]
        skips = [rng.random() < 0.5 for _ in range(2)]
        return Genotype.from_dict({
            "schema": "nasseg.genotype/1", "name": "tiny-unet", "family": "unet",
            "task": {"kind": "segmentation", "num_classes": 1, "in_channels": 3, "input_size": [32, 32]},
            "arch": {"channels": channels, "skips": skips, "dropout": 0.0},
        })  # fmt: skip


@pytest.fixture(scope="session")
def tiny_defects(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 synthetic defect images of 32 px (train/val/test)."""
    root = tmp_path_factory.mktemp("data") / "synth-defects"
    make_dataset("synth-defects", root, n=12, size=32, seed=0)
    return root


@pytest.fixture
def tiny_space() -> TinyUNetSpace:
    return TinyUNetSpace()


@pytest.fixture(scope="module")
def one_thread():
    """Tiny nets on a shared 2-core machine: one intra-op thread is far faster than two
    (a module asks for it with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
