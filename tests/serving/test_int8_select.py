"""Which node groups go int8: grouping of a real graph's nodes, and the choice from measured times."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from nasseg.serving.int8_select import NodeGroup, node_groups, select_nodes


def conv(name: str, x: str, y: str, out_ch: int, in_ch: int, k: int, group: int = 1) -> tuple:
    weight = numpy_helper.from_array(np.zeros((out_ch, in_ch // group, k, k), np.float32), f"{name}.w")
    return helper.make_node("Conv", [x, f"{name}.w"], [y], name=name, group=group, pads=[k // 2] * 4), weight


def test_groups_split_convolutions_by_kind_and_width() -> None:
    parts = [conv("stem", "x", "a", 32, 3, 3), conv("dw", "a", "b", 32, 32, 3, group=32),
             conv("pw", "b", "c", 32, 32, 1), conv("head", "c", "d", 8, 32, 1)]  # fmt: skip
    nodes = [p[0] for p in parts] + [helper.make_node("Relu", ["d"], ["e"], name="relu"),
                                     helper.make_node("Sigmoid", ["e"], ["y"], name="sig")]  # fmt: skip
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])],
                              [p[1] for p in parts])  # fmt: skip
    groups = {g.name: g.nodes for g in node_groups(helper.make_model(graph), ["Conv", "Relu"])}
    assert groups == {"conv-dense-narrow": ("stem",), "conv-depthwise": ("dw",), "conv-pointwise": ("pw",),
                      "conv-pointwise-narrow": ("head",), "other-ops": ("relu",)}  # fmt: skip


def fake_run(times: dict[str, float], union_ms: float, written: list[list[str]]):
    def quantize_nodes(nodes: list[str], out: Path) -> None:
        written.append(nodes)
        out.write_text(",".join(nodes))

    def timer(paths: dict[str, Path], feed: np.ndarray, threads: int, repeats: int) -> dict[str, float]:
        return {name: union_ms if name == "union" else times[name] for name in paths}

    return quantize_nodes, timer


def test_only_groups_measured_faster_are_chosen(tmp_path: Path) -> None:
    groups = [NodeGroup("a", ("a1", "a2")), NodeGroup("b", ("b1",)), NodeGroup("c", ("c1",))]
    written: list[list[str]] = []
    quantize_nodes, timer = fake_run({"fp32": 10.0, "a": 8.0, "b": 9.5, "c": 12.0}, 7.0, written)
    feed = np.zeros((1, 8, 8, 3), np.uint8)
    chosen = select_nodes(tmp_path / "f.onnx", groups, quantize_nodes, feed, (8, 8), tmp_path, timer=timer)
    assert chosen.chosen == ["a", "b"] and chosen.nodes == ["a1", "a2", "b1"] and chosen.int8_ms == 7.0
    assert written[-1] == ["a1", "a2", "b1"] and [r["gains"] for r in chosen.groups] == [True, True, False]
    # the union slower than the best group alone: the best group wins
    quantize_nodes, timer = fake_run({"fp32": 10.0, "a": 8.0, "b": 9.5, "c": 12.0}, 9.0, [])
    chosen = select_nodes(tmp_path / "f.onnx", groups, quantize_nodes, feed, (8, 8), tmp_path, timer=timer)
    assert chosen.chosen == ["a"] and chosen.nodes == ["a1", "a2"]


def test_nothing_is_quantised_where_no_group_gains(tmp_path: Path) -> None:
    groups = [NodeGroup("a", ("a1",)), NodeGroup("b", ("b1",))]
    quantize_nodes, timer = fake_run({"fp32": 10.0, "a": 9.9, "b": 14.0}, 0.0, [])
    chosen = select_nodes(tmp_path / "f.onnx", groups, quantize_nodes, np.zeros((1, 8, 8, 3), np.uint8), (8, 8),
                          tmp_path, timer=timer)  # fmt: skip
    assert chosen.nodes == [] and chosen.chosen == [] and "kept float" in chosen.sentence()
    assert chosen.to_record()["quantized_nodes"] == 0 and len(chosen.to_record()["groups"]) == 2
