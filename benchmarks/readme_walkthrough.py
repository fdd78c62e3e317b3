"""The README, tried as a new user would: every example run top to bottom -> ``readme_walkthrough.json``.

Reads the ```` ```bash ```` and ```` ```python ```` blocks of ``README.md`` in order and runs each
command in a fresh folder with a fresh ``NASSEG_HOME``, as written. Lines that are a synopsis rather
than a command (``[--option]``, ``...``, ``a | b``, placeholders such as ``NAME`` or ``DIR``, remote
hosts) are listed as ``synopsis`` and not run; the install and test commands of "Set up" are left to
CI, and ``nasseg demo`` after them is run. ``nasseg serve ...`` starts the server in the background
and waits for ``/readyz``; the commands after it (curl, BentoML's client) talk to it until the next
``serve`` or the end. Every command's exit status, wall time and last error line are recorded.

Usage::

    python benchmarks/readme_walkthrough.py                  # about half an hour on a 2-core box
    python benchmarks/readme_walkthrough.py --blocks 3 11     # only some blocks (numbered from 1)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "readme_walkthrough.json"
BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```", re.S | re.M)
COMMENT = re.compile(r"\s+#\s.*$")
PLACEHOLDERS = re.compile(r"\b(NAME|DIR|STRATEGY|GENOTYPE|FILE|HxW|KEY|CERT|SRC)\b")
INSTALL = re.compile(r"^python3? -m pip install [^&]*(&&\s*)?")


@dataclass
class Command:
    """One line of a README block: what it says, and what running it gave."""

    block: int
    line: int
    language: str
    text: str
    kind: str = "run"  # run | synopsis | serve | setup
    rc: int | None = None
    seconds: float | None = None
    error: str = ""


def is_synopsis(text: str) -> bool:
    """True for a line that documents options rather than a command one can paste."""
    return ("[" in text and "--" in text) or "..." in text or " | " in text or "https://" in text or bool(
        PLACEHOLDERS.search(text))


def bash_commands(block: int, first_line: int, body: str) -> list[Command]:
    """The commands of one bash block: continuations joined, comments dropped, kinds set."""
    commands: list[Command] = []
    pending, start = "", first_line
    for offset, raw in enumerate(body.splitlines()):
        if not pending:
            start = first_line + offset
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += COMMENT.sub("", line[:-1]) + " "
            continue
        text = (pending + COMMENT.sub("", line)).strip()
        pending = ""
        if not text or text.startswith("#"):
            continue
        if INSTALL.match(text):
            rest = INSTALL.sub("", text).strip()
            commands.append(Command(block, start, "bash", INSTALL.match(text).group(0).strip(" &"), "setup"))
            if not rest:
                continue
            text = rest
        if text.startswith("python3 -m pytest"):
            commands.append(Command(block, start, "bash", text, "setup"))
            continue
        kind = "synopsis" if is_synopsis(text) else "serve" if text.startswith("nasseg serve") else "run"
        commands.append(Command(block, start, "bash", text, kind))
    return commands


def readme_commands(readme: Path) -> list[Command]:
    """Every command of the README, in order; a python block is one command."""
    text = readme.read_text()
    commands: list[Command] = []
    for number, match in enumerate(BLOCK.finditer(text), start=1):
        first_line = text.count("\n", 0, match.start(2)) + 1
        if match.group(1) == "python":
            commands.append(Command(number, first_line, "python", match.group(2)))
        else:
            commands.extend(bash_commands(number, first_line, match.group(2)))
    return commands


def _port(text: str) -> int:
    words = shlex.split(text)
    return int(words[words.index("--port") + 1]) if "--port" in words else 3000


class Server:
    """The one ``nasseg serve`` the walk-through has running, if any."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None

    def start(self, text: str, cwd: Path, env: dict[str, str], log: Path, timeout: float) -> None:
        self.stop()
        self.process = subprocess.Popen(["bash", "-c", f"exec {text}"], cwd=cwd, env=env, stdout=log.open("ab"),
                                        stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        deadline, url = time.monotonic() + timeout, f"http://127.0.0.1:{_port(text)}/readyz"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with status {self.process.returncode} (see {log})")
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(1)
        raise RuntimeError(f"{url} not ready after {timeout:.0f} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None


def run_one(command: Command, cwd: Path, env: dict[str, str], server: Server, log: Path, timeout: float) -> None:
    """Run ``command`` in ``cwd`` and record its status, time and last error line."""
    start = time.perf_counter()
    with log.open("a") as stream:
        stream.write(f"\n$ {command.text}\n")
    try:
        if command.kind == "serve":
            server.start(command.text, cwd, env, log, timeout)
            command.rc = 0
        else:
            argv = ["bash", "-c", command.text] if command.language == "bash" else [sys.executable, "-c", command.text]
            done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
            with log.open("a") as stream:
                stream.write(done.stdout + done.stderr)
            command.rc = done.returncode
            if done.returncode:
                lines = [x for x in (done.stderr or done.stdout).splitlines() if x.strip()]
                command.error = lines[-1][:300] if lines else ""
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        command.rc, command.error = 1, str(error).splitlines()[0][:300]
    command.seconds = round(time.perf_counter() - start, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", default=str(ROOT / "README.md"))
    parser.add_argument("--blocks", nargs="*", type=int, help="only these blocks (numbered from 1)")
    parser.add_argument("--work", default=None, help="the folder to run in (default: a fresh temporary one)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds one command may take")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--list", action="store_true", help="list the commands and their kinds, run nothing")
    args = parser.parse_args(argv)

    commands = [c for c in readme_commands(Path(args.readme)) if not args.blocks or c.block in args.blocks]
    if args.list:
        for c in commands:
            print(f"{c.block:>2} {c.line:>4} {c.kind:<8} {c.text.splitlines()[0][:100]}")
        return 0
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="nasseg-walk-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "NASSEG_HOME": str(work / "home"), "COLUMNS": "100"}
    log, server = work / "walkthrough.log", Server()
    print(f"walking {args.readme} in {work} (log: {log})", flush=True)
    try:
        for command in commands:
            if command.kind in ("run", "serve"):
                run_one(command, work, env, server, log, args.timeout)
            status = {None: "-", 0: "ok"}.get(command.rc, f"rc {command.rc}")
            seconds = f"{command.seconds:7.1f} s" if command.seconds is not None else " " * 9
            print(f"[{command.block:>2}:{command.line:>4}] {status:<6} {seconds} {command.kind:<8} "
                  f"{command.text.splitlines()[0][:90]}{'  <- ' + command.error if command.error else ''}", flush=True)
    finally:
        server.stop()
    rows = [asdict(c) for c in commands]
    out = Path(args.out)
    if args.blocks and out.is_file():  # a partial walk replaces its blocks' rows in the last report
        kept = [r for r in json.loads(out.read_text())["commands"] if r["block"] not in args.blocks]
        rows = sorted(kept + rows, key=lambda r: (r["block"], r["line"]))
    ran = [r for r in rows if r["rc"] is not None]
    report = {"benchmark": "readme_walkthrough", "readme": Path(args.readme).name, "date": time.strftime("%Y-%m-%d"),
              "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "ran": len(ran), "failed": sum(1 for r in ran if r["rc"]),
              "minutes": round(sum(r["seconds"] for r in ran) / 60, 1), "commands": rows}  # fmt: skip
    sys.path.insert(0, str(ROOT))
    from nasseg.zoo.io import atomic_write_bytes

    atomic_write_bytes(out, (json.dumps(report, indent=1) + "\n").encode())
    print(f"{report['ran']} commands ran in {report['minutes']} min, {report['failed']} failed", flush=True)
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
