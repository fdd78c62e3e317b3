"""The U-Net GA's search space (seed 002, sections 3.1-3.2): encoder widths and skip bits.

An individual is two fixed-length codes: ``c1`` (length L), the output width of each encoder
level drawn from S1 = {64, 128, 256, 512}, and ``c2`` (length L - 1), one bit per skip connection
between mirrored inner levels (S2 = {1, 0}). The decoder mirrors the encoder (``zoo/families/
unet.py``); 4x4 stride-2 convolutions, normalisation and dropout are fixed, not searched. With
L = 8, ``c1 = [64, 128, 256, 512, 512, 512, 512, 512]`` and every bit set this is pix2pix's
``unet_256`` (``genotypes/unet-pix2pix-256.json``): 4^8 x 2^7 = 8,388,608 points (section 3.1).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from nasseg.searchers.base import SearchError
from nasseg.zoo.genotype import Genotype

#: S1 of the paper (eq. 5).
PAPER_WIDTHS: tuple[int, ...] = (64, 128, 256, 512)
#: L_c1 of the paper (pix2pix unet_256 at 256 x 256).
PAPER_LAYERS = 8


def default_layers(size: int) -> int:
    """The paper's L = 8, or fewer where the search size cannot be halved 8 times (1 x 1 innermost at most)."""
    layers = 0
    while layers < PAPER_LAYERS and size % 2 ** (layers + 1) == 0:
        layers += 1
    return layers

Codes = tuple[list[int], list[bool]]


def code_key(c1: list[int], c2: list[bool]) -> str:
    """A readable identity of an individual, e.g. ``"64-128-64|10"``."""
    return "-".join(str(w) for w in c1) + "|" + "".join("1" if b else "0" for b in c2)


def decode_key(key: str) -> tuple[list[int], list[bool]]:
    """``(c1, c2)`` of a :func:`code_key`."""
    widths, skips = key.split("|")
    return [int(w) for w in widths.split("-")], [bit == "1" for bit in skips]


@dataclass
class UNetSpace:
    """U-Nets of ``layers`` levels, widths from ``widths``, any subset of the ``layers - 1`` skips.

    ``task`` is the genotype's task (kind ``segmentation`` or ``translation``, channels, search
    size); ``norm``, ``dropout`` and ``dropout_layers`` are the fixed parts (pix2pix defaults).
    """

    widths: tuple[int, ...] = PAPER_WIDTHS
    layers: int = PAPER_LAYERS
    task: dict[str, Any] = field(default_factory=lambda: {"kind": "translation", "in_channels": 3, "num_classes": 3,
                                                          "input_size": [256, 256]})  # fmt: skip
    norm: str = "batch"
    dropout: float = 0.5
    dropout_layers: int = 3
    name: str = "unet-ga"

    def __post_init__(self) -> None:
        self.widths = tuple(sorted(set(int(w) for w in self.widths)))
        if not self.widths or min(self.widths) < 1:
            raise SearchError(f"unet-ga space: widths must be positive integers, got {self.widths}")
        if self.layers < 2:
            raise SearchError(f"unet-ga space: at least 2 layers (one skip) needed, got {self.layers}")
        size = self.task.get("input_size", [256, 256])
        if any(int(s) % 2**self.layers for s in size):
            raise SearchError(f"unet-ga space: {self.layers} layers halve the image {self.layers} times; the search "
                              f"size {list(size)} must be a multiple of {2**self.layers}")  # fmt: skip

    @property
    def size(self) -> int:
        """Number of points: |S1|^L x 2^(L-1)."""
        return len(self.widths) ** self.layers * 2 ** (self.layers - 1)

    def sample(self, rng: random.Random) -> Genotype:
        """Bootstrap sampling of each code element from S1 and S2 (section 3.2)."""
        return self.genotype(*self.sample_codes(rng))

    def sample_codes(self, rng: random.Random) -> Codes:
        """Random ``(c1, c2)``."""
        c1 = [rng.choice(self.widths) for _ in range(self.layers)]
        c2 = [rng.choice((True, False)) for _ in range(self.layers - 1)]
        return c1, c2

    def genotype(self, c1: list[int], c2: list[bool]) -> Genotype:
        """Decode an individual into a ``unet`` genotype (section 3.2, Fig. 2)."""
        self.check_codes(c1, c2)
        return Genotype.from_dict(
            {
                "schema": "nasseg.genotype/1",
                "name": "unet-ga",
                "family": "unet",
                "task": dict(self.task),
                "arch": {
                    "channels": [int(w) for w in c1],
                    "skips": [bool(b) for b in c2],
                    "norm": self.norm,
                    "dropout": self.dropout,
                    "dropout_layers": self.dropout_layers,
                },  # fmt: skip
            },
            source="unet-ga space",
        )

    def check_codes(self, c1: list[int], c2: list[bool]) -> None:
        """Raise :class:`SearchError` unless ``(c1, c2)`` is a point of this space."""
        if len(c1) != self.layers or len(c2) != self.layers - 1:
            raise SearchError(f"unet-ga space: codes of length {len(c1)}/{len(c2)}, the space has {self.layers} "
                              f"layers ({self.layers}/{self.layers - 1} expected)")  # fmt: skip
        wrong = [w for w in c1 if w not in self.widths]
        if wrong:
            raise SearchError(f"unet-ga space: widths {wrong} not in S1 = {list(self.widths)}")

    def encode(self, genotype: Genotype) -> Codes:
        """``(c1, c2)`` of a ``unet`` genotype of this space (raises :class:`SearchError` otherwise)."""
        if genotype.family != "unet":
            raise SearchError(f"genotype {genotype.name!r} is a {genotype.family} net, not a unet")
        arch = genotype.arch
        fixed = {"norm": self.norm, "dropout": self.dropout, "dropout_layers": self.dropout_layers}
        for name, value in fixed.items():
            if getattr(arch, name) != value:
                raise SearchError(
                    f"genotype {genotype.name!r}: {name} {getattr(arch, name)!r}, the space fixes {value!r}"
                )
        c1, c2 = list(arch.channels), list(arch.skips)
        self.check_codes(c1, c2)
        return c1, c2

    def contains(self, genotype: Genotype) -> bool:
        """Whether ``genotype``'s architecture is a point of this space (the task aside)."""
        try:
            self.encode(genotype)
        except SearchError:
            return False
        return True

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "widths": list(self.widths), "layers": self.layers, "task": self.task,
                "norm": self.norm, "dropout": self.dropout, "dropout_layers": self.dropout_layers,
                "size": self.size}  # fmt: skip
