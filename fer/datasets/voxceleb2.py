"""VoxCeleb2 (Chung, Nagrani & Zisserman, Interspeech 2018), unlabeled talking-face clips for MAE pretraining.

Format (the owners' ``vox2_dev_mp4`` archive; listed the same way by MAE-DFER ``preprocess/voxceleb2.py``, which
globs ``dev/mp4/*/*/*.mp4``)::

    dev/mp4/id00012/21Uxsk56VDQ/00001.mp4      identity / YouTube video id / clip number

Every clip is one record with MAE-DFER's dummy label 0, split ``unlabeled``, subject = the identity. The dev set
has 5,994 identities and 1,092,009 clips. Clips that do not decode (MAE-DFER lists a few dozen) are found by
the faces stage, which marks them ``unreadable``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import _common as C
from .base import DatasetError, Record

NAME = "voxceleb2"
TASK = "pretrain"
MEDIA = "video"
CLASSES = ("unlabeled",)
FOLDS = (1,)
REQUEST = "https://www.robots.ox.ac.uk/~vgg/data/voxceleb/vox2.html (request the download credentials)"

CLIP_DIR = "dev/mp4"
DEV_IDENTITIES = 5994
_ID_RE = re.compile(r"id\d{5}")


def load_records(root: str | os.PathLike, dropped: list | None = None) -> list[Record]:
    """One record per ``dev/mp4/<id>/<video>/<n>.mp4``; anything else in the tree is an error."""
    root = C.check_root(root, NAME, REQUEST)
    base = root / CLIP_DIR
    if not base.is_dir():
        raise DatasetError(
            f"{NAME}: {base} not found; unpack the VoxCeleb2 dev mp4 archive (request: {REQUEST})"
        )
    records = []
    for identity in sorted(os.scandir(base), key=lambda e: e.name):
        if not (identity.is_dir() and _ID_RE.fullmatch(identity.name)):
            raise DatasetError(f"{identity.path}: expected identity folders named id00012 under {base}")
        for video in sorted(os.scandir(identity.path), key=lambda e: e.name):
            if not video.is_dir():
                raise DatasetError(f"{video.path}: expected a YouTube-id folder of clips")
            for clip in sorted(os.scandir(video.path), key=lambda e: e.name):
                if not clip.name.endswith(".mp4"):
                    raise DatasetError(f"{clip.path}: expected only NNNNN.mp4 clips in {video.path}")
                key = f"{identity.name}/{video.name}/{clip.name[:-4]}"
                records.append(
                    Record(key=key, path=Path(clip.path), label=0, subject=identity.name, split="unlabeled")
                )
    if not records:
        raise DatasetError(f"{NAME}: no clips under {base}")
    return records  # already in key order


def verify(root: str | os.PathLike, full: bool = True, manifest: str | os.PathLike | None = None) -> None:
    """Check dev/mp4 and its tree (5,994 identities when full); optional SHA256SUMS."""
    root = C.check_root(root, NAME, REQUEST)
    C.require(root, [CLIP_DIR], NAME, REQUEST)
    records = load_records(root)
    if full:
        identities = len({r.subject for r in records})
        if identities != DEV_IDENTITIES:
            raise DatasetError(
                f"{NAME}: {root / CLIP_DIR} holds {identities} identities, the dev set {DEV_IDENTITIES}; the copy "
                f"is incomplete (request it at {REQUEST}) or pass full=False"
            )
    C.check_manifest(root, NAME, manifest)


def split(records: Sequence[Record], fold: int = 1) -> dict[str, list[Record]]:
    """Pretraining data: everything is ``train``; there is nothing to validate or test on."""
    C.check_fold(fold, FOLDS, NAME)
    return {"train": C.ordered(records), "val": [], "test": []}


def write_miniature(
    root: str | os.PathLike,
    clips: Sequence[np.ndarray],
    identities: Sequence[str] | None = None,
    fps: int = 25,
) -> Path:
    """Write clips as ``dev/mp4/<identity>/<video id>/NNNNN.mp4`` (two clips per video id).

    clips: TxHxWx3 uint8 RGB; identities: 'id00012'-style ids per clip (default: two clips per identity).
    """
    root = Path(root)
    for i, clip in enumerate(clips):
        identity = identities[i] if identities is not None else f"id{10000 + i // 2:05d}"
        if not _ID_RE.fullmatch(identity):
            raise ValueError(f"identity {identity!r} must look like id00012")
        video = f"yt{identity[2:]}{i // 2:03d}"
        C.write_video(root / CLIP_DIR / identity / video / f"{i + 1:05d}.mp4", clip, fps)
    return root
