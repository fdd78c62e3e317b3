"""KolektorSDD2 (https://www.vicos.si/resources/kolektorsdd2/; CC BY-NC-SA 4.0).

The download unpacks to ``train/`` and ``test/``, each with ``NAME.png`` and its mask ``NAME_GT.png``
(0 background, any other value defect). Classes: ``background, defect``. Splits: its own train/test
(val from train), or ``seeded``.
"""

from __future__ import annotations

from pathlib import Path

from nasseg.zoo.data.importers.common import ImportPlan, SourceSample, binary_mask_reader, paired_samples, seeded_splits


def plan(src: Path, seeded: bool = False, seed: int = 0) -> ImportPlan:
    """The samples of a KolektorSDD2 download."""
    problems: list[str] = []
    samples: list[SourceSample] = []
    for part in ("train", "test"):
        folder = src / part
        if not folder.is_dir():
            problems.append(f"{folder}: missing (KolektorSDD2 unpacks to train/ and test/)")
            continue
        images = sorted(p for p in folder.glob("*.png") if not p.stem.endswith("_GT"))
        samples += paired_samples(images, lambda p: p.with_name(f"{p.stem}_GT.png"), None if seeded else part,
                                  binary_mask_reader, problems)  # fmt: skip
    rule = "seeded 70/15/15" if seeded else "KolektorSDD2's own train/test (val from train)"
    return ImportPlan(seeded_splits(samples, seed), ["background", "defect"], problems, rule)
