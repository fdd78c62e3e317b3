"""``nasseg demo``: the product end to end on a shipped searched model, in about a minute.

Loads the model by name with its shipped weights, inspects freshly generated synth-defects frames
(overlays and a verdict table against the frames' truth), exports the ONNX deploy graph and checks
it against PyTorch, then starts a real ``nasseg serve`` on 127.0.0.1, sends a few frames to
``/inspect`` and stops it. ``--train`` runs the older demo instead: train a small net for minutes.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from nasseg import zoo
from nasseg.cli import app, console, err_console
from nasseg.zoo.data.images import write_png
from nasseg.zoo.data.synthetic import defect_sample
from nasseg.zoo.errors import NassegError

DEMO_MODEL = "iac-unet-small-synth-defects"
MIN_DEFECT_AREA = 20
SERVER_START_S = 120.0


def make_frames(out: Path, count: int, size: int, seed: int, difficulty: str) -> list[tuple[Path, np.ndarray]]:
    """Fresh synth-defects frames (a seed no zoo training used) and their truth masks."""
    frames = []
    for i in range(count):
        image, _, truth = defect_sample(np.random.default_rng([seed, 10_000 + i]), size, difficulty)
        path = out / f"frame-{i:02d}.png"
        write_png(path, image)
        frames.append((path, truth))
    return frames


def inspect_frames(model: Any, frames: list[tuple[Path, np.ndarray]], overlays: Path) -> list[dict[str, Any]]:
    """Mask, overlay and verdict of every frame (NG: at least ``MIN_DEFECT_AREA`` defect pixels)."""
    from nasseg.zoo.inference import predict_file
    from nasseg.zoo.overlays import compare_picture, contact_sheet

    rows, pictures = [], []
    for path, truth in frames:
        image, mask, _ = predict_file(model, path)
        pictures.append(compare_picture(image, mask, truth, label=path.stem))
        write_png(overlays / f"{path.stem}_overlay.png", pictures[-1])
        predicted, actual = int((mask > 0).sum()), int(truth.sum())
        union = int(((mask > 0) | (truth > 0)).sum())
        rows.append({"frame": path.name, "verdict": "NG" if predicted >= MIN_DEFECT_AREA else "OK",
                     "truth": "NG" if actual >= MIN_DEFECT_AREA else "OK", "defect_px": predicted, "truth_px": actual,
                     "iou": int(((mask > 0) & (truth > 0)).sum()) / union if union else 1.0})  # fmt: skip
    if pictures:
        write_png(overlays / "sheet.png", contact_sheet(pictures))
    return rows


def verdict_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for column in ("frame", "verdict", "truth", "defect px", "truth px", "IoU"):
        table.add_column(column, justify="left" if column == "frame" else "right")
    for r in rows:
        mark = "" if r["verdict"] == r["truth"] else " (!)"
        table.add_row(r["frame"], r["verdict"] + mark, r["truth"], str(r["defect_px"]), str(r["truth_px"]),
                      f"{r['iou']:.2f}")  # fmt: skip
    return table


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_and_inspect(onnx_file: Path, frames: list[Path], log: Path) -> list[dict[str, Any]]:
    """Start ``nasseg serve ONNX`` on a free loopback port, POST each frame to /inspect, stop it."""
    import httpx

    port = _free_port()
    command = [sys.executable, "-c", "from nasseg.cli import main; main()", "serve", str(onnx_file), "--host",
               "127.0.0.1", "--port", str(port), "--threads", "1", "--device", "cpu",
               "--min-defect-area", str(MIN_DEFECT_AREA)]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if process.poll() is not None:
                raise NassegError(f"nasseg serve exited with {process.returncode} before it was ready; see {log}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise NassegError(f"nasseg serve was not ready within {SERVER_START_S:.0f} s; see {log}")
            time.sleep(0.25)
        answers = []
        with httpx.Client(base_url=url, timeout=60) as client:
            for path in frames:
                response = client.post("/inspect", files={"image": (path.name, io.BytesIO(path.read_bytes()),
                                                                     "image/png")})  # fmt: skip
                if response.status_code != 200:
                    raise NassegError(f"/inspect answered {response.status_code} for {path.name}: {response.text}")
                answers.append({"frame": path.name, **response.json()})
        return answers
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for frames, overlays, the ONNX file and the server log.")] = Path(
        "nasseg-demo"
    ),
    model: Annotated[str, typer.Option(help="Shipped model to inspect with (--train: zoo model to train).")] = "",
    frames: Annotated[int, typer.Option(min=1, max=100, help="Fresh frames to inspect.")] = 12,
    requests: Annotated[int, typer.Option(min=0, help="Frames sent to the server's /inspect (0: no server).")] = 3,
    seed: int = 7,
    train: Annotated[bool, typer.Option("--train", help="The older demo: train a small net for minutes.")] = False,
    n: Annotated[int, typer.Option(min=10, help="--train: synth-defects samples to make.")] = 160,
    size: Annotated[int, typer.Option(min=32, help="--train: image size.")] = 128,
    epochs: Annotated[int, typer.Option(min=1, help="--train: epochs.")] = 35,
) -> None:
    """The main job end to end: a shipped searched model inspects fresh frames, exports, serves."""
    if train:
        from nasseg.cli.training import train_demo  # torch: imported once the demo has said what it does

        train_demo(out, model or "iac-base-unet-small", n, size, epochs, seed)
        return
    from nasseg.serving.check import check
    from nasseg.serving.export import export

    start = time.perf_counter()
    name = model or DEMO_MODEL
    console.print(f"nasseg demo: writes frames, overlays, the ONNX file and the server log to {out.resolve()}",
                  highlight=False, soft_wrap=True)  # fmt: skip
    with err_console.status(f"loading {name} (shipped weights) and inspecting {frames} fresh frames ...",
                            spinner="dots"):  # fmt: skip
        net = zoo.create_model(name, pretrained=True).eval()
        genotype = net.genotype
        side = genotype.task.input_size[0]
        frame_dir, overlays = out / "frames", out / "overlays"
        made = make_frames(frame_dir, frames, side, seed, "medium")
        rows = inspect_frames(net, made, overlays)
    agree = sum(r["verdict"] == r["truth"] for r in rows)
    metrics = genotype.provenance.metrics
    console.print(verdict_table(rows, f"{name} on {len(rows)} fresh synth-defects frames ({side} px)"))
    recorded = f" (recorded test IoU {metrics['test_iou']:.3f})" if "test_iou" in metrics else ""
    console.print(f"verdicts agree with the truth on {agree}/{len(rows)} frames; mean frame IoU "
                  f"{np.mean([r['iou'] for r in rows]):.3f}{recorded}", highlight=False)  # fmt: skip
    onnx_file = out / f"{name}.onnx"
    with err_console.status(f"exporting the deploy graph to {onnx_file} ...", spinner="dots"):
        export(net, onnx_file)
        report = check(onnx_file, net)
    console.print(report.summary(), highlight=False)
    report.raise_for_failure()
    answers = []
    if requests:
        with err_console.status(f"serving {onnx_file.name} on 127.0.0.1 and sending {requests} frames ...",
                                spinner="dots"):  # fmt: skip
            answers = serve_and_inspect(onnx_file, [p for p, _ in made[:requests]], out / "server.log")
        for answer, row in zip(answers, rows, strict=False):
            console.print(f"/inspect {answer['frame']}: {answer['verdict']} ({answer['defect_count']} defects; "
                          f"local {row['verdict']})", highlight=False)  # fmt: skip
    console.print(f"frames:    {frame_dir}\noverlays:  {overlays}\nonnx:      {onnx_file}\n"
                  f"took {time.perf_counter() - start:.0f} s. Next: nasseg serve {name}", highlight=False)  # fmt: skip
