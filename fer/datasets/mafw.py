"""MAFW (Liu et al., ACM MM 2022), 11 single-label emotion classes, 5-fold protocol.

Format (the MAFW release; lists read by MAE-DFER ``preprocess/mafw.py``)::

    data/clips/00001.mp4 ...                         10,045 clips (raw media)
    data/frames/00001/                               frames extracted by the owners (MAE-DFER's input)
    Train & Test Set/single/no_caption/set_1/train.txt, test.txt ... set_5   "00001.mp4 anger" per line

MAE-DFER's copy names the list folder ``split/single/no_caption``: both are accepted. Class names as the lists
spell them, index order of MAE-DFER: anger, disgust, fear, happiness, neutral, sadness, surprise, contempt,
anxiety, helplessness, disappointment. Fold k tests on set_k/test.txt and trains on set_k/train.txt, which
must be every other clip (checked); val = test (MAE-DFER has no validation split).

``load_records(root, media="clips")`` (default) points at the mp4 clips for our own alignment;
``media="frames"`` at the owners' frame folders.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import _common as C
from .base import DatasetError, Record

NAME = "mafw"
TASK = "expression"
MEDIA = "video"
CLASSES = (
    "anger",
    "disgust",
    "fear",
    "happiness",
    "neutral",
    "sadness",
    "surprise",
    "contempt",
    "anxiety",
    "helplessness",
    "disappointment",
)
FOLDS = (1, 2, 3, 4, 5)
REQUEST = "https://mafw-database.github.io/MAFW/ (MAFW license agreement)"

SPLIT_ROOTS = ("Train & Test Set/single/no_caption", "split/single/no_caption")
MEDIA_DIRS = {"clips": "data/clips", "frames": "data/frames"}
TOTAL_CLIPS = 10045
_INDEX = {c: i for i, c in enumerate(CLASSES)}


def _list_file(root: Path, fold: int, part: str) -> Path:
    return C.first_existing(root, [f"{r}/set_{fold}/{part}.txt" for r in SPLIT_ROOTS])


def _read_list(path: Path) -> dict[str, tuple[int, str]]:
    out: dict[str, tuple[int, str]] = {}
    for lineno, line in C.read_lines(path):
        where = f"{path}:{lineno}"
        parts = line.split()
        if len(parts) != 2:
            raise DatasetError(f"{where}: expected '<clip>.mp4 <emotion>', got {line!r}")
        name, label = parts
        key = name.split(".")[0]
        if not key:
            raise DatasetError(f"{where}: empty clip name in {line!r}")
        if label.lower() not in _INDEX:
            raise DatasetError(f"{where}: unknown label {label!r}; valid labels: {', '.join(CLASSES)}")
        if key in out:
            raise DatasetError(f"{NAME}: duplicate id {key!r} listed at {out[key][1]} and at {where}")
        out[key] = (_INDEX[label.lower()], where)
    return out


def _media_path(root: Path, key: str, media: str) -> Path:
    if media not in MEDIA_DIRS:
        raise DatasetError(f"{NAME}: media must be one of {', '.join(MEDIA_DIRS)}, got {media!r}")
    return root / MEDIA_DIRS[media] / (f"{key}.mp4" if media == "clips" else key)


def load_records(root: str | os.PathLike, media: str = "clips", dropped: list | None = None) -> list[Record]:
    """One record per single-labeled clip; ``fold`` = the fold whose test list holds it."""
    root = C.check_root(root, NAME, REQUEST)
    tests = {k: _read_list(_list_file(root, k, "test")) for k in FOLDS}
    trains = {k: (_list_file(root, k, "train"), _read_list(_list_file(root, k, "train"))) for k in FOLDS}
    owner = C.assemble_kfold(tests, trains, NAME)
    records, missing = [], []
    for key, (fold, label, where) in owner.items():
        path = _media_path(root, key, media)
        if C.exists_or_note(path, where, dropped, missing):
            records.append(Record(key=key, path=path, label=label, split="test", fold=fold))
    if missing:
        raise C.missing_files_error(NAME, missing, f"Unpack {MEDIA_DIRS[media]} of MAFW into {root}.")
    if not records:
        raise DatasetError(f"{NAME}: the lists under {root} name no clips")
    return C.ordered(records)


def verify(
    root: str | os.PathLike,
    media: str = "clips",
    full: bool = True,
    manifest: str | os.PathLike | None = None,
) -> None:
    """Check the 10 lists, the media folder (all 10,045 clips when full), every listed clip; optional SHA256SUMS."""
    root = C.check_root(root, NAME, REQUEST)
    lists = [tuple(f"{r}/set_{k}/{p}.txt" for r in SPLIT_ROOTS) for k in FOLDS for p in ("train", "test")]
    C.require(root, [*lists, MEDIA_DIRS.get(media, media)], NAME, REQUEST)
    load_records(root, media=media)
    if full:
        count = sum(1 for _ in (root / MEDIA_DIRS[media]).iterdir())
        if count != TOTAL_CLIPS:
            raise DatasetError(
                f"{NAME}: {root / MEDIA_DIRS[media]} holds {count} clips, the release {TOTAL_CLIPS}; the copy is "
                f"incomplete (request it at {REQUEST}) or pass full=False"
            )
    C.check_manifest(root, NAME, manifest)


def split(records: Sequence[Record], fold: int) -> dict[str, list[Record]]:
    """Fold k: test = set_k/test.txt, train = the other folds' clips (= set_k/train.txt), val = test."""
    return C.split_by_fold(records, fold, FOLDS, NAME)


def write_miniature(
    root: str | os.PathLike,
    clips: Sequence[np.ndarray],
    labels: Sequence[int],
    test_folds: Sequence[int],
    fps: int = 25,
    frames: bool = False,
) -> Path:
    """Write a small MAFW: ``data/clips/NNNNN.mp4`` and the 10 single-label lists (frames=True: data/frames too).

    clips: TxHxWx3 uint8 RGB; labels: 0-based; test_folds: the fold (1..5) whose test list holds each clip.
    """
    if not len(clips) == len(labels) == len(test_folds):
        raise ValueError("clips, labels and test_folds must have the same length")
    root = Path(root)
    rows = []
    for i, (clip, label, fold) in enumerate(zip(clips, labels, test_folds), start=1):
        if fold not in FOLDS or not 0 <= int(label) < len(CLASSES):
            raise ValueError(
                f"clip {i}: fold {fold} must be in {FOLDS}, label {label} in 0..{len(CLASSES) - 1}"
            )
        key = f"{i:05d}"
        C.write_video(root / MEDIA_DIRS["clips"] / f"{key}.mp4", clip, fps)
        if frames:
            for t, frame in enumerate(clip, start=1):
                C.write_image(root / MEDIA_DIRS["frames"] / key / f"{t:05d}.png", frame)
        rows.append((key, CLASSES[int(label)], int(fold)))
    for k in FOLDS:
        for part, keep in (("train", lambda f, k=k: f != k), ("test", lambda f, k=k: f == k)):
            lines = [f"{key}.mp4 {name}" for key, name, f in rows if keep(f)]
            C.write_lines(root / SPLIT_ROOTS[0] / f"set_{k}" / f"{part}.txt", lines)
    return root
