"""A real ``nasseg serve`` on a free loopback port, for the service tests (started, probed, stopped)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

START_DEADLINE_S = 120


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (as a supervisor would), then SIGKILL of the process group if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(spec: str | Path, home: Path, *options: str) -> Server:
    """``nasseg serve SPEC`` on a free loopback port; returns once /readyz answers 200."""
    port = free_port()
    log = home / f"server-{port}.log"
    command = [sys.executable, "-c", "from nasseg.cli import main; main()", "serve", str(spec),
               "--host", "127.0.0.1", "--port", str(port), *options]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, "NASSEG_HOME": str(home)})  # fmt: skip
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"nasseg serve exited with {process.returncode}:\n{server.log_text()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    server.stop()
    pytest.fail(f"server not ready within {START_DEADLINE_S} s:\n{server.log_text()[-3000:]}")
