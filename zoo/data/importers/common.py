"""What every importer shares: samples read lazily from the download, a seeded split where the source
has none, and one writer of the checked folder format with a ``dataset.json`` that says where it came
from.

An importer lists :class:`SourceSample` records (split, stem, how to read the image and the mask)
and the problems it found on the way (a defect image without its mask, ...). :func:`write_folder`
then reads each sample, checks that the mask has the image's size and only known classes, and
writes ``OUT/{train,val,test}/{images,masks}/STEM.png``. Every problem, of listing or of reading,
is collected; if there is any, nothing is written and :class:`~zoo.data.folder.DatasetError`
lists them all, one per file (``nasseg data import`` exits 2), as ``nasseg data check`` does.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from nasseg.zoo._version import __version__
from nasseg.zoo.data.folder import SPLITS, DatasetError
from nasseg.zoo.data.images import ImageReadError, file_kind, read_image, write_png
from nasseg.zoo.io import atomic_write_text, current_umask

#: A seeded split for sources without one: train / val / test fractions.
SEEDED_FRACTIONS = (0.7, 0.15, 0.15)
Reader = Callable[[], np.ndarray]


@dataclass(frozen=True)
class SourceSample:
    """One sample of a download: its split (``None``: the seeded split decides), a unique stem, the
    path it is reported under, and readers for the image and for the class-index mask."""

    split: str | None
    stem: str
    where: Path
    image: Reader
    mask: Reader


@dataclass(frozen=True)
class ImportPlan:
    """What an importer found: samples, class names (background first), problems, and the split rule."""

    samples: list[SourceSample]
    classes: list[str]
    problems: list[str]
    split_rule: str


def image_reader(path: Path) -> Reader:
    return lambda: read_image(path)


def binary_mask_reader(path: Path, threshold: int = 0, invert: bool = False) -> Reader:
    """A mask file read as 0/1: pixels above ``threshold`` are foreground (below it, with ``invert``)."""

    def read() -> np.ndarray:
        mask = read_image(path)
        mask = mask if mask.ndim == 2 else mask[..., 0]
        return ((mask <= threshold) if invert else (mask > threshold)).astype(np.uint8)

    return read


def class_mask(reader: Reader, class_index: int) -> Reader:
    """A binary mask reader whose foreground becomes ``class_index`` (one class per defect type)."""
    return lambda: (reader() > 0).astype(np.uint8) * np.uint8(class_index)


def empty_mask_like(image: Reader) -> Reader:
    """An all-background mask of the image's size (defect-free samples)."""
    return lambda: np.zeros(image().shape[:2], np.uint8)


def paired_samples(paths: Sequence[Path], mask_of: Callable[[Path], Path], split: str | None,
                   read_mask: Callable[[Path], Reader], problems: list[str],
                   stem: Callable[[Path], str] = lambda p: p.stem) -> list[SourceSample]:  # fmt: skip
    """A sample per image whose mask file (``mask_of(image)``) exists; a problem line for each that lacks one."""
    samples = []
    for path in paths:
        mask = mask_of(path)
        if not mask.is_file():
            problems.append(f"{path}: no mask {mask.name}")
            continue
        samples.append(SourceSample(split, stem(path), path, image_reader(path), read_mask(mask)))
    return samples


def seeded_splits(samples: Sequence[SourceSample], seed: int) -> list[SourceSample]:
    """``samples`` with ``split`` filled for those without one: a seeded 70/15/15 permutation (sorted
    by stem first, so the split does not depend on the order files were listed in)."""
    free = sorted((s for s in samples if s.split is None), key=lambda s: s.stem)
    order = np.random.default_rng(seed).permutation(len(free))
    n_train = int(round(SEEDED_FRACTIONS[0] * len(free)))
    n_val = int(round(SEEDED_FRACTIONS[1] * len(free)))
    split_of = {}
    for rank, index in enumerate(order):
        split_of[free[index].stem] = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
    return [s if s.split is not None else replace(s, split=split_of[s.stem]) for s in samples]


def write_folder(plan: ImportPlan, out: Path, source: str, fmt: str, progress: Callable[[int], None] | None = None,
                 overwrite: bool = False, note: Callable[[str], None] | None = None) -> Path:  # fmt: skip
    """Read, check and write every sample of ``plan`` into ``out`` (see the module docstring).

    ``out`` is checked before anything is read (:func:`check_output`); the source is scanned for
    symlinks that leave it (refused, one line each) and for files that are not regular files
    (skipped, one ``note`` line each). The samples are written into a unique staging folder next to
    ``out`` and renamed into place; with ``overwrite`` an earlier import at ``out`` is replaced, and
    nothing else ever is."""
    out = Path(out)
    src = Path(source)
    check_output(out, src, overwrite)
    leaving, special = scan_source(src)
    skipped_names = tuple(f"{path}:" for path, _ in special)
    problems = [p for p in plan.problems if not p.startswith(skipped_names)]  # a skipped file is no problem
    problems += [f"{path}: a symlink leaving the source (-> {target}); refused" for path, target in leaving]
    say = note or (lambda line: print(line, file=sys.stderr))
    for path, kind in special:
        say(f"{path}: not a regular file ({kind}); skipped")
    skipped = {path for path, _ in special} | {path for path, _ in leaving}
    samples = [s for s in plan.samples if not skipped.intersection((s.where, *s.where.parents))]  # others: read
    if not samples and not problems:
        problems.append(f"{source}: no samples found in the {fmt} layout")
    seen: set[tuple[str, str]] = set()
    for sample in samples:
        if (sample.split, sample.stem) in seen:
            problems.append(f"{sample.where}: a second sample named {sample.stem!r} in {sample.split}")
        seen.add((sample.split, sample.stem))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.importing-"))
    try:
        for sample in samples:
            problem = _write_sample(sample, staging, len(plan.classes))
            if problem:
                problems.append(problem)
            if progress is not None:
                progress(1)
        if problems:
            raise DatasetError(src, problems)
        counts = {split: sum(1 for s in samples if s.split == split) for split in SPLITS}
        meta = {"classes": plan.classes, "source": {"format": fmt, "path": str(src.resolve())},
                "split": plan.split_rule, "counts": counts, "importer": f"nasseg {__version__}"}  # fmt: skip
        atomic_write_text(staging / "dataset.json", json.dumps(meta, indent=2) + "\n")
        os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp makes 0700 folders
        _replace_folder(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # ours: a unique name made above
    return out


def check_output(out: Path, src: Path, overwrite: bool) -> None:
    """One-line :class:`DatasetError` for an ``--out`` that an import must not write: a symlink or a
    file, the source, a folder inside it or above it, the working directory or a folder above it, a
    non-empty folder without ``overwrite``, or (with it) a folder that no import wrote."""
    if out.is_symlink():
        raise DatasetError(out, [f"--out {out}: a symlink; name the real folder"])
    if out.exists() and not out.is_dir():
        raise DatasetError(out, [f"--out {out}: a file, not a folder"])
    resolved, source, here = out.resolve(), src.resolve(), Path.cwd().resolve()
    if resolved == source or resolved in source.parents:
        raise DatasetError(out, [f"--out {out}: the source {src} or a folder above it; choose a new folder"])
    if source in resolved.parents:
        raise DatasetError(out, [f"--out {out}: inside the source {src}; write the import outside the download"])
    if resolved == here or resolved in here.parents:
        raise DatasetError(out, [f"--out {out}: the working directory or a folder above it; choose a new folder"])
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise DatasetError(out, [f"--out {out}: the folder is not empty (pass --overwrite to replace an import)"])
        if not is_import_folder(out):
            raise DatasetError(out, [f"--out {out}: not a folder that nasseg data import wrote (its dataset.json "
                                     "has no 'importer'); --overwrite replaces only earlier imports"])  # fmt: skip


def is_import_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a ``dataset.json`` written by an import (``"importer": "nasseg ..."``)."""
    meta = folder / "dataset.json"
    if meta.is_symlink() or not meta.is_file():
        return False
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and str(data.get("importer", "")).startswith("nasseg ")


def scan_source(src: Path) -> tuple[list[tuple[Path, Path]], list[tuple[Path, str]]]:
    """Symlinks under ``src`` that point outside it (path, target), and entries that are not regular
    files or folders (path, kind), found without following any symlink."""
    root = src.resolve()
    leaving: list[tuple[Path, Path]] = []
    special: list[tuple[Path, str]] = []
    for folder, dirs, files in os.walk(src, followlinks=False):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                target = path.resolve()
                if target != root and root not in target.parents:
                    leaving.append((path, target))
                elif target.exists() and not (target.is_file() or target.is_dir()):
                    special.append((path, file_kind(target.stat().st_mode)))
            elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                special.append((path, file_kind(mode)))
    return leaving, special


def _replace_folder(staging: Path, out: Path) -> None:
    """Rename ``staging`` to ``out``; an earlier import at ``out`` is moved aside first and removed after."""
    if not out.exists():
        staging.rename(out)
        return
    if not any(out.iterdir()):
        out.rmdir()  # an empty folder the user made for it
        staging.rename(out)
        return
    aside = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.replaced-"))
    out.rename(aside / out.name)
    staging.rename(out)
    shutil.rmtree(aside, ignore_errors=True)  # the earlier import (checked by check_output) in our unique folder


def _write_sample(sample: SourceSample, root: Path, num_classes: int) -> str | None:
    """Write one sample; the problem (one line naming the file) if it cannot be."""
    try:
        image = sample.image()
        mask = sample.mask()
    except ImageReadError as exc:
        return str(exc)
    except (OSError, ValueError, KeyError, IndexError, TypeError, EOFError) as exc:
        return f"{sample.where}: cannot be read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    if mask.shape[:2] != image.shape[:2]:
        return (f"{sample.where}: mask is {mask.shape[1]}x{mask.shape[0]}, image is "
                f"{image.shape[1]}x{image.shape[0]}")  # fmt: skip
    if mask.size and int(mask.max()) >= num_classes:
        return f"{sample.where}: mask value {int(mask.max())} is outside the {num_classes} classes"
    scale = 255 if num_classes == 2 else 1
    write_png(root / sample.split / "images" / f"{sample.stem}.png", image)
    write_png(root / sample.split / "masks" / f"{sample.stem}.png", (mask * scale).astype(np.uint8))
    return None
