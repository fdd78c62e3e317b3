"""Cell nets on ONNX Runtime before and after issue 19's rewrites -> ``results/cellnet_speed.json``.

Issue 19 found the cell net of the NAS-ASDet and RENAS families at a tenth of the dense nets'
GFLOP/s. ONNX Runtime's profiler put 85 % of ``nas-asdet-darts-v2``'s time in the fusion head's
Resize, Concat, ReduceMean and Mul on a map of every level's channels at half the input size (130
MB per image at 256 x 256); :class:`zoo.heads.AdaptiveFusionHead` now gates and classifies each
level at its own resolution and resizes only the logits (the same logits); ``FactorizedReduce``
slices the odd grid before its conv, and ``SpatialAttention`` runs its 7x7 gate as a grouped conv.
This script times, in one run, each net with the head's literal order of eqs. 5-10 and the ops'
literal forms ("before", re-created here) and with the current ones ("after"), on the raw ONNX
graph, 2 threads, batch 1, 256 x 256, and gives GFLOP/s (the MACs of the literal order, so both
columns do the same nominal work) beside the dense nets' and a fp32 matmul timed in the same run.
It also profiles each "after" graph with ONNX Runtime's profiler (time share by op type).

    python benchmarks/cellnet_speed.py            # about 5 minutes on quiet cores
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F

from nasseg import zoo
from nasseg.serving.bench import matmul_gflops
from nasseg.serving.export import export
from nasseg.serving.latency_table import time_graph
from nasseg.serving.timing import cpu_model
from nasseg.zoo.heads import AdaptiveFusionHead, upsample_to
from nasseg.zoo.io import atomic_write_text
from nasseg.zoo.ops import FactorizedReduce, SpatialAttention
from nasseg.zoo.versions import library_versions

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "cellnet_speed.json"
CELL_NETS = ("nas-asdet-darts-v2", "asdet-synth-defects", "renas-synth-defects")
DENSE_NETS = ("unet-small", "smp-unet-resnet18")
SIZE = (256, 256)


def literal_forward(self: AdaptiveFusionHead, levels: Any, size: Any) -> torch.Tensor:
    """Eqs. 5-10 in the paper's order: resize every level to Fea_1, concatenate, gate, classify."""
    level1 = levels[0].shape[-2:]
    fused = torch.cat([upsample_to(level, level1) for level in levels], dim=1)
    return upsample_to(self.classifier(self.gate(fused)), size)


def literal_factorized_reduce(self: FactorizedReduce, x: torch.Tensor) -> torch.Tensor:
    """DARTS' ``conv_2(pad(x)[:, :, 1:, 1:])``: the full map padded and sliced before the conv."""
    x = self.relu(x)
    shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
    return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def literal_spatial_gate(self: SpatialAttention, pooled: torch.Tensor) -> torch.Tensor:
    """CBAM's single 2-to-1 convolution of the mean and max maps."""
    return self.conv(pooled)


LITERAL = ((AdaptiveFusionHead, "forward", literal_forward), (FactorizedReduce, "forward", literal_factorized_reduce),
           (SpatialAttention, "gate_logits", literal_spatial_gate))  # fmt: skip


@contextlib.contextmanager
def literal_head() -> Iterator[None]:
    """The paper forms of the head and of the ops this issue rewrote (same numbers, slower graphs)."""
    originals = [(cls, attr, getattr(cls, attr)) for cls, attr, _ in LITERAL]
    for cls, attr, literal in LITERAL:
        setattr(cls, attr, literal)
    try:
        yield
    finally:
        for cls, attr, original in originals:
            setattr(cls, attr, original)


def op_shares(graph: bytes, shape: tuple[int, ...], threads: int, runs: int = 10) -> dict[str, float]:
    """Share of kernel time by ONNX op type (ONNX Runtime's profiler)."""
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: np.random.rand(*shape).astype(np.float32)}
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    totals: collections.Counter[str] = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"]
    whole = sum(totals.values()) or 1
    return {op: round(t / whole, 4) for op, t in totals.most_common(8)}


def timed(name: str, threads: int, literal: bool) -> dict[str, Any]:
    genotype = zoo.resolve_genotype(name)
    shape = (1, genotype.task.in_channels, *SIZE)
    with literal_head() if literal else contextlib.nullcontext():
        model = zoo.build_model(genotype).eval()
        macs = zoo.profile(model, shape).macs
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "net.onnx"
            export(model, path, graph="raw")
            graph = path.read_bytes()
    ms = time_graph(graph, [shape], threads, repeats=30)
    return {"p50_ms": ms, "macs": macs, "graph": graph, "shape": shape}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    matmul = matmul_gflops(args.threads)
    rows: dict[str, Any] = {}
    for name in CELL_NETS:
        before, after = timed(name, args.threads, True), timed(name, args.threads, False)
        nominal = before["macs"]
        rows[name] = {"kind": "cell", "macs_literal_head": nominal, "macs_now": after["macs"],
                      "before_p50_ms": before["p50_ms"], "after_p50_ms": after["p50_ms"],
                      "speed_up": round(before["p50_ms"] / after["p50_ms"], 2),
                      "before_gflops_per_s": round(2 * nominal / before["p50_ms"] / 1e6, 2),
                      "after_gflops_per_s": round(2 * nominal / after["p50_ms"] / 1e6, 2),
                      "after_gflops_per_s_own_macs": round(2 * after["macs"] / after["p50_ms"] / 1e6, 2),
                      "after_op_shares": op_shares(after["graph"], after["shape"], args.threads)}  # fmt: skip
        print(name, {k: v for k, v in rows[name].items() if k != "after_op_shares"})
    for name in DENSE_NETS:
        now = timed(name, args.threads, False)
        rows[name] = {"kind": "dense", "macs_now": now["macs"], "after_p50_ms": now["p50_ms"],
                      "after_gflops_per_s": round(2 * now["macs"] / now["p50_ms"] / 1e6, 2)}  # fmt: skip
        print(name, rows[name])
    dense = max(r["after_gflops_per_s"] for r in rows.values() if r["kind"] == "dense")
    for row in rows.values():
        row["fraction_of_best_dense"] = round(row["after_gflops_per_s"] / dense, 3)
    report = {"benchmark": "cellnet_speed", "size": list(SIZE), "threads": args.threads, "graph": "raw",
              "machine": cpu_model(), "matmul_gflops_per_s": matmul, "best_dense_gflops_per_s": dense,
              "aim": "cell nets at >= 1/4 of the dense nets' GFLOP/s", "nets": rows,
              "library_versions": library_versions()}  # fmt: skip
    atomic_write_text(Path(args.out), json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
