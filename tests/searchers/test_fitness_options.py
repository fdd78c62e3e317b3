"""The fitness options of issue 14, each at a tiny size: step floors, rank selection, elite re-scoring,
BN recalibration, the RENAS head, the AutoSegNet soft reward and warm-up, NAS-ASDet's derivation
over all ops, and the residual IAC implant with its base kept as a candidate."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from nasseg import zoo
from nasseg.cli import app
from nasseg.searchers import Budget, Searcher
from nasseg.searchers.autosegnet import AutoSegNetConfig, AutoSegNetSpace, AutoSegNetStrategy
from nasseg.searchers.autosegnet.strategy import SoftOverlap
from nasseg.searchers.base import EvalResult, SearchError
from nasseg.searchers.differentiable import BiLevelConfig
from nasseg.searchers.iac import IacConfig, IacStrategy
from nasseg.searchers.nas_asdet import NasAsdetConfig, NasAsdetStrategy
from nasseg.searchers.renas.space import RenasSpace, aspp_rates
from nasseg.searchers.unet_ga import UNetGAStrategy, UNetSpace
from nasseg.searchers.unet_ga.operators import rank_select, roulette
from nasseg.zoo.data.folder import open_folder
from nasseg.zoo.data.synthetic import make_dataset
from nasseg.zoo.training.batchnorm import recalibrate_batchnorm
from nasseg.zoo.training.trainer import TrainConfig, Trainer, TrainResult

ROOT = Path(__file__).resolve().parents[2]
TASK = {"kind": "segmentation", "num_classes": 1, "in_channels": 3, "input_size": [32, 32]}


pytestmark = pytest.mark.usefixtures("one_thread")


# -- data and step floors ----------------------------------------------------------------------


def test_difficulty_keeps_defect_places_and_raises_contrast(tmp_path: Path) -> None:
    hard = make_dataset("synth-defects", tmp_path / "hard", n=6, size=48, seed=3)
    easy = make_dataset("synth-defects", tmp_path / "easy", n=6, size=48, seed=3, difficulty="easy")
    assert json.loads((easy / "dataset.json").read_text())["difficulty"] == "easy"
    folder_h, folder_e = open_folder(hard), open_folder(easy)
    from nasseg.zoo.data.images import read_image

    grown = contrast = 0
    for sample_h, sample_e in zip(folder_h.splits["train"], folder_e.splits["train"], strict=True):
        mask_h, mask_e = read_image(sample_h.mask) > 0, read_image(sample_e.mask) > 0
        assert not (mask_h & ~mask_e).any()  # easy defects cover the hard ones (grown, same places)
        grown += int(mask_e.sum() > mask_h.sum())
        if mask_h.any():
            image_h, image_e = (read_image(s.image).astype(float) for s in (sample_h, sample_e))
            contrast += int(abs(image_e[mask_h].mean() - image_e[~mask_e].mean())
                            > abs(image_h[mask_h].mean() - image_h[~mask_h].mean()))  # fmt: skip
    assert grown >= 1 and contrast >= 1


def test_difficulty_errors_are_one_line(tmp_path: Path) -> None:
    from nasseg.zoo.errors import NassegError

    with pytest.raises(NassegError, match="unknown difficulty 'brutal'"):
        make_dataset("synth-defects", tmp_path / "x", n=3, size=16, difficulty="brutal")
    with pytest.raises(NassegError, match="synth-defects only"):
        make_dataset("synth-membranes", tmp_path / "y", n=3, size=16, difficulty="easy")
    result = CliRunner().invoke(app, ["data", "make", "synth-defects", "--out", str(tmp_path / "z"), "--n", "3",
                                      "--size", "16", "--difficulty", "medium"])  # fmt: skip
    assert result.exit_code == 0, result.output


def test_trainer_step_floor_passes_a_small_set_again(tiny_defects: Path, tmp_path: Path) -> None:
    steps: list[dict] = []
    model = zoo.create_model("unet-small")
    folder = open_folder(tiny_defects)
    config = TrainConfig(epochs=1, batch_size=2, crop=(32, 32), device="cpu", min_steps_per_epoch=11)
    trainer = Trainer(model, folder, config, tmp_path, on_step=steps.append)
    one_pass = len(folder.splits["train"]) // 2
    assert one_pass < 11 and trainer.steps_per_epoch() == 11
    trainer.train_epoch()
    assert len(steps) == 11
    capped = Trainer(model, folder, TrainConfig(epochs=1, batch_size=2, crop=(32, 32), device="cpu",
                                               min_steps_per_epoch=11, max_steps_per_epoch=3), tmp_path)  # fmt: skip
    assert capped.steps_per_epoch() == 3


def test_bilevel_floor_counts_weight_and_alpha_steps() -> None:
    """A bi-level epoch is the trainer's: weight steps (each after an alpha step) raised to the floor, capped."""
    from nasseg.searchers.differentiable import LoaderSpec
    from nasseg.zoo.training.batches import planned_steps

    spec = LoaderSpec(crop=(32, 32), batch_size=2, seed=0)
    for bilevel, per_pass, steps in ((BiLevelConfig(min_steps_per_epoch=20), 3, 20),
                                     (BiLevelConfig(min_steps_per_epoch=20, max_steps_per_epoch=5), 3, 5),
                                     (BiLevelConfig(), 3, 3),
                                     (BiLevelConfig(min_steps_per_epoch=20), 0, 0)):  # fmt: skip
        config = bilevel.train_config(spec, seed=0, loss="bce_dice", device="cpu")
        assert planned_steps(per_pass, config.min_steps_per_epoch, config.max_steps_per_epoch) == steps
        assert config.clip_grad_norm == bilevel.clip_grad_norm and config.scheduler == "none" and not config.amp


# -- the GA ------------------------------------------------------------------------------------


def test_rank_selection_prefers_the_best_where_roulette_barely_does() -> None:
    fitnesses = [0.58, 0.60, 0.62, 0.64, 0.66]
    rng = random.Random(0)
    ranked = Counter(rank_select(rng, fitnesses) for _ in range(20_000))
    wheel = Counter(roulette(rng, fitnesses) for _ in range(20_000))
    assert ranked[4] / ranked[0] == pytest.approx(5.0, rel=0.15)  # n times as likely as the worst
    assert wheel[4] / wheel[0] == pytest.approx(0.66 / 0.58, rel=0.1)
    assert rank_select(rng, [0.0, float("nan"), -1.0]) is None
    assert rank_select(rng, [0.0, 0.3]) == 1


def _ga_result(strategy: UNetGAStrategy, key: str, c1, c2, loss: float, rescore: bool = False) -> EvalResult:
    from nasseg.searchers.unet_ga.space import code_key

    genotype = strategy.space.genotype(c1, c2)
    extra = {"code": code_key(c1, c2), **({"rescore": True} if rescore else {})}
    return EvalResult(key=key, genotype=genotype, metrics={"loss": loss}, macs=1_000_000, extra=extra)


def test_elite_is_rescored_and_its_fitness_averaged() -> None:
    space = UNetSpace(widths=(4, 8), layers=3, task=TASK)
    strategy = UNetGAStrategy(space, population=3, generations=2, gamma=0.0, seed=0, elite_evaluations=2)
    proposals = strategy.ask(0)
    losses = [1.0, 0.5, 2.0]
    history = [_ga_result(strategy, p.key, *space.encode(p.genotype), loss)
               for p, loss in zip(proposals, losses, strict=True)]  # fmt: skip
    strategy.tell(0, history)
    elite_code = proposals[1].extra["code"]
    proposals = strategy.ask(1)
    rescore = [p for p in proposals if p.extra.get("rescore")]
    assert len(rescore) == 1 and rescore[0].extra["code"] == elite_code
    results = [_ga_result(strategy, p.key, *space.encode(p.genotype), 0.25 if p.extra.get("rescore") else 3.0,
                          rescore=bool(p.extra.get("rescore"))) for p in proposals]  # fmt: skip
    strategy.tell(1, results)
    history += results
    assert strategy.cache[elite_code]["fitness"] == pytest.approx((1 / 0.5 + 1 / 0.25) / 2)
    assert not [p for p in strategy.ask(2) if p.extra.get("rescore")]  # two scores: done
    best = strategy.best(history)
    assert best.extra["code"] == elite_code and best.fitness == pytest.approx(3.0)
    report = strategy.flops_report()
    assert report["gamma_p_std"] == 0.0 and report["loss_std"] > 0 and report["gamma_p_over_loss_std"] == 0.0
    with pytest.raises(SearchError, match="selection"):
        UNetGAStrategy(space, selection="tournament")


def test_ga_cli_prints_the_flops_term_against_the_loss_spread(tiny_defects: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["search", "unet-ga", "--data", str(tiny_defects), "--image-size", "32",
                                      "--widths", "4,8", "--layers", "3", "-K", "3", "-T", "1", "--max-steps", "1",
                                      "--max-val-images", "2", "--selection", "roulette", "--elite-evaluations", "1",
                                      "--out", str(tmp_path / "ga")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "gamma * GFLOPs" in result.output
    strategy = json.loads((tmp_path / "ga" / "run.json").read_text())["strategy"]
    assert strategy["selection"] == "roulette" and strategy["elite_evaluations"] == 1


# -- RENAS -------------------------------------------------------------------------------------


def test_renas_head_fits_small_inputs() -> None:
    small = RenasSpace({**TASK, "input_size": [64, 64]}, blocks=2, init_channels=4, aspp_channels=8)
    large = RenasSpace({**TASK, "input_size": [256, 256]}, blocks=2, init_channels=4, aspp_channels=8)
    assert (small.output_stride, small.rates) == (8, [1, 3, 4])
    assert (large.output_stride, large.rates) == (16, [3, 6, 9])
    assert aspp_rates(33) == [6, 12, 18]
    genotype = small.sample(random.Random(0))
    assert genotype.arch.head.output_stride == 8
    assert zoo.build_model(genotype)(torch.randn(2, 3, 64, 64)).shape == (2, 1, 64, 64)
    with pytest.raises(SearchError, match="output stride"):
        RenasSpace(TASK, output_stride=4)


def test_batchnorm_recalibration_measures_the_data() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1, bias=False), torch.nn.BatchNorm2d(4))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(4, 3).view(4, 3, 1, 1))
    batches = [torch.randn(8, 3, 4, 4) * 3 + 5 for _ in range(4)]
    model.eval()
    assert recalibrate_batchnorm(model, iter(batches), "cpu") == 4
    assert not model.training and model[1].momentum == 0.1
    data = torch.cat(batches)
    assert torch.allclose(model[1].running_mean[:3], data.mean(dim=(0, 2, 3)), atol=1e-5)


# -- AutoSegNet --------------------------------------------------------------------------------


def test_soft_reward_moves_where_the_thresholded_iou_is_zero() -> None:
    masks = torch.zeros(2, 8, 8, dtype=torch.long)
    masks[:, 2:5, 2:5] = 1
    low, better = SoftOverlap(), SoftOverlap()
    low.update(torch.full((2, 1, 8, 8), -3.0), masks)  # p = 0.047 everywhere: nothing above 0.5
    logits = torch.full((2, 1, 8, 8), -3.0)
    logits[:, :, 2:5, 2:5] = -0.5  # still below 0.5 on the defect, but closer
    better.update(logits, masks)
    assert 0 < low.compute()["soft_iou"] < better.compute()["soft_iou"] < 1
    multi = SoftOverlap()
    multi.update(torch.zeros(2, 3, 8, 8), masks)
    assert 0 < multi.compute()["soft_dice"] < 1


def test_autosegnet_warmup_trains_shared_weights_only(tiny_defects: Path, tmp_path: Path) -> None:
    space = AutoSegNetSpace((32, 32), stem_channels=4, min_size=8)
    config = AutoSegNetConfig(image_size=(32, 32), batch_size=2, max_images=4, max_val_images=2,
                              max_steps_per_epoch=2, controller_steps=2, derive_samples=2, epochs_max=2,
                              warmup_epochs=1)  # fmt: skip
    strategy = AutoSegNetStrategy(tiny_defects, space, config, seed=0)
    before = [p.detach().clone() for p in strategy.controller.parameters()]
    searcher = Searcher(strategy, None, Budget(steps=1), tmp_path / "run", seed=0, dataset=str(tiny_defects))
    searcher.run()
    assert all(torch.equal(a, b) for a, b in zip(before, strategy.controller.parameters(), strict=True))
    assert strategy.curves[0]["warmup"] and strategy.curves[0]["reward_kind"] == "soft_iou"
    Searcher(strategy, None, Budget(steps=2), tmp_path / "run", seed=0, dataset=str(tiny_defects)).run(resume=True)
    assert not all(torch.equal(a, b) for a, b in zip(before, strategy.controller.parameters(), strict=True))
    assert not strategy.curves[1]["warmup"] and 0 < strategy.curves[1]["mean_reward"] < 1
    with pytest.raises(SearchError, match="reward"):
        AutoSegNetConfig(reward="loss")


# -- NAS-ASDet ---------------------------------------------------------------------------------


def test_nas_asdet_ranks_single_op_edges_by_their_weight_over_all_ops(tiny_defects: Path) -> None:
    from nasseg.zoo.ops import NAS_ASDET_OPS

    config = NasAsdetConfig(keep=(4, 1), epochs_per_stage=2, warmup_epochs=0, image_size=(32, 32), init_channels=4,
                            batch_size=2, max_steps_per_epoch=1)  # fmt: skip
    strategy = NasAsdetStrategy(tiny_defects, config, seed=0)
    strategy._setup()
    supernet = strategy.supernet
    op = NAS_ASDET_OPS.index("sep_conv_3x3")
    for kind in ("normal", "reduce"):  # the last stage: one op left on every edge
        supernet.active[kind] = [[op] for _ in supernet.active[kind]]
    with torch.no_grad():
        alphas = supernet.arch.alphas["normal"]
        alphas.zero_()
        for edge in range(alphas.shape[0]):
            alphas[edge, op] = 0.1 * edge  # later edges chose their op more strongly
    assert torch.all(supernet.op_weights("normal") == 1.0)  # over the survivors: a tie everywhere
    cell = strategy.derive_cells()["normal"]
    assert [sorted(s for _, s in edges) for edges in cell.nodes] == [[0, 1], [1, 2], [2, 3], [3, 4]]
    strategy.config.derive_weights = "active"  # ties broken by edge order: always the first two states
    assert [sorted(s for _, s in edges) for edges in strategy.derive_cells()["normal"].nodes] == [[0, 1]] * 4
    with pytest.raises(SearchError, match="derive weights"):
        NasAsdetConfig(derive_weights="max")


# -- IAC ---------------------------------------------------------------------------------------


def _implant(residual: bool) -> torch.nn.Module:
    base = zoo.resolve_genotype("iac-base-unet-small").replace(task=TASK)
    cell = {"nodes": [[["sep_conv_3x3", 0], ["skip_connect", 1]], [["dil_conv_3x3", 2], ["max_pool_3x3", 0]]],
            "concat": [2, 3]}  # fmt: skip
    genotype = zoo.Genotype.from_dict({
        "schema": "nasseg.genotype/1", "name": "implant", "family": "iac-unet", "task": TASK,
        "arch": {"base": {"model": "iac-base-unet-small", "arch_hash": base.arch_hash}, "cell": cell,
                 "cell_channels": 4, "implant": "residual" if residual else "replace"},
    })  # fmt: skip
    torch.manual_seed(0)
    return zoo.build_model(genotype), base


def test_residual_implant_starts_at_its_base_and_resets_to_it() -> None:
    implant, base_genotype = _implant(residual=True)
    assert implant.genotype.arch.implant == "residual"
    base = zoo.build_model(base_genotype)
    base.load_state_dict(implant.base.state_dict())
    x = torch.randn(2, 3, 32, 32)
    implant.eval(), base.eval()
    assert torch.equal(implant(x), base(x))
    with torch.no_grad():
        for cell in implant.cells.values():
            cell.align.weight.normal_()
    assert not torch.allclose(implant(x), base(x))
    implant.reset_to_base()
    assert torch.equal(implant(x), base(x))
    replace, _ = _implant(residual=False)
    replace.base.load_state_dict(base.state_dict())
    assert not torch.allclose(replace.eval()(x), base(x))
    with pytest.raises(ValueError, match="residual"):
        replace.reset_to_base()
    with pytest.raises(zoo.GenotypeError, match="implant"):
        zoo.Genotype.from_dict({**base_genotype.to_dict(), "arch": {**base_genotype.to_dict()["arch"],
                                                                  "implant": "residual"}})  # fmt: skip


IAC_TINY = dict(base="iac-base-unet-small", base_epochs=1, warmup_epochs=0, search_epochs=1, cell_epochs=1,
                batch_size=2, image_size=(32, 32), cell_channels=4, max_steps_per_epoch=1, max_val_images=2,
                record_epochs=())  # fmt: skip


def test_iac_keeps_the_base_when_it_is_better_on_val(tiny_defects: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    fit = Trainer.fit

    def worse_than_any_base(self: Trainer, resume: bool = False) -> TrainResult:
        result = fit(self, resume)
        if getattr(self.model, "cells", None) is not None:  # stage III: pretend the implant scored below the base
            result.best_metrics = {**result.best_metrics, "iou": -1.0}
        return result

    monkeypatch.setattr(Trainer, "fit", worse_than_any_base)
    strategy = IacStrategy(tiny_defects, IacConfig(**IAC_TINY), seed=1)
    result = Searcher(strategy, None, Budget(steps=3), tmp_path / "run", seed=1, dataset=str(tiny_defects)).run()
    implant = result.history[-1]
    assert implant.key == "implant" and implant.extra["kept_base"] is True
    assert implant.metrics["iou"] == pytest.approx(implant.extra["base"]["iou"])
    model = zoo.create_model(tmp_path / "run" / "implant.json", pretrained=True)
    assert all(torch.count_nonzero(c.align.weight) == 0 for c in model.cells.values())


def test_iac_random_cell_skips_stage_two(tiny_defects: Path, tmp_path: Path) -> None:
    strategy = IacStrategy(tiny_defects, IacConfig(**IAC_TINY, random_cell=True), seed=2)
    result = Searcher(strategy, None, Budget(steps=5), tmp_path / "run", seed=2, dataset=str(tiny_defects)).run()
    assert [r.key for r in result.history] == ["base", "implant"]
    assert result.history[-1].extra["random_cell"] is True
    with pytest.raises(SearchError, match="implant"):
        IacConfig(implant="add")


# -- the benchmark -----------------------------------------------------------------------------


def test_search_quality_benchmark_writes_the_protocol_fields(tmp_path: Path) -> None:
    out = tmp_path / "sq.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "search_quality.py"), "--scale", "tiny", "--searchers",
               "unet-ga", "--seeds", "0", "1", "--retrain-seeds", "0", "--controls", "unet-small", "--work",
               str(tmp_path / "work"), "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    row = report["searchers"]["unet-ga"]
    for key in ("scale", "seeds", "retrain_seeds", "test_images", "searcher_iou_mean", "random_iou_mean",
                "difference_mean", "difference_ci90", "minutes"):  # fmt: skip
        assert key in row, key
    assert row["seeds"] == [0, 1] and row["complete_seeds"] == 2 and len(row["difference_ci90"]) == 2
    low, high = row["difference_ci90"]
    assert low <= row["difference_mean"] <= high
    assert "synth-defects/unet-small" in report["controls"]
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)  # resumes: nothing to redo
    assert again.returncode == 0 and " ..." not in again.stdout
    assert np.isclose(json.loads(out.read_text())["searchers"]["unet-ga"]["difference_mean"], row["difference_mean"])
