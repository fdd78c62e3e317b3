"""The issue-14/19 benchmark scripts at tiny scale: they run, resume, and write what they claim."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import cellnet_speed  # noqa: E402
import iac_stage3  # noqa: E402
import search_fidelity  # noqa: E402


def test_cellnet_speed_before_is_the_same_net_in_its_literal_forms() -> None:
    """'before' re-creates the paper forms of the head, FactorizedReduce and the spatial gate: same logits."""
    from nasseg import zoo

    torch.manual_seed(0)
    model = zoo.create_model("asdet-synth-defects").eval()
    x = torch.rand(1, 3, 64, 48)
    with torch.no_grad():
        now = model(x)
        with cellnet_speed.literal_head():
            literal = model(x)
            assert all(getattr(cls, attr) is form for cls, attr, form in cellnet_speed.LITERAL)
        after = model(x)
    torch.testing.assert_close(literal, now, rtol=1e-4, atol=1e-4)
    assert torch.equal(after, now)  # the context manager puts the current forms back


def test_stage_three_length_picks_on_val_and_keeps_the_base() -> None:
    run = {"val": [0.5, 0.7, 0.6], "test": [0.4, 0.65, 0.9], "base_val": 0.6, "base_test": 0.55}
    assert iac_stage3.chosen(run, 1) == (0.55, False)  # the base is better on val after one epoch
    assert iac_stage3.chosen(run, 3) == (0.65, True)  # epoch 2 is val-best; epoch 3's test is not looked at
    assert iac_stage3.arms([1e-3])[-1] == (iac_stage3.FLIP_LRS[-1], True)


def test_fidelity_summary_sees_rank_agreement_and_noise() -> None:
    def runs(truth: float, noise: float) -> list[dict]:
        return [{"val": [truth + sign * noise] * 16, "test_iou": truth + sign * noise} for sign in (-1, 1)]

    clear = search_fidelity.summarise([runs(0.5, 0.001), runs(0.6, 0.001), runs(0.7, 0.001)], 25)
    noisy = search_fidelity.summarise([runs(0.5, 0.2), runs(0.51, 0.2), runs(0.52, 0.2)], 25)
    first = clear["budgets"][0]
    assert first["steps"] == 25 and first["spearman_with_truth"] == pytest.approx(1.0) and first["spread_ratio"] > 10
    assert noisy["budgets"][0]["spread_ratio"] < 1
    assert clear["headroom_best_minus_mean"] == pytest.approx(0.1)


def test_fidelity_rows_elsewhere_are_named_by_data_and_size() -> None:
    """A space measured on its own data at the scale's size keeps its row; elsewhere it gets its own."""
    assert search_fidelity.variant("nas-asdet", "synth-defects", 64, 64) == "nas-asdet"
    assert search_fidelity.variant("autosegnet", "synth-membranes", 64, 64) == "autosegnet"
    assert search_fidelity.variant("autosegnet", "synth-defects", 64, 64) == "autosegnet@synth-defects-64px"
    assert search_fidelity.variant("nas-asdet", "synth-defects", 128, 64) == "nas-asdet@synth-defects-128px"


def test_fidelity_summary_of_one_shot_rewards_ranks_by_the_supernets() -> None:
    truth = [[{"val": [t] * 16, "test_iou": t + d} for d in (-0.01, 0.01)] for t in (0.5, 0.6, 0.7)]
    agree = {"rewards": [[0.1, 0.2, 0.3]] * 7}
    reverse = {"rewards": [[0.3, 0.2, 0.1], [0.31, 0.21, 0.11]]}
    row = search_fidelity.summarise(truth, 20, [agree, {"rewards": [[0.11, 0.21, 0.29]] * 7}])
    assert row["budgets"][0]["steps"] == 20 and row["budgets"][-1]["steps"] == 64 * 20
    assert all(b["spearman_with_truth"] == pytest.approx(1.0) for b in row["budgets"])
    assert all(b["spearman_between_seeds"] == pytest.approx(1.0) for b in row["budgets"])
    short = search_fidelity.summarise(truth, 20, [reverse, reverse])
    assert [b["spearman_with_truth"] for b in short["budgets"]] == pytest.approx([-1.0, -1.0])
    assert short["fitness"].startswith("one-shot")


@pytest.mark.parametrize("script", [pytest.param("iac_stage3.py", marks=pytest.mark.slow), "search_fidelity.py"])
def test_benchmark_runs_at_tiny_scale_and_resumes(script: str, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    extra = (["--seeds", "0", "--lrs", "1e-3"] if script == "iac_stage3.py" else
             ["--archs", "3", "--spaces", "unet-ga", "autosegnet", "--one-shot-epochs", "2"])  # fmt: skip
    command = [sys.executable, str(ROOT / "benchmarks" / script), "--scale", "tiny", "--work", str(tmp_path / "w"),
               "--out", str(out), *extra]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    if script == "iac_stage3.py":
        assert {(r["lr"], r["flips"]) for r in report["rows"]} == {(1e-3, False), (1e-3, True), (3e-3, True)}
    else:
        assert report["spaces"]["unet-ga"]["archs"] == 3 and report["spaces"]["unet-ga"]["budgets"]
        one_shot = report["spaces"]["autosegnet"]
        assert one_shot["fitness"].startswith("one-shot") and [b["steps"] for b in one_shot["budgets"]] == [3, 6]
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and " ..." not in again.stdout


def test_fidelity_shards_split_the_trainings_and_the_last_run_writes_the_row(tmp_path: Path) -> None:
    """Two ``--shard`` processes train disjoint units; a run without it then trains nothing and writes the row."""
    out = tmp_path / "out.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "search_fidelity.py"), "--scale", "tiny", "--work",
               str(tmp_path / "w"), "--out", str(out), "--archs", "2", "--spaces", "unet-ga"]  # fmt: skip
    first = subprocess.run([*command, "--shard", "1/2"], capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.count(" ...") == 2 and "/s1 ..." in first.stdout and "/s0 ..." not in first.stdout
    assert "shard 1/2 done" in first.stdout and not out.exists()  # no row from half the units
    second = subprocess.run([*command, "--shard", "0/2"], capture_output=True, text=True, timeout=600)
    assert second.returncode == 0 and second.stdout.count("/s0 ...") == 2 and "/s1 ..." not in second.stdout
    assert json.loads(out.read_text())["spaces"]["unet-ga"]["archs"] == 2  # the last shard found all units done
    final = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0 and " ..." not in final.stdout
    bad = subprocess.run([*command, "--shard", "2/2"], capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "--shard '2/2': need 0 <= I < N" in bad.stderr


def test_latency_budget_verdicts_call_margins_within_the_seed_spread_ties() -> None:
    import latency_budgets

    assert [latency_budgets.verdict(m, 0.004) for m in (0.01, 0.004, 0.0, -0.003, -0.0041)] == [
        "yes", "tie", "tie", "tie", "no"]  # fmt: skip
    row = {"budget_ms": 4.0, "best_unet": "unet-w16-l4", "best_unet_iou": 0.714, "best_unet_ms": 3.8,
           "best_searched": "unet-ga@4ms", "best_searched_iou": 0.708, "best_searched_ms": 3.3}  # fmt: skip
    assert latency_budgets.markdown_table({"rows": [row], "tie_band": 0.003}).endswith("| no (-0.006) |")
    assert latency_budgets.markdown_table({"rows": [row], "tie_band": 0.0065}).endswith("| tie (-0.006) |")


def test_search_quality_variants_share_their_searchers_random_arm() -> None:
    import search_quality_report as report

    assert report.arm_unit("iac-live-pt", "random") == "iac"
    assert report.arm_unit("iac-live-pt", "search") == "iac-live-pt"
    assert report.arm_unit("nas-asdet-pt", "random") == "nas-asdet"
    assert report.arm_unit("autosegnet-unet", "random") == "autosegnet-unet"  # a changed space: its own arm
    assert report.arm_unit("iac-defects-pt", "random") == "iac-defects"  # a variant's variant: the same data
    for variant, shared in report.SHARED_RANDOM.items():
        assert report.VARIANTS[variant][0] == report.searcher_of(shared)
        data = report.VARIANTS[variant][1].get("data")
        assert data == (report.VARIANTS[shared][1].get("data") if shared in report.VARIANTS else None)


def test_search_quality_units_continue_from_their_committed_copy(tmp_path: Path) -> None:
    """A session whose work folder is gone continues from the committed copy of the units; every
    finished unit lands in both files; a unit in the work file wins over the copy's."""
    import search_quality

    work, copy = tmp_path / "work" / "units.json", tmp_path / "results" / "units-copy.json"
    work.parent.mkdir()
    copy.parent.mkdir()
    first = search_quality.Units(work, copy)
    first.put("renas/search/s0/search", {"genotype": {}, "seconds": 1.0})
    assert json.loads(copy.read_text()) == json.loads(work.read_text())
    work.unlink()  # the next session: a fresh work folder
    again = search_quality.Units(work, copy)
    made = []
    assert again.once("renas/search/s0/search", lambda: made.append(1) or {"seconds": 2.0})["seconds"] == 1.0
    assert made == []  # not run again
    again.put("renas/random/s0/search", {"seconds": 3.0})
    assert set(json.loads(copy.read_text())) == set(json.loads(work.read_text())) == {
        "renas/search/s0/search", "renas/random/s0/search"}  # fmt: skip
    work.write_text(json.dumps({"renas/search/s0/search": {"seconds": 9.0}}))
    assert search_quality.Units(work, copy).get("renas/search/s0/search")["seconds"] == 9.0


def test_a_zoo_entry_takes_its_pick_from_the_row_it_names(tmp_path: Path) -> None:
    """``asdet-pt-synth-defects`` ships NAS-ASDet's default (perturbation) pick: the ``nas-asdet-pt``
    row's best seed on val, not the alpha-rule row's, and the row's settings."""
    import search_quality
    import zoo_entries

    units = search_quality.Units(tmp_path / "units.json")
    for row, val in (("nas-asdet", 0.9), ("nas-asdet-pt", 0.5)):
        for seed in (0, 1, 2):
            units.put(f"{row}/search/s{seed}/search", {"genotype": {"row": row, "seed": seed}, "seconds": 1.0})
            for retrain in (0, 1):
                units.put(f"{row}/search/s{seed}/r{retrain}", {"val_iou": val + 0.01 * (seed == 1), "seconds": 1.0})
    pick = zoo_entries.pick_for("asdet-pt-synth-defects", zoo_entries.SCALES["cpu"], tmp_path / "zoo", units, "cpu",
                                sq_work=tmp_path)  # fmt: skip
    assert pick["genotype"] == {"row": "nas-asdet-pt", "seed": 1} and pick["seed"] == 1
    assert pick["run_dir"].endswith("nas-asdet-pt-search-s1") and "nas-asdet-pt" in pick["chosen_by"]
    assert zoo_entries.sq.SCALES["cpu"][zoo_entries.ENTRY_ROWS["asdet-pt-synth-defects"]]["selection"] == "perturbation"


def test_a_leaderboard_row_timed_on_another_box_says_how_that_box_compares() -> None:
    """A row measured with ``--reference`` carries the references' times of the same run, and the
    table marks it and gives the ratio (the median over the references), not a bare number."""
    import leaderboard

    def row(name: str, ms: float, **extra: object) -> dict[str, object]:
        p50 = {key: ms for key in ("onnx-fp32@1t", "onnx-fp32@2t", "onnx-int8@1t", "onnx-int8@2t")}
        return {"name": name, "kind": "searched", "searcher": "nas-asdet", "data": "synth-defects", "test_iou": 0.7,
                "test_dice": 0.8, "params": 1e6, "macs_256": 2e8, "p50_ms": p50, "int8_iou_delta": 0.0,
                "file_bytes": 1e6, "weights_dtype": "float32", "shipped": True, **extra}  # fmt: skip

    refs = {"a": {"here_ms": 20.0, "row_ms": 10.0}, "b": {"here_ms": 9.0, "row_ms": 3.0},
            "c": {"here_ms": 5.0, "row_ms": 2.0}}  # fmt: skip
    rows = {"a": row("a", 10.0), "new": row("new", 18.0, same_run_references=refs, cpu="Other CPU")}
    assert leaderboard.speed_ratio(rows["new"]) == pytest.approx(2.5) and leaderboard.speed_ratio(rows["a"]) is None
    table = leaderboard.markdown_table({"rows": rows})
    assert "| `new` ‡ |" in table and "| `a` |" in table
    assert "‡ `new` timed on another box (Other CPU), 2.50x the other rows' times" in table
