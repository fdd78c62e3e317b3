"""Weight files: safetensors that record the architecture hash they were trained for.

A weight file named in a genotype's ``weights.file`` is looked up next to the genotype file,
then in ``$NASSEG_HOME/weights`` and ``$NASSEG_HOME`` (default ``~/.cache/nasseg``). A file
whose recorded ``arch_hash`` differs from the genotype's is refused: loading it would silently
give a broken net.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save
from torch import nn

from nasseg.zoo._version import __version__
from nasseg.zoo.errors import WeightsError
from nasseg.zoo.genotype import Genotype, Weights
from nasseg.zoo.io import atomic_output, sha256_file
from nasseg.zoo.weight_files import find_weights, nasseg_home  # noqa: F401  (re-exported: zoo.weights.nasseg_home)

ARCH_HASH_KEY = "nasseg.arch_hash"
GENOTYPE_KEY = "nasseg.genotype"


def _stored_tensors(model: nn.Module, dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """The state dict as separate contiguous tensors, floating ones cast to ``dtype`` if given."""
    out = {}
    for key, tensor in model.state_dict().items():
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        out[key] = tensor.detach().cpu().contiguous().clone()
    return out


def canonical_safetensors(blob: bytes) -> bytes:
    """``blob`` with its JSON header's keys sorted: the same tensors and metadata give the same bytes.

    safetensors writes its metadata map in a per-process hash order, so two runs that train the
    same weights wrote files (and ``weights.sha256``) that differed; the data section, whose
    offsets the header names, is kept as it is.
    """
    length = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + length])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # the data section starts 8-byte aligned, as safetensors pads it
    return len(text).to_bytes(8, "little") + text + blob[8 + length :]


def save_weights(model: nn.Module, genotype: Genotype, path: str | Path, dtype: torch.dtype | None = None) -> Weights:
    """Write ``model``'s weights atomically with the genotype and its hash in the metadata.

    ``dtype=torch.float16`` stores floating tensors at half precision (half the file; they are
    cast back to the model's dtype on load). Returns the ``weights`` entry to put into the
    genotype (file name, sha256, arch hash). The file is readable by everyone (mode 0644).
    """
    path = Path(path)
    metadata = {
        ARCH_HASH_KEY: genotype.arch_hash,
        GENOTYPE_KEY: genotype.to_json(),
        "nasseg.version": __version__,
    }
    with atomic_output(path, mode=0o644) as tmp:
        tmp.write_bytes(canonical_safetensors(save(_stored_tensors(model, dtype), metadata=metadata)))
    return Weights(file=path.name, sha256=sha256_file(path), arch_hash=genotype.arch_hash)


def read_arch_hash(path: str | Path) -> str | None:
    """The architecture hash recorded in a weight file, or None if it records none."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get(ARCH_HASH_KEY)
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from None


def load_weights(model: nn.Module, genotype: Genotype, path: str | Path | None = None) -> Path:
    """Load the genotype's weights into ``model`` after checking checksum and architecture hash."""
    path = Path(path) if path is not None else find_weights(genotype)
    if path is None or not path.is_file():
        raise WeightsError(f"model {genotype.name!r}: weight file {path} not found")
    if genotype.weights is not None and genotype.weights.sha256 and sha256_file(path) != genotype.weights.sha256:
        raise WeightsError(f"{path}: sha256 differs from the genotype's weights.sha256 (file changed or corrupt)")
    recorded = read_arch_hash(path)
    if recorded != genotype.arch_hash:
        raise WeightsError(
            f"{path}: weights are for architecture {recorded or 'unknown'}, but model {genotype.name!r} "
            f"is architecture {genotype.arch_hash}; refusing to load weights of another architecture"
        )
    try:
        stored = load_file(str(path))
        own = model.state_dict()
        for key, tensor in stored.items():  # half-precision files load into a float32 model
            if key in own and tensor.is_floating_point() and own[key].is_floating_point():
                stored[key] = tensor.to(own[key].dtype)
        model.load_state_dict(stored, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise WeightsError(f"{path}: tensors do not fit model {genotype.name!r}: {first}") from None
    return path
