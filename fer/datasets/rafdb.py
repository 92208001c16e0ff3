"""RAF-DB basic emotion subset (Li, Deng & Du, CVPR 2017), the layout of its ``basic`` folder.

Format (RAF-DB README shipped with the data; read the same way by APViT ``configs/_base_/datasets/RAF.py`` and
MAE-SFER's ImageFolder conversion)::

    basic/
      EmoLabel/list_patition_label.txt     "train_00001.jpg 5" per line (the owners' spelling "patition")
      Image/original/train_00001.jpg        full images
      Image/aligned/train_00001_aligned.jpg 100x100 faces aligned by the owners

Labels 1..7 = Surprise, Fear, Disgust, Happiness, Sadness, Anger, Neutral, mapped to 0..6 in that order.
The partition is the file name prefix (``train_`` 12,271 images, ``test_`` 3,068); there is no validation split,
so ``val`` is the test set. One fold: ``FOLDS = (1,)``.

Media choice: ``load_records(root, images="aligned")`` (default) points each record at the owners' aligned
face, which is what APViT, MAE-SFER and FMAE-IAT train on; ``images="original"`` points at the full image for
our own detection + alignment stage.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from . import _common as C
from .base import DatasetError, Record

NAME = "rafdb"
TASK = "expression"
MEDIA = "image"
CLASSES = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
FOLDS = (1,)
REQUEST = "http://www.whdeng.cn/RAF/model1.html (RAF-DB, agreement signed by a faculty member)"

LABEL_FILE = "EmoLabel/list_patition_label.txt"
ORIGINAL_DIR = "Image/original"
ALIGNED_DIR = "Image/aligned"
ALIGNED_SIZE = 100
PUBLISHED_COUNTS = {"train": 12271, "test": 3068}
_CODES = {i + 1: c for i, c in enumerate(CLASSES)}
_NAME_RE = re.compile(r"(train|test)_(\d+)\.jpg")


def _image_path(root: Path, key: str, images: str) -> Path:
    if images == "aligned":
        return root / ALIGNED_DIR / f"{key}_aligned.jpg"
    if images == "original":
        return root / ORIGINAL_DIR / f"{key}.jpg"
    raise DatasetError(f"{NAME}: images must be 'aligned' or 'original', got {images!r}")


def verify(
    root: str | os.PathLike,
    images: str = "aligned",
    full: bool = True,
    manifest: str | os.PathLike | None = None,
) -> None:
    """Check the ``basic`` folder: label file, image folder, every listed image, optional SHA256SUMS.

    full=True also requires the published counts (12,271 train / 3,068 test); miniatures pass full=False.
    """
    root = C.check_root(root, NAME, REQUEST)
    folder = ALIGNED_DIR if images == "aligned" else ORIGINAL_DIR
    C.require(root, [LABEL_FILE, folder], NAME, REQUEST)
    records = load_records(root, images=images)
    if full:
        C.check_counts(root / LABEL_FILE, records, PUBLISHED_COUNTS, NAME, REQUEST)
    C.check_manifest(root, NAME, manifest)


def load_records(
    root: str | os.PathLike, images: str = "aligned", dropped: list | None = None
) -> list[Record]:
    """One record per line of ``list_patition_label.txt``; RAF-DB's protocol excludes nothing.

    A listed image that is missing raises, or is skipped and appended to ``dropped`` when a list is given.
    """
    root = C.check_root(root, NAME, REQUEST)
    label_file = root / LABEL_FILE
    records, seen, missing = [], [], []
    for lineno, line in C.read_lines(label_file):
        where = f"{label_file}:{lineno}"
        parts = line.split()
        if len(parts) != 2 or not _NAME_RE.fullmatch(parts[0]):
            raise DatasetError(f"{where}: expected '<train|test>_<number>.jpg <label 1-7>', got {line!r}")
        key = parts[0][: -len(".jpg")]
        label = C.parse_label(parts[1], where, _CODES, offset=1)
        path = _image_path(root, key, images)
        seen.append((key, where))
        if C.exists_or_note(path, where, dropped, missing):
            records.append(Record(key=key, path=path, label=label, split=key.split("_")[0], fold=None))
    C.check_unique(seen, NAME)
    if missing:
        raise C.missing_files_error(NAME, missing, f"Unpack the {images} images of RAF-DB basic into {root}.")
    if not records:
        raise DatasetError(f"{label_file}: no samples listed")
    return C.ordered(records)


def split(records: Sequence[Record], fold: int = 1) -> dict[str, list[Record]]:
    """The official partition: train_* / test_*; val = test (the protocol has no validation split)."""
    return C.split_by_partition(records, fold, FOLDS, NAME)


def write_miniature(
    root: str | os.PathLike,
    images: Sequence[np.ndarray],
    labels: Sequence[int],
    splits: Sequence[str],
) -> Path:
    """Write a small RAF-DB ``basic`` folder: originals, 100x100 'aligned' copies and the label file.

    images: HxWx3 uint8 RGB; labels: 0-based; splits: 'train' or 'test' per image. Returns root.
    """
    if not len(images) == len(labels) == len(splits):
        raise ValueError("images, labels and splits must have the same length")
    root = Path(root)
    counters = {"train": 0, "test": 0}
    lines = []
    for image, label, part in zip(images, labels, splits):
        if part not in counters:
            raise ValueError(f"split must be 'train' or 'test', got {part!r}")
        if not 0 <= int(label) < len(CLASSES):
            raise ValueError(f"label {label} outside 0..{len(CLASSES) - 1}")
        counters[part] += 1
        key = f"{part}_{counters[part]:05d}"
        image = C.as_rgb_uint8(image, key)
        C.write_image(root / ORIGINAL_DIR / f"{key}.jpg", image)
        aligned = cv2.resize(image, (ALIGNED_SIZE, ALIGNED_SIZE), interpolation=cv2.INTER_AREA)
        C.write_image(root / ALIGNED_DIR / f"{key}_aligned.jpg", aligned)
        lines.append(f"{key}.jpg {int(label) + 1}")
    C.write_lines(root / LABEL_FILE, lines)
    return root
