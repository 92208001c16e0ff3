"""What every dataset adapter returns, and the errors it raises.

Each dataset family is one module in `fer.datasets` exposing:

- ``NAME``: the family name used in config (``rafdb``, ``dfew``, ``bp4d``, ...)
- ``TASK``: ``"expression"`` (single label), ``"au"`` (multi-label action units) or ``"pretrain"`` (unlabeled)
- ``MEDIA``: ``"image"`` or ``"video"`` (a video is an mp4 file or a folder of frames)
- ``CLASSES`` (tuple of class names, index = label) for expression datasets, ``AUS`` (tuple of AU numbers) for AU ones
- ``FOLDS``: the official fold ids (``(1,)`` for a single train/test partition)
- ``verify(root)``: raise :class:`DatasetError` naming every missing file and where to request the dataset
- ``load_records(root) -> list[Record]``: parse the dataset's own label files
- ``split(records, fold) -> dict[str, list[Record]]``: ``train`` / ``val`` / ``test`` records of one fold
- ``write_miniature(root, ...)``: write a small copy in the dataset's real on-disk layout (tests and the demo)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class DatasetError(ValueError):
    """A dataset on disk does not match its documented layout; the message names the file and the fix."""


@dataclass(frozen=True)
class Record:
    """One sample of a dataset, before face alignment.

    key: unique id, usable as a relative output path (``train_00001``, ``02522``, ``F001/T1/0001``)
    path: absolute path of the source image, video file or frame folder
    label: 0-based class index (expression datasets), None otherwise
    aus: AU occurrence per ``AUS`` entry: 1, 0, or -1 where the dataset marks it unknown (FMAE-IAT's 999)
    subject: subject / identity id as the dataset spells it (``F001``), None where unknown
    split: ``train``, ``val``, ``test`` or ``unlabeled`` as the dataset's own partition says
    fold: for k-fold datasets, the fold whose test set holds this record
    """

    key: str
    path: Path
    label: int | None = None
    aus: tuple[int, ...] | None = None
    subject: str | None = None
    split: str = "train"
    fold: int | None = None
