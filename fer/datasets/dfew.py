"""DFEW, Dynamic Facial Expression in-the-Wild (Jiang et al., ACM MM 2020), single-labeled 5-fold protocol.

Format (the DFEW README shipped with the data, v1.0; split files read by MAE-DFER ``preprocess/dfew.py``)::

    Clip/original/00001.mp4 ...                 16,372 clips (the raw media)
    Clip/clip_224x224/00001/                    owners' face-aligned frames (MAE-DFER's "jpg_256" input)
    Clip/clip_224x224_16f/00001/                the same, time-interpolated to 16 frames
    EmoLabel_DataSplit/train(single-labeled)/set_1.csv ... set_5.csv   "video_name,label"
    EmoLabel_DataSplit/test(single-labeled)/set_1.csv ... set_5.csv

The README spells the folders ``train(single_labeled)``; the archives and MAE-DFER use ``train(single-labeled)``:
both are accepted. ``video_name`` is the clip number (``2522`` -> ``02522``). Labels 1..7 = Happy, Sad, Neutral,
Angry, Surprise, Disgust, Fear -> 0..6 (MAE-DFER subtracts 1). The 11,697 single-labeled clips are split into
5 folds: fold k tests on ``test/set_k.csv`` and trains on ``train/set_k.csv``, which is every other clip (checked
here). MAE-DFER has no validation split: ``val`` is the test set.

Media choice: ``load_records(root, media="original")`` (default) points records at the mp4 clips for our own
face alignment; ``media="clip_224x224"`` (what MAE-DFER trained on) or ``"clip_224x224_16f"`` points at the
owners' frame folders.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import _common as C
from .base import DatasetError, Record

NAME = "dfew"
TASK = "expression"
MEDIA = "video"
CLASSES = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")
FOLDS = (1, 2, 3, 4, 5)
REQUEST = "https://dfew-dataset.github.io/download.html (e-mail the owners for the password)"

SPLIT_DIR = "EmoLabel_DataSplit"
MEDIA_DIRS = {
    "original": "Clip/original",
    "clip_224x224": "Clip/clip_224x224",
    "clip_224x224_16f": "Clip/clip_224x224_16f",
}
PUBLISHED_TEST_SIZES = {1: 2341, 2: 2341, 3: 2340, 4: 2339, 5: 2336}  # DFEW README, 11,697 clips
_CODES = {i + 1: c for i, c in enumerate(CLASSES)}


def _split_file(part: str, fold: int) -> tuple[str, str]:
    return (
        f"{SPLIT_DIR}/{part}(single-labeled)/set_{fold}.csv",
        f"{SPLIT_DIR}/{part}(single_labeled)/set_{fold}.csv",
    )


def _media_path(root: Path, key: str, media: str) -> Path:
    if media not in MEDIA_DIRS:
        raise DatasetError(f"{NAME}: media must be one of {', '.join(MEDIA_DIRS)}, got {media!r}")
    folder = root / MEDIA_DIRS[media]
    return folder / f"{key}.mp4" if media == "original" else folder / key


def verify(
    root: str | os.PathLike,
    media: str = "original",
    full: bool = True,
    manifest: str | os.PathLike | None = None,
) -> None:
    """Check the 10 split files, the media folder, every listed clip, and the optional SHA256SUMS.

    full=True also requires the published test-set sizes of the 5 folds; miniatures pass full=False.
    """
    root = C.check_root(root, NAME, REQUEST)
    expected = [_split_file(part, k) for part in ("train", "test") for k in FOLDS]
    C.require(root, [*expected, MEDIA_DIRS.get(media, media)], NAME, REQUEST)
    records = load_records(root, media=media)
    if full:
        got = {k: sum(r.fold == k for r in records) for k in FOLDS}
        if got != PUBLISHED_TEST_SIZES:
            raise DatasetError(
                f"{NAME}: test sets under {root / SPLIT_DIR} hold {got} clips, the published release "
                f"{PUBLISHED_TEST_SIZES}; the copy is incomplete (request it at {REQUEST}) or pass full=False"
            )
    C.check_manifest(root, NAME, manifest)


def _read_split(path: Path) -> dict[str, tuple[int, str]]:
    """clip key -> (0-based label, 'file:line')."""
    out: dict[str, tuple[int, str]] = {}
    for lineno, row in C.read_csv(path, ("video_name", "label")):
        where = f"{path}:{lineno}"
        number = C.parse_int(row["video_name"], where, "video_name, the clip number")
        key = f"{number:05d}"
        label = C.parse_label(row["label"], where, _CODES, offset=1)
        if key in out:
            raise DatasetError(f"{NAME}: duplicate id {key!r} listed at {out[key][1]} and at {where}")
        out[key] = (label, where)
    return out


def load_records(
    root: str | os.PathLike, media: str = "original", dropped: list | None = None
) -> list[Record]:
    """One record per single-labeled clip, ``fold`` = the fold whose test set holds it.

    Checks that the five test sets are disjoint, that train set k is exactly the other clips, and that a clip
    has the same label in every file. The official split files already exclude the 362 clips without detected
    faces; a listed clip that is missing raises, or is skipped and appended to ``dropped`` when a list is given.
    """
    root = C.check_root(root, NAME, REQUEST)
    tests = {k: _read_split(C.first_existing(root, _split_file("test", k))) for k in FOLDS}
    trains = {}
    for k in FOLDS:
        path = C.first_existing(root, _split_file("train", k))
        trains[k] = (path, _read_split(path))
    owner = C.assemble_kfold(tests, trains, NAME)
    records, missing = [], []
    for key, (k, label, where) in owner.items():
        path = _media_path(root, key, media)
        if C.exists_or_note(path, where, dropped, missing):
            records.append(Record(key=key, path=path, label=label, split="test", fold=k))
    if missing:
        raise C.missing_files_error(NAME, missing, f"Unpack {MEDIA_DIRS[media]} of DFEW into {root}.")
    if not records:
        raise DatasetError(f"{NAME}: the split files under {root / SPLIT_DIR} list no clips")
    return C.ordered(records)


def split(records: Sequence[Record], fold: int) -> dict[str, list[Record]]:
    """Fold k: test = test/set_k.csv, train = the other four folds' test clips (= train/set_k.csv), val = test."""
    return C.split_by_fold(records, fold, FOLDS, NAME)


def write_miniature(
    root: str | os.PathLike,
    clips: Sequence[np.ndarray],
    labels: Sequence[int],
    test_folds: Sequence[int],
    fps: int = 25,
    frames: bool = False,
) -> Path:
    """Write a small DFEW: ``Clip/original/NNNNN.mp4`` clips and the 10 split files.

    clips: TxHxWx3 uint8 RGB; labels: 0-based; test_folds: the fold (1..5) whose test set holds each clip.
    frames=True also writes ``Clip/clip_224x224/NNNNN/NNNNN_k.jpg`` frame folders. Returns root.
    """
    if not len(clips) == len(labels) == len(test_folds):
        raise ValueError("clips, labels and test_folds must have the same length")
    root = Path(root)
    rows = []
    for i, (clip, label, fold) in enumerate(zip(clips, labels, test_folds), start=1):
        if fold not in FOLDS:
            raise ValueError(f"test fold {fold} not in {FOLDS}")
        if not 0 <= int(label) < len(CLASSES):
            raise ValueError(f"label {label} outside 0..{len(CLASSES) - 1}")
        key = f"{i:05d}"
        C.write_video(root / MEDIA_DIRS["original"] / f"{key}.mp4", clip, fps)
        if frames:
            for t, frame in enumerate(clip, start=1):
                C.write_image(root / MEDIA_DIRS["clip_224x224"] / key / f"{key}_{t}.jpg", frame)
        rows.append((i, int(label) + 1, int(fold)))
    for k in FOLDS:
        for part, keep in (("train", lambda f, k=k: f != k), ("test", lambda f, k=k: f == k)):
            lines = ["video_name,label"] + [f"{n},{code}" for n, code, f in rows if keep(f)]
            C.write_lines(root / _split_file(part, k)[0], lines)
    return root
