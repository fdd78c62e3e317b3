"""The latency predictor: units, traces on meta, table lookups and the fallback estimate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nasseg import zoo
from nasseg.zoo.latency import (
    TABLE_SCHEMA,
    EdgeContext,
    LatencyTable,
    LatencyTableError,
    edge_contexts,
    edge_op_calls,
    iter_units,
    latency_factor,
    trace_genotype,
)

MODELS = ("unet-small", "nas-asdet-darts-v2", "renas-synth-defects", "iac-unet-small-synth-defects",
          "autosegnet-synth-defects", "smp-unet-resnet18")  # fmt: skip


@pytest.mark.parametrize("name", MODELS)
def test_every_parameter_belongs_to_exactly_one_unit(name: str) -> None:
    with torch.device("meta"):
        model = zoo.build_model(zoo.resolve_genotype(name))
    owners: dict[int, int] = {}
    for _, unit in iter_units(model):
        for parameter in unit.parameters():
            owners[id(parameter)] = owners.get(id(parameter), 0) + 1
    assert set(owners.values()) == {1}
    assert set(owners) == {id(p) for p in model.parameters()}


@pytest.mark.parametrize("name", ["unet-small", "smp-unet-resnet18"])
def test_traced_macs_are_the_profile_macs(name: str) -> None:
    genotype = zoo.resolve_genotype(name)
    calls = trace_genotype(genotype, (64, 96))
    profile = zoo.profile(zoo.build_model(genotype), (1, 3, 64, 96))
    assert sum(c.macs for c in calls) == profile.macs
    assert all(c.inputs[0][2:] != () for c in calls)


def test_trace_runs_at_the_frame_size_on_meta() -> None:
    small = trace_genotype(zoo.resolve_genotype("unet-small"), (64, 64))
    large = trace_genotype(zoo.resolve_genotype("unet-small"), (128, 128))
    assert [c.signature for c in small] == [c.signature for c in large]
    assert sum(c.macs for c in large) == 4 * sum(c.macs for c in small)
    assert {c.key for c in small}.isdisjoint({c.key for c in large})


def test_edge_contexts_and_edge_ops_of_a_cell_net() -> None:
    calls = trace_genotype(zoo.resolve_genotype("nas-asdet-darts-v2"), (64, 64))
    contexts = edge_contexts(calls)
    assert {c.stride for c in contexts} == {1, 2}
    context = EdgeContext(16, 16, 2, 32, 32)
    (call,) = edge_op_calls("sep_conv_3x3", context)
    assert call.kind == "SepConv" and call.inputs == ((1, 16, 32, 32),) and call.outputs == ((1, 16, 16, 16),)


def _table(calls: list, ms: float = 0.5, overhead: float = 0.1) -> dict:
    units = {c.key: {"kind": c.kind, "inputs": [list(s) for s in c.inputs], "macs": c.macs, "elements": c.elements,
                     "ms": ms} for c in calls}  # fmt: skip
    return {"schema": TABLE_SCHEMA, "runtime": "onnx-fp32", "threads": 2, "call_overhead_ms": overhead, "units": units}


def test_prediction_is_the_overhead_plus_the_units() -> None:
    genotype = zoo.resolve_genotype("unet-small")
    calls = trace_genotype(genotype, (64, 64))
    table = LatencyTable(_table(calls))
    prediction = table.predict(genotype, (64, 64))
    assert prediction.looked_up == len(calls) and prediction.estimated == 0
    assert prediction.predicted_ms == pytest.approx(0.1 + 0.5 * len(calls))


def test_missing_units_are_estimated_from_the_table() -> None:
    rows = {}
    for side in (16, 32, 48, 64, 96):  # a table where time grows with MACs
        for call in trace_genotype(zoo.resolve_genotype("unet-small"), (side, side)):
            rows[call.key] = {"kind": call.kind, "inputs": [list(s) for s in call.inputs], "macs": call.macs,
                              "elements": call.elements, "ms": 1e-7 * call.macs + 1e-6 * call.elements}  # fmt: skip
    table = LatencyTable({"schema": TABLE_SCHEMA, "units": rows})
    small = table.predict(zoo.resolve_genotype("unet-small"), (128, 128))
    large = table.predict(zoo.resolve_genotype("unet-small"), (256, 256))
    assert small.looked_up == 0 and small.estimated == small.units
    assert 3 * small.predicted_ms < large.predicted_ms


def test_an_estimate_never_falls_below_the_measured_roof() -> None:
    """Issue 29: a plain least-squares fit with a negative intercept predicted 0 ms for small units
    (a whole net at 0.002 ms against 2.59 measured); the estimate now keeps a physical floor."""
    rows = {}
    for i, macs in enumerate((1e7, 2e7, 4e7, 8e7, 1.6e8)):  # big units only, time = -0.2 ms + MACs at 1 GMAC/ms
        rows[f"k{i}"] = {"kind": "Conv", "inputs": [[1, 8, 8, 8]], "macs": int(macs), "elements": 512,
                         "ms": max(macs / 1e8 - 0.2, 0.01)}  # fmt: skip
    table = LatencyTable({"schema": TABLE_SCHEMA, "units": rows})
    genotype = zoo.apply_overrides(zoo.resolve_genotype("unet-small"), {"channels": [4, 4, 8], "skips": [True, True]})
    prediction = table.predict(genotype, (32, 32))
    calls = trace_genotype(genotype, (32, 32))
    assert prediction.estimated == len(calls) and prediction.estimated_share == pytest.approx(1.0)
    for call in calls:
        assert table.estimate(call) >= table.floor(call) > 0
        assert table.floor(call) >= call.macs / 1e8  # at most the fastest rate any timed unit reached
    assert prediction.to_dict()["estimated_share"] == 1.0


def test_a_search_is_warned_once_when_the_table_does_not_cover_it(tiny_latency_table: Path) -> None:
    import warnings

    from nasseg.searchers.latency import LatencyObjective

    objective = LatencyObjective.from_options(tiny_latency_table, 1.0, 0.07, (48, 48))  # a size the table lacks
    space = [zoo.apply_overrides(zoo.resolve_genotype("unet-small"), {"channels": [4, w, 16], "skips": [True, True]})
             for w in (4, 8, 12)]  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for genotype in space:
            objective.predict_ms(genotype)
    lines = [str(w.message) for w in caught if "does not cover this search" in str(w.message)]
    assert len(lines) == 1 and "nasseg latency table" in lines[0] and "--size 48x48" in lines[0]
    assert f"--extend {tiny_latency_table}" in lines[0] and "--config RUN" in lines[0]  # covers *this* space


def test_bad_tables_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(LatencyTableError, match="no such latency table"):
        LatencyTable.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(LatencyTableError, match="cannot read"):
        LatencyTable.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"schema": "nasseg.genotype/1"}))
    with pytest.raises(LatencyTableError, match="not a latency table"):
        LatencyTable.load(tmp_path / "other.json")
    with pytest.raises(LatencyTableError, match="no timed units"):
        LatencyTable({"schema": TABLE_SCHEMA, "units": {}})


def test_latency_factor_is_a_constraint() -> None:
    assert latency_factor(5.0, 10.0, 0.5) == 1.0 == latency_factor(10.0, 10.0, 0.5)
    assert latency_factor(20.0, 10.0, 0.5) == pytest.approx(2**-0.5)
    assert latency_factor(40.0, 10.0, 0.5) < latency_factor(20.0, 10.0, 0.5) < 1
    with pytest.raises(ValueError, match="target"):
        latency_factor(1.0, 0.0, 0.5)


def test_dropout_does_not_change_a_units_key() -> None:
    """Inference skips dropout (ONNX export drops it): a decoder step with and without it is one row."""
    genotype = zoo.resolve_genotype("unet-small")
    with_dropout = genotype.replace(arch={**genotype.arch.model_dump(mode="json"), "dropout": 0.5})
    plain, dropped = trace_genotype(genotype, (64, 64)), trace_genotype(with_dropout, (64, 64))
    assert [c.key for c in plain] == [c.key for c in dropped]
    with torch.device("meta"):
        assert any(isinstance(m, torch.nn.Dropout) for m in zoo.build_model(with_dropout).modules())
    wider = genotype.replace(arch={**genotype.arch.model_dump(mode="json"), "channels": [16, 32, 64, 96]})
    assert [c.key for c in trace_genotype(wider, (64, 64))] != [c.key for c in plain]
