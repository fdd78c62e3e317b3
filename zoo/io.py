"""Small file helpers shared by the zoo, the searchers, the trainer and serving.

Every file nasseg writes under a final name goes through :func:`atomic_output`: the bytes go to a
unique temp name in the same folder (``.NAME.PID.RANDOM.tmp``), are fsynced, and the temp file is
renamed over the final name. A reader sees the old file or the new one, never half of one; a kill
leaves at most a temp file, which the next write of the same name removes (only temp files of that
name whose writing process is gone: a command deletes only what it made).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TEMP_SUFFIX = ".tmp"


def current_umask() -> int:
    """The process's umask (read without changing it for longer than the call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def stale_temps(path: Path) -> list[Path]:
    """Temp files of earlier writes of ``path`` whose writer died (``.NAME.PID.*.tmp``)."""
    prefix = f".{path.name}."
    stale = []
    for candidate in path.parent.glob(f".{glob_escape(path.name)}.*{TEMP_SUFFIX}"):
        middle = candidate.name[len(prefix) : -len(TEMP_SUFFIX)]
        pid_text = middle.split(".", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _pid_alive(int(pid_text)):
            stale.append(candidate)
    return stale


def glob_escape(text: str) -> str:
    """``text`` with glob's special characters escaped."""
    return "".join(f"[{ch}]" if ch in "*?[]" else ch for ch in text)


def remove_stale_temps(path: Path) -> None:
    """Remove what killed writes of ``path`` left (see :func:`stale_temps`)."""
    for stale in stale_temps(path):
        with contextlib.suppress(OSError):
            stale.unlink()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | Path, mode: int | None = None) -> Iterator[Path]:
    """A temp path next to ``path`` to write; on a clean exit it is fsynced and renamed to ``path``
    (mode ``mode``, default the umask's file mode); on an exception it is removed and ``path`` is
    left as it was. A symlink at ``path`` is replaced, never written through."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync_file(tmp)
        os.chmod(tmp, (0o666 & ~current_umask()) if mode is None else mode)  # mkstemp makes 0600 files
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` so that a reader never sees a half-written file."""
    with atomic_output(path, mode) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str, mode: int | None = None) -> None:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def atomic_copy(source: str | Path, path: str | Path, mode: int | None = None) -> None:
    """Copy the regular file ``source`` to ``path`` atomically (the copy never follows a symlink at ``path``)."""
    with atomic_output(path, mode) as tmp, open(source, "rb") as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


def save_figure(figure: Any, path: str | Path, **savefig: Any) -> Path:
    """A matplotlib figure written as PNG to ``path`` atomically (``savefig`` options passed on)."""
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", **savefig)
    return Path(path)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
