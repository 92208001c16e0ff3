"""FER+ (Barsoum et al., ICMI 2016): FER2013 faces relabeled by 10 annotators, majority-vote labels, 8 classes.

Format: ``fer2013.csv`` of the Kaggle FER2013 release (header "emotion,pixels,Usage": 35,887 rows of 48x48 grey
pixels as space-separated integers; Usage Training / PublicTest / PrivateTest) and ``fer2013new.csv`` of
microsoft/FERPlus (header "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,
unknown,NF", row i = row i of fer2013.csv; an empty image name marks a row FER+ removed).

Labels follow ``src/ferplus.py`` of microsoft/FERPlus in "majority" mode: single votes are discarded as outliers,
the top emotion must hold more than half of the remaining votes (so ties never qualify), and images whose
majority is "unknown" or "NF" are dropped, as are the removed rows; every drop is reported in ``dropped``.
Classes in FER+ order: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt (MAE-SFER's
FERPlus lists use the same 0-7). Splits: Training -> train, PublicTest -> val, PrivateTest -> test.

Images are decoded from the pixel strings once, into ``<image_dir>/FER2013Train|FER2013Valid|FER2013Test/
fer0000000.png`` (the folders of FERPlus ``src/generate_training_data.py``; default image_dir = root).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from . import _common as C
from .base import DatasetError, Record

NAME = "ferplus"
TASK = "expression"
MEDIA = "image"
CLASSES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
VOTE_COLUMNS = (*CLASSES, "unknown", "NF")
FOLDS = (1,)
REQUEST = (
    "https://www.kaggle.com/c/challenges-in-representation-learning-facial-expression-recognition-challenge "
    "(fer2013.csv) and https://github.com/microsoft/FERPlus (fer2013new.csv)"
)

FER_CSV = ("fer2013.csv", "fer2013/fer2013.csv")
FERPLUS_CSV = ("fer2013new.csv", "FERPlus/fer2013new.csv")
USAGES = {
    "Training": ("train", "FER2013Train"),
    "PublicTest": ("val", "FER2013Valid"),
    "PrivateTest": ("test", "FER2013Test"),
}
SIZE = 48
FER_ROWS = 35887


def majority_label(votes: Sequence[int]) -> int | None:
    """Index into VOTE_COLUMNS of the majority vote (FERPlus "majority" mode), None without a majority."""
    kept = [v if v > 1 else 0 for v in votes]  # a single vote is an outlier
    total = sum(kept)
    top = max(kept)
    if total == 0 or top <= 0.5 * total:
        return None
    return kept.index(top)


def _read_fer(path: Path) -> list[tuple[int, str, str, str]]:
    """(line, emotion, pixels, Usage) per row of fer2013.csv."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if header != ["emotion", "pixels", "Usage"]:
            raise DatasetError(
                f"{path}:1: expected the header 'emotion,pixels,Usage', got {','.join(header)!r}"
            )
        rows = []
        for row in reader:
            if len(row) != 3:
                raise DatasetError(
                    f"{path}:{reader.line_num}: expected 3 fields (emotion,pixels,Usage), got {len(row)}"
                )
            rows.append((reader.line_num, *(c.strip() for c in row)))
    return rows


def _pixels(text: str, where: str) -> np.ndarray:
    try:
        values = np.array(text.split(), dtype=np.int64)
    except ValueError:
        raise DatasetError(f"{where}: pixels must be {SIZE * SIZE} space-separated integers 0-255") from None
    if values.size != SIZE * SIZE or values.min() < 0 or values.max() > 255:
        raise DatasetError(f"{where}: pixels must be {SIZE * SIZE} integers 0-255, got {values.size} values")
    return values.astype(np.uint8).reshape(SIZE, SIZE)


def _write_png(path: Path, grey: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", grey)
    if not ok:
        raise OSError(f"could not encode {path}")
    C.write_bytes_atomic(path, data.tobytes())


def load_records(
    root: str | os.PathLike, image_dir: str | os.PathLike | None = None, dropped: list | None = None
) -> list[Record]:
    """Majority-vote records; decodes each kept image to PNG under image_dir if it is not there yet."""
    root = C.check_root(root, NAME, REQUEST)
    image_dir = Path(image_dir) if image_dir is not None else root
    fer_path, plus_path = C.first_existing(root, FER_CSV), C.first_existing(root, FERPLUS_CSV)
    for path in (fer_path, plus_path):
        if not path.is_file():
            raise DatasetError(f"{path}: file not found; get it from {REQUEST}")
    fer_rows = _read_fer(fer_path)
    plus_rows = list(C.read_csv(plus_path, ("Usage", "Image name", *VOTE_COLUMNS)))
    if len(plus_rows) != len(fer_rows):
        raise DatasetError(
            f"{plus_path} has {len(plus_rows)} rows but {fer_path} has {len(fer_rows)}; FER+ labels row i of "
            f"fer2013.csv, use the fer2013.csv of the Kaggle release ({FER_ROWS} rows)"
        )
    records, seen = [], []
    for (fer_line, _, pixels, usage), (plus_line, row) in zip(fer_rows, plus_rows):
        where = f"{plus_path}:{plus_line}"
        if usage not in USAGES:
            raise DatasetError(f"{fer_path}:{fer_line}: unknown Usage {usage!r}; valid: {', '.join(USAGES)}")
        if row["Usage"] != usage:
            raise DatasetError(
                f"{where}: Usage {row['Usage']!r} differs from {usage!r} at {fer_path}:{fer_line}"
            )
        votes = [C.parse_int(row[c], where, f"the vote count of {c}") for c in VOTE_COLUMNS]
        if min(votes) < 0:
            raise DatasetError(f"{where}: vote counts must be >= 0, got {votes}")
        name = row["Image name"]
        if not name:
            C.note_dropped(dropped, where, "row removed by FER+ (no image name)")
            continue
        if not name.endswith(".png"):
            raise DatasetError(f"{where}: expected an image name like fer0000000.png, got {name!r}")
        seen.append((name[:-4], where))
        label = majority_label(votes)
        if label is None or label >= len(CLASSES):
            reason = "no majority vote" if label is None else f"majority vote is {VOTE_COLUMNS[label]}"
            C.note_dropped(dropped, where, reason)
            continue
        part, folder = USAGES[usage]
        path = image_dir / folder / name
        if not path.is_file():
            _write_png(path, _pixels(pixels, f"{fer_path}:{fer_line}"))
        records.append(Record(key=name[:-4], path=path, label=label, split=part))
    C.check_unique(seen, NAME)
    if not records:
        raise DatasetError(f"{NAME}: no image of {plus_path} has a majority label")
    return C.ordered(records)


def verify(
    root: str | os.PathLike,
    image_dir: str | os.PathLike | None = None,
    full: bool = True,
    manifest: str | os.PathLike | None = None,
) -> None:
    """Check both CSVs (35,887 rows when full), every row, decode the images; optional SHA256SUMS."""
    root = C.check_root(root, NAME, REQUEST)
    C.require(root, [FER_CSV, FERPLUS_CSV], NAME, REQUEST)
    load_records(root, image_dir=image_dir)
    if full:
        rows = len(_read_fer(C.first_existing(root, FER_CSV)))
        if rows != FER_ROWS:
            raise DatasetError(
                f"{NAME}: fer2013.csv has {rows} rows, the Kaggle release {FER_ROWS}; pass full=False"
            )
    C.check_manifest(root, NAME, manifest)


def split(records: Sequence[Record], fold: int = 1) -> dict[str, list[Record]]:
    """Training / PublicTest / PrivateTest as train / val / test."""
    return C.split_by_partition(records, fold, FOLDS, NAME)


def write_miniature(
    root: str | os.PathLike,
    images: Sequence[np.ndarray],
    labels: Sequence[int],
    splits: Sequence[str],
    votes: Sequence[Sequence[int]] | None = None,
) -> Path:
    """Write fer2013.csv + fer2013new.csv for a few faces (RGB or grey, resized to 48x48 grey).

    labels: 0-based FER+ classes; -1 writes a row FER+ removed (empty name, 10 NF votes). splits: train / val /
    test. votes: optional 10 vote counts per image (default: all 10 votes for the label). Returns root.
    """
    if not len(images) == len(labels) == len(splits):
        raise ValueError("images, labels and splits must have the same length")
    usage_of = {part: usage for usage, (part, _) in USAGES.items()}
    root = Path(root)
    fer, plus = ["emotion,pixels,Usage"], [",".join(("Usage", "Image name", *VOTE_COLUMNS))]
    for i, (image, label, part) in enumerate(zip(images, labels, splits)):
        image = np.asarray(image, dtype=np.uint8)
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        grey = cv2.resize(grey, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        row_votes = list(votes[i]) if votes is not None else [10 if j == label else 0 for j in range(10)]
        if label == -1 and votes is None:
            row_votes[-1] = 10
        name = "" if label == -1 else f"fer{i:07d}.png"
        fer.append(f"0,{' '.join(map(str, grey.ravel()))},{usage_of[part]}")
        plus.append(",".join([usage_of[part], name, *map(str, row_votes)]))
    C.write_lines(root / FER_CSV[0], fer)
    C.write_lines(root / FERPLUS_CSV[0], plus)
    return root
