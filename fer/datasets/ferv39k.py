"""FERV39k (Wang et al., CVPR 2022), 7 classes, one official train/test partition over all scenes.

Format (the FERV39k release; read by MAE-DFER ``preprocess/ferv39k.py``)::

    2_ClipsforFaceCrop/<scene path>/<clip>/           face-cropped frames of one clip
    4_setups/All_scenes/train_All.csv, test_All.csv   no header, "<clip path relative to 2_ClipsforFaceCrop> <Label>"

Labels as the lists spell them, in MAE-DFER's index order: Happy, Sad, Neutral, Angry, Surprise, Disgust,
Fear -> 0..6. Published sizes: 31,088 train / 7,847 test clips. No validation split: val = test.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import _common as C
from .base import DatasetError, Record

NAME = "ferv39k"
TASK = "expression"
MEDIA = "video"
CLASSES = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")
LIST_LABELS = ("Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear")
FOLDS = (1,)
REQUEST = "https://wangyanckxx.github.io/Proj_CVPR2022_FERV39k.html (FERV39k agreement)"

CLIP_DIR = "2_ClipsforFaceCrop"
LISTS = {"train": "4_setups/All_scenes/train_All.csv", "test": "4_setups/All_scenes/test_All.csv"}
PUBLISHED_COUNTS = {"train": 31088, "test": 7847}
_INDEX = {c: i for i, c in enumerate(LIST_LABELS)}


def load_records(root: str | os.PathLike, dropped: list | None = None) -> list[Record]:
    """One record per listed clip (a frame folder); key = the clip path as listed."""
    root = C.check_root(root, NAME, REQUEST)
    records, seen, missing = [], [], []
    for part, rel in LISTS.items():
        path = root / rel
        for lineno, line in C.read_lines(path):
            where = f"{path}:{lineno}"
            parts = line.split()
            if len(parts) != 2:
                raise DatasetError(
                    f"{where}: expected '<clip path> <Label>' separated by a space, got {line!r}"
                )
            clip, label = parts
            if clip.startswith("/") or ".." in Path(clip).parts:
                raise DatasetError(f"{where}: expected a clip path relative to {CLIP_DIR}, got {clip!r}")
            if label not in _INDEX:
                raise DatasetError(
                    f"{where}: unknown label {label!r}; valid labels: {', '.join(LIST_LABELS)}"
                )
            key = clip.strip("/")
            seen.append((key, where))
            media = root / CLIP_DIR / key
            if C.exists_or_note(media, where, dropped, missing):
                records.append(Record(key=key, path=media, label=_INDEX[label], split=part))
    C.check_unique(seen, NAME)
    if missing:
        raise C.missing_files_error(NAME, missing, f"Unpack {CLIP_DIR} of FERV39k into {root}.")
    if not records:
        raise DatasetError(f"{NAME}: the lists under {root} name no clips")
    return C.ordered(records)


def verify(root: str | os.PathLike, full: bool = True, manifest: str | os.PathLike | None = None) -> None:
    """Check both lists, the clip folder, every listed clip (published counts when full); optional SHA256SUMS."""
    root = C.check_root(root, NAME, REQUEST)
    C.require(root, [*LISTS.values(), CLIP_DIR], NAME, REQUEST)
    records = load_records(root)
    if full:
        C.check_counts(root / LISTS["train"], records, PUBLISHED_COUNTS, NAME, REQUEST)
    C.check_manifest(root, NAME, manifest)


def split(records: Sequence[Record], fold: int = 1) -> dict[str, list[Record]]:
    """train_All / test_All; val = test."""
    return C.split_by_partition(records, fold, FOLDS, NAME)


def write_miniature(
    root: str | os.PathLike,
    clips: Sequence[np.ndarray],
    labels: Sequence[int],
    splits: Sequence[str],
    scenes: Sequence[str] | None = None,
) -> Path:
    """Write a small FERV39k: frame folders ``2_ClipsforFaceCrop/<scene>/<Label>/<n>/`` and both lists.

    clips: TxHxWx3 uint8 RGB; labels: 0-based; splits: 'train' or 'test'; scenes: scene path per clip
    (default 'Daily/Talk'). Returns root.
    """
    if not len(clips) == len(labels) == len(splits):
        raise ValueError("clips, labels and splits must have the same length")
    root = Path(root)
    lines: dict[str, list[str]] = {"train": [], "test": []}
    for i, (clip, label, part) in enumerate(zip(clips, labels, splits), start=1):
        if part not in lines or not 0 <= int(label) < len(CLASSES):
            raise ValueError(
                f"clip {i}: split {part!r} must be train/test, label {label} in 0..{len(CLASSES) - 1}"
            )
        scene = scenes[i - 1] if scenes is not None else "Daily/Talk"
        rel = f"{scene}/{LIST_LABELS[int(label)]}/{i:04d}"
        for t, frame in enumerate(clip, start=1):
            C.write_image(root / CLIP_DIR / rel / f"{t:03d}.jpg", frame)
        lines[part].append(f"{rel} {LIST_LABELS[int(label)]}")
    for part, rel in LISTS.items():
        C.write_lines(root / rel, lines[part])
    return root
