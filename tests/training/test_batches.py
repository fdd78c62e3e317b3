"""The one batch plan of the trainer and the supernets' bi-level loop."""

from __future__ import annotations

import pytest

from nasseg.zoo.training.batches import passes, planned_steps


@pytest.mark.parametrize(
    ("per_pass", "low", "high", "steps"),
    [(5, None, None, 5), (5, 20, None, 20), (5, 20, 8, 8), (30, 20, None, 30), (30, None, 10, 10), (0, 20, None, 0)],
)
def test_planned_steps_raise_a_pass_to_the_floor_and_cap_it(per_pass: int, low, high, steps: int) -> None:
    assert planned_steps(per_pass, low, high) == steps


def test_passes_go_over_the_data_again_each_pass_its_own_and_stop_when_a_pass_is_empty() -> None:
    seen = []

    def loader(number: int) -> list[tuple[int, int]]:
        seen.append(number)
        return [(number, i) for i in range(2)]

    batches = passes(loader)
    assert [next(batches) for _ in range(5)] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]
    assert seen == [0, 1, 2]
    assert list(passes(lambda number: [])) == []


def test_a_trainer_without_a_run_folder_trains_in_memory_and_says_what_needs_one(tmp_path) -> None:
    from nasseg import zoo
    from nasseg.zoo.data.folder import open_folder
    from nasseg.zoo.data.synthetic import make_dataset
    from nasseg.zoo.errors import NassegError
    from nasseg.zoo.training.trainer import TrainConfig, Trainer

    make_dataset("synth-defects", tmp_path / "d", n=8, size=32, seed=0)
    genotype = zoo.apply_overrides(zoo.resolve_genotype("unet-small"), {"channels": [4, 8], "skips": [True],
                                   "dropout_layers": 0, "input_size": [32, 32]})  # fmt: skip
    trainer = Trainer(zoo.build_model(genotype), open_folder(tmp_path / "d"),
                      TrainConfig(epochs=1, batch_size=2, crop=(32, 32), max_steps_per_epoch=2, device="cpu"))
    assert trainer.steps_per_epoch() == 2 and trainer.train_epoch() > 0
    with pytest.raises(NassegError, match="no run folder"):
        trainer.fit()
    assert list(tmp_path.iterdir()) == [tmp_path / "d"]
