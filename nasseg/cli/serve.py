"""``nasseg serve NAME_OR_ONNX``: the BentoML service (``serving.service``) on one model.

A zoo name or genotype file is exported first (cached in ``$NASSEG_HOME/onnx``); then this process
becomes ``bentoml serve serving.service:Segmenter`` (through :mod:`serving.launch`, which keeps BentoML's
process manager off TCP: the HTTP port is the only port) with the settings in ``NASSEG_SERVE_*``
variables, so that Ctrl-C and SIGTERM reach BentoML directly (requests in flight are finished).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

import nasseg
from nasseg.cli import app, err_console
from nasseg.serving.settings import ServeSettings, load_settings, to_environ

SERVICE = "nasseg.serving.service:Segmenter"


def serve_command(settings: ServeSettings, host: str, port: int, graceful_s: int,
                  ssl: tuple[Path, Path] | None = None) -> tuple[list[str], dict[str, str]]:  # fmt: skip
    """The ``bentoml serve`` command line and its environment for ``settings`` (``ssl``: certificate
    and key files, for BentoML's own TLS)."""
    command = [sys.executable, "-m", "nasseg.serving.launch", "serve", SERVICE, "--host", host, "--port", str(port),
               "--working-dir", str(Path(nasseg.__file__).resolve().parent.parent),
               "--timeout-graceful-shutdown", str(graceful_s)]  # fmt: skip
    if ssl is not None:
        command += ["--ssl-certfile", str(ssl[0]), "--ssl-keyfile", str(ssl[1])]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NASSEG_SERVE_")}
    environ |= to_environ(settings) | {"BENTOML_DO_NOT_TRACK": "True"}
    environ.setdefault("MALLOC_ARENA_MAX", "2")  # glibc: few heaps, so a worker's memory falls back after big frames
    return command, environ


@app.command("serve")
def serve(
    model: Annotated[str, typer.Argument(help="Registered model name, genotype .json or deploy-graph .onnx file.")],
    port: Annotated[int, typer.Option(min=1, max=65535, help="HTTP port.")] = 3000,
    host: Annotated[
        str, typer.Option(help="Address to listen on: this machine only, unless told (0.0.0.0: every interface).")
    ] = "127.0.0.1",
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (one session each).")] = 1,
    threads: Annotated[
        int | None, typer.Option(min=1, help="ONNX Runtime threads per worker (default: cores / workers).")
    ] = None,
    streams: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Sessions run side by side per worker once requests queue, THREADS/STREAMS threads each; a lone "
            "request runs on one session with all THREADS (default: one per thread on a CPU, 1 on a GPU).",
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu or cuda.")] = "auto",
    runtime: Annotated[
        str, typer.Option(help="onnx (ONNX Runtime) or openvino (CPU; an IR .xml or the ONNX export).")
    ] = "onnx",
    precision: Annotated[
        str | None, typer.Option(help="OpenVINO: f32 (default), bf16 (CPUs with bf16) or int8 (an int8 IR).")
    ] = None,
    max_body_mb: Annotated[float, typer.Option(min=0.001, help="Largest request body, MiB (413 above).")] = 20.0,
    max_pixels: Annotated[int, typer.Option(min=1, help="Largest image in pixels (413 above).")] = 25_000_000,
    min_defect_area: Annotated[int, typer.Option(min=1, help="Pixels a region needs to make a frame NG.")] = 20,
    max_concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight (429 above).")] = 32,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds before a request gets 504.")] = 60.0,
    max_batch_size: Annotated[int, typer.Option(min=2, help="Adaptive batching: images per batch.")] = 8,
    max_latency_ms: Annotated[int, typer.Option(min=1, help="Adaptive batching: latency budget, ms.")] = 2000,
    graceful_timeout: Annotated[int, typer.Option(min=1, help="Seconds SIGTERM waits for requests.")] = 20,
    max_request_pixels: Annotated[
        int, typer.Option(min=1, help="Decoded pixels in one request, all images together (413 above).")
    ] = 25_000_000,
    tile: Annotated[int, typer.Option(min=32, max=8192, help="Frames above TILE x TILE run in tiles.")] = 1024,
    body_timeout: Annotated[float, typer.Option(min=0.1, help="Seconds a request body may take (408).")] = 10.0,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="NASSEG_SERVE_API_KEY",
            show_envvar=True,
            help="Require this key (Authorization: Bearer KEY or X-API-Key); probes stay open.",
        ),
    ] = None,
    ssl_certfile: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="TLS certificate.")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="TLS private key.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Export and print the command; do not serve.")] = False,
    allow_random_weights: Annotated[
        bool, typer.Option("--allow-random-weights", help="Serve a net without trained weights (sizing, speed).")
    ] = False,
) -> None:
    """Serve a model over HTTP (BentoML): /segment, /inspect, /inspect_batch, /model, /readyz, /metrics."""
    from nasseg.serving.export import read_metadata
    from nasseg.serving.resolve import is_onnx_spec, resolve_onnx
    from nasseg.serving.runtime import RuntimeSetupError, default_threads

    if is_onnx_spec(model):
        onnx_file = resolve_onnx(model, allow_random=allow_random_weights)
    else:
        with err_console.status(f"exporting {model} to ONNX (once; cached) ...", spinner="dots"):
            onnx_file = resolve_onnx(model, allow_random=allow_random_weights)
    meta = read_metadata(onnx_file)
    if runtime == "openvino":
        from nasseg.serving.openvino_runtime import available, check_precision

        if not available():
            raise RuntimeSetupError("--runtime openvino: OpenVINO is not installed (pip install 'nasseg[openvino]')")
        if precision is not None:
            check_precision(precision)
    elif precision is not None:
        raise RuntimeSetupError(f"--precision {precision} is for --runtime openvino")
    if meta.graph != "deploy":
        raise RuntimeSetupError(f"{onnx_file}: a {meta.graph!r} graph; serving needs a 'deploy' export")
    options = {"model": str(onnx_file), "workers": workers, "streams": streams, "device": device, "runtime": runtime,
               "precision": precision,
               "threads": threads or max(1, default_threads() // workers), "max_body_mb": max_body_mb,
               "max_pixels": max_pixels, "min_defect_area": min_defect_area, "max_concurrency": max_concurrency,
               "timeout_s": timeout, "max_batch_size": max_batch_size, "max_latency_ms": max_latency_ms,
               "allow_random_weights": allow_random_weights, "max_request_pixels": max_request_pixels,
               "tile": tile, "body_timeout_s": body_timeout, "api_key": api_key}  # fmt: skip
    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise typer.BadParameter("TLS needs both --ssl-certfile and --ssl-keyfile")
    settings = load_settings(options, environ={})
    ssl = (ssl_certfile, ssl_keyfile) if ssl_certfile is not None and ssl_keyfile is not None else None
    command, environ = serve_command(settings, host, port, graceful_timeout, ssl)
    local = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    scheme = "https" if ssl else "http"
    key_hint = ' -H "Authorization: Bearer $NASSEG_SERVE_API_KEY"' if api_key else ""
    err_console.print(f"serving {meta.genotype.name} (arch {meta.arch_hash}) from {onnx_file}\n"
                      f"try: curl{key_hint} -F image=@frame.png {scheme}://{local}:{port}/inspect",
                      highlight=False)  # fmt: skip
    if dry_run:
        shown = {k: ("***" if k.endswith("API_KEY") else v) for k, v in environ.items()}
        env_text = " ".join(f"{k}={v}" for k, v in shown.items() if k.startswith(("NASSEG_SERVE_", "BENTOML_")))
        typer.echo(f"{env_text} {' '.join(command)}")
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, environ)
