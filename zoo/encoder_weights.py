"""Local ImageNet weights for timm encoders: found on disk, never downloaded.

timm and smp users expect ``pretrained=True`` to give an ImageNet encoder; IAC's bases are
pretrained by definition. nasseg fetches nothing, so the weights come from a local file, found in
this order:

1. ``$NASSEG_HOME/encoders/<timm name>.safetensors`` (or ``.pth`` / ``.bin``), e.g. the file
   ``safetensors.torch.save_file(timm.create_model("resnet18", pretrained=True).state_dict(), ...)``
   wrote on a machine with network;
2. the local Hugging Face cache (``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or
   ``~/.cache/huggingface/hub``): ``models--timm--<name>[.<tag>]/snapshots/*/model.safetensors``,
   where ``timm.create_model(name, pretrained=True)`` leaves them.

The file is loaded by timm itself (``pretrained_cfg_overlay=dict(file=...)``), so timm's own
adaptation (``in_chans`` other than 3, the classifier dropped for ``features_only``) applies.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from nasseg.zoo.errors import WeightsError
from nasseg.zoo.weight_files import nasseg_home

SUFFIXES = (".safetensors", ".pth", ".bin")


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache folder this machine uses."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    return Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser() / "hub"


def encoder_weight_candidates(name: str) -> list[Path]:
    """Where weights of timm encoder ``name`` are looked for (existing or not), in order."""
    own = [nasseg_home() / "encoders" / f"{name}{suffix}" for suffix in SUFFIXES]
    cache = hf_hub_cache()
    snapshots = sorted(cache.glob(f"models--timm--{name}/snapshots/*/model.safetensors"))
    snapshots += sorted(cache.glob(f"models--timm--{name}.*/snapshots/*/model.safetensors"))
    return own + snapshots


def find_encoder_weights(name: str) -> Path:
    """The local weight file of timm encoder ``name``; :class:`WeightsError` saying where it looked."""
    for candidate in encoder_weight_candidates(name):
        if candidate.is_file():
            return candidate
    raise WeightsError(
        f"no local ImageNet weights for timm encoder {name!r} (looked for {nasseg_home() / 'encoders' / name}"
        f"{{{','.join(SUFFIXES)}}} and {hf_hub_cache()}/models--timm--{name}*/snapshots/*/model.safetensors); "
        f"nothing is downloaded: save timm.create_model({name!r}, pretrained=True).state_dict() there"
    )


def load_encoder_weights(encoder: nn.Module, name: str, in_channels: int, path: str | Path | None = None) -> Path:
    """Load ImageNet weights into ``encoder`` (a timm ``features_only`` model of ``name``) from
    ``path`` or the first file :func:`find_encoder_weights` finds; returns the file used."""
    import timm

    path = Path(path) if path is not None else find_encoder_weights(name)
    if not path.is_file():
        raise WeightsError(f"encoder weights {path}: no such file")
    try:
        reference = timm.create_model(name, features_only=True, pretrained=True, in_chans=in_channels,
                                      pretrained_cfg_overlay={"file": str(path)})  # fmt: skip
        encoder.load_state_dict(reference.state_dict(), strict=True)
    except (RuntimeError, KeyError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc) else type(exc).__name__
        raise WeightsError(f"{path}: not weights of timm encoder {name!r} ({first[:200]})") from None
    return path
