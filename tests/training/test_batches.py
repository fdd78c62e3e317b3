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


def test_a_batch_source_and_a_before_step_hook_drive_the_trainers_loop(tmp_path) -> None:
    """The extension points the supernets' bi-level loop uses: batches come from the source given
    (pass after pass up to the step floor), the hook runs once before every optimiser step, and only
    the parameters the optimiser steps are clipped and moved."""
    import torch

    from nasseg import zoo
    from nasseg.zoo.data.folder import open_folder
    from nasseg.zoo.data.synthetic import make_dataset
    from nasseg.zoo.training.trainer import TrainConfig, Trainer

    make_dataset("synth-defects", tmp_path / "d", n=8, size=32, seed=0)
    genotype = zoo.apply_overrides(zoo.resolve_genotype("unet-small"), {"channels": [4, 8], "skips": [True],
                                   "dropout_layers": 0, "input_size": [32, 32]})  # fmt: skip
    model = zoo.build_model(genotype)
    batch = (torch.rand(2, 3, 32, 32), (torch.rand(2, 32, 32) > 0.5).long())

    class TwoBatches:
        def __init__(self) -> None:
            self.asked: list[tuple[int, int]] = []

        def batches_per_pass(self) -> int:
            return 2

        def loader(self, epoch: int, number: int) -> list:
            self.asked.append((epoch, number))
            return [batch, batch]

    events: list[str] = []
    source = TwoBatches()
    head = list(model.parameters())[-1]
    before = [p.detach().clone() for p in model.parameters()]

    class Recording(torch.optim.SGD):
        def step(self, closure=None):  # noqa: ANN001, ANN201
            events.append("step")
            return super().step(closure)

    config = TrainConfig(epochs=1, batch_size=2, crop=(32, 32), min_steps_per_epoch=5, device="cpu", lr=0.1)
    stepped = [p for p in model.parameters() if p is not head]
    trainer = Trainer(model, open_folder(tmp_path / "d"), config, batches=source,
                      before_step=lambda step: events.append(f"hook {step}"),
                      optimizer=lambda net, _: Recording(stepped, lr=0.1))  # fmt: skip
    trainer.epoch = 3
    assert trainer.steps_per_epoch() == 5
    trainer.train_epoch()
    assert events == [e for step in range(5) for e in (f"hook {step}", "step")]
    assert source.asked == [(3, 0), (3, 1), (3, 2)]  # 5 steps from passes of 2 batches
    assert all(p is not head for p in trainer.stepped_parameters())
    assert len(trainer.stepped_parameters()) == len(before) - 1
    after = list(model.parameters())
    assert torch.equal(after[-1], before[-1]) and not torch.equal(after[0], before[0])


def test_train_steps_counts_optimiser_steps_across_epochs(tmp_path) -> None:
    import torch

    from nasseg import zoo
    from nasseg.zoo.data.folder import open_folder
    from nasseg.zoo.data.synthetic import make_dataset
    from nasseg.zoo.training.trainer import TrainConfig, Trainer

    make_dataset("synth-defects", tmp_path / "d", n=8, size=32, seed=0)
    genotype = zoo.apply_overrides(zoo.resolve_genotype("unet-small"), {"channels": [4, 8], "skips": [True],
                                   "dropout_layers": 0, "input_size": [32, 32]})  # fmt: skip
    counted: list[int] = []
    config = TrainConfig(epochs=1, batch_size=2, crop=(32, 32), max_steps_per_epoch=3, device="cpu")
    runs = []
    for split in ([7], [3, 4]):  # 7 steps at once, or 3 (one whole epoch) then 4 more
        torch.manual_seed(0)
        trainer = Trainer(zoo.build_model(genotype), open_folder(tmp_path / "d"), config,
                          on_step=lambda event: counted.append(event["step"]))  # fmt: skip
        losses = [loss for steps in split for loss in trainer.train_steps(steps)]
        runs.append((trainer, losses))
    assert counted == [1, 2, 3, 1, 2, 3, 1] * 2 and runs[0][0].epoch == runs[1][0].epoch == 3
    assert runs[0][1] == runs[1][1]
    for key, value in runs[0][0].model.state_dict().items():
        assert torch.equal(value, runs[1][0].model.state_dict()[key]), key
