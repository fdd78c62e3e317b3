"""Checkpoints that carry data, never code: every state nasseg saves with ``torch.save`` is read back
with ``torch.load(..., weights_only=True)``.

A checkpoint is ``{"format": FORMAT, "kind": KIND, "state": STATE}`` where STATE holds only what
PyTorch's weights-only unpickler accepts: tensors, numbers, strings, bytes, ``None`` and lists,
tuples and dicts of them. Anything else (a NumPy random state, a pydantic model) is turned into
those first (:func:`numpy_rng_state`). A file that is not such a checkpoint, or that asks the
unpickler for anything else (a crafted pickle calling ``os.system``), is refused with one line
before anything in it runs: :class:`CheckpointError`, ``"PATH is not a nasseg checkpoint (...)"``.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasseg.zoo.errors import NassegError
from nasseg.zoo.io import atomic_write_bytes

FORMAT = "nasseg.checkpoint/1"


class CheckpointError(NassegError):
    """A checkpoint file that is not one nasseg wrote (foreign, crafted or damaged)."""


def state_to_bytes(state: Any) -> bytes:
    """``state`` (tensors, numbers, strings, lists, dicts) serialised by ``torch.save``."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def tensors_to_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    """A state dict's tensors, detached and on the CPU, as bytes (:func:`state_from_bytes` reads them)."""
    return state_to_bytes({k: v.detach().cpu() for k, v in tensors.items()})


def state_from_bytes(data: bytes | Path, where: str | Path, map_location: Any = "cpu") -> Any:
    """Read :func:`state_to_bytes` output (or a file) with the weights-only unpickler; ``where``
    names the source in the error."""
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        return torch.load(source, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, OSError, KeyError,
            AttributeError, IndexError) as exc:  # fmt: skip
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Unsupported global" in str(exc) or "Weights only load failed" in str(exc):
            reason = _unsupported_global(str(exc)) or "it asks to run code"
        raise CheckpointError(f"{where} is not a nasseg checkpoint ({reason[:200]}); nothing in it was run") from None


def _unsupported_global(message: str) -> str | None:
    for line in message.splitlines():
        if "Unsupported global" in line:
            return "it refers to " + line.split("GLOBAL", 1)[-1].strip().split(" ", 1)[0] + ", which would run code"
    return None


def save_checkpoint(path: str | Path, kind: str, state: dict[str, Any]) -> None:
    """Write ``state`` as a ``kind`` checkpoint atomically (a kill leaves the old or the new file)."""
    atomic_write_bytes(Path(path), state_to_bytes({"format": FORMAT, "kind": kind, "state": state}))


def load_checkpoint(path: str | Path, kind: str, required: Iterable[str] = (), map_location: Any = "cpu") -> dict:
    """The state of a ``kind`` checkpoint written by :func:`save_checkpoint`.

    Files from before the format marker load when they pass the weights-only unpickler and hold
    every key in ``required``. Anything else is a :class:`CheckpointError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is not a nasseg checkpoint (not a regular file)")
    loaded = state_from_bytes(path, path, map_location)
    if isinstance(loaded, dict) and loaded.get("format") == FORMAT:
        if loaded.get("kind") != kind or not isinstance(loaded.get("state"), dict):
            raise CheckpointError(f"{path} is not a nasseg {kind} checkpoint (it is a {loaded.get('kind')!r} one)")
        state = loaded["state"]
    elif isinstance(loaded, dict) and "format" not in loaded:
        state = loaded  # written before the format marker (still read weights-only)
    else:
        raise CheckpointError(f"{path} is not a nasseg checkpoint (format {_describe(loaded)})")
    missing = [key for key in required if key not in state]
    if missing:
        raise CheckpointError(f"{path} is not a nasseg {kind} checkpoint (no {', '.join(map(repr, missing))})")
    return state


def _describe(loaded: Any) -> str:
    if isinstance(loaded, dict):
        return repr(loaded.get("format"))[:60]
    return type(loaded).__name__


def numpy_rng_state() -> dict[str, Any]:
    """NumPy's global random state as plain data (its key array as a tensor)."""
    name, key, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "key": torch.from_numpy(np.asarray(key, dtype=np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}  # fmt: skip


def set_numpy_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`numpy_rng_state`."""
    key = np.asarray(state["key"].numpy(), dtype=np.uint32)
    np.random.set_state((state["name"], key, state["pos"], state["has_gauss"], state["cached_gaussian"]))
