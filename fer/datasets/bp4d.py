"""BP4D-Spontaneous (Zhang et al., IVC 2014), 12-AU occurrence detection with 3 subject-exclusive folds.

Format (the release's ``2D+3D`` frames and ``AUCoding/AU_OCC`` codes; FERA 2015 ships the frames as
``BP4D-training``; read the same way by ME-GraphAU ``tool/BP4D_image_label_process.py``)::

    2D+3D/F001/T1/0001.jpg ...        frames of subject F001, task T1 (frame number = the digits of the name)
    AUCoding/AU_OCC/F001_T1.csv       header "0,1,2,...": first column the frame number, then one column per AU
                                      number; 1 = present, 0 = absent, 9 = not coded

41 subjects (F001-F023, M001-M018) x 8 tasks (T1-T8). The 12 AUs of the AU literature (and FMAE-IAT
``AU/BP4D_preprocess.py``): 1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24. A 9 becomes -1 (unknown, masked out of
loss and F1). FMAE-IAT's JSON writes absent AUs as 999 and folds 9 into "absent"; we keep 9 as unknown.

Folds: the 3 subject partitions of MPSCL / JAA-Net / ME-GraphAU, numbered as FMAE-IAT does (fold k tests on
partition k, the README's "subject_partition" figure and ``SUBJECTS_1..3`` of ``AU/BP4D_preprocess.py``).
ME-GraphAU numbers the same partitions the other way round (its fold 1 tests on partition 3).

A labeled frame whose image is missing raises, or is dropped and reported when a ``dropped`` list is passed
(ME-GraphAU lists every coded frame; FMAE-IAT extracts exactly the coded frames and asserts they exist).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import _common as C
from .base import DatasetError, Record

NAME = "bp4d"
TASK = "au"
MEDIA = "image"
AUS = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
FOLDS = (1, 2, 3)
REQUEST = "https://www.cs.binghamton.edu/~lijun/Research/3DFE/3DFE_Analysis.html (BP4D-Spontaneous license)"

LABEL_DIRS = ("AUCoding/AU_OCC",)
FRAME_DIRS = ("2D+3D", "BP4D-training")
TASKS = tuple(f"T{i}" for i in range(1, 9))
# MPSCL / JAA-Net partitions, as FMAE-IAT's AU/BP4D_preprocess.py lists them (F01 there = F001 here).
PARTITIONS = {
    1: (
        "F001",
        "F002",
        "F008",
        "F009",
        "F010",
        "F016",
        "F018",
        "F023",
        "M001",
        "M004",
        "M007",
        "M008",
        "M012",
        "M014",
    ),
    2: (
        "F003",
        "F005",
        "F011",
        "F013",
        "F020",
        "F022",
        "M002",
        "M005",
        "M010",
        "M011",
        "M013",
        "M016",
        "M017",
        "M018",
    ),
    3: (
        "F004",
        "F006",
        "F007",
        "F012",
        "F014",
        "F015",
        "F017",
        "F019",
        "F021",
        "M003",
        "M006",
        "M009",
        "M015",
    ),
}
SUBJECTS = tuple(sorted(s for part in PARTITIONS.values() for s in part))
_CSV_RE = re.compile(r"([FM]\d{3})_(T\d+)\.csv")
_OCC = {"0": 0, "1": 1, "9": -1}


def read_au_occ(path: Path, aus: Sequence[int]) -> list[tuple[int, int, tuple[int, ...]]]:
    """(line, frame number, occurrence per AU in ``aus``) for every row of one AU_OCC CSV.

    The first column is the frame number whatever its header; the other headers name AU numbers ("1",
    "AU01" both accepted). Values 0 / 1 / 9 -> 0 / 1 / -1; anything else is an error naming file:line.
    """
    rows = list(C.read_lines(path))
    if not rows:
        raise DatasetError(f"{path}:1: empty file; expected a header 'frame,<AU numbers>...'")
    header_line, header = rows[0]
    columns: dict[int, int] = {}
    for i, name in enumerate(header.split(",")[1:], start=1):
        m = re.fullmatch(r"(?:AU)?0*(\d+)", name.strip(), flags=re.IGNORECASE)
        if m:
            columns[int(m.group(1))] = i
    absent = [au for au in aus if au not in columns]
    if absent:
        raise DatasetError(
            f"{path}:{header_line}: header has no column for AU {', '.join(map(str, absent))}; expected the frame "
            f"column then AU numbers, got {header[:80]!r}"
        )
    width = len(header.split(","))
    out, seen = [], {}
    for lineno, line in rows[1:]:
        cells = [c.strip() for c in line.split(",")]
        where = f"{path}:{lineno}"
        if len(cells) != width:
            raise DatasetError(
                f"{where}: expected {width} comma-separated fields like the header, got {len(cells)}"
            )
        frame = C.parse_int(cells[0], where, "the frame number in the first column")
        if frame in seen:
            raise DatasetError(f"{path}: duplicate frame {frame} at lines {seen[frame]} and {lineno}")
        seen[frame] = lineno
        values = []
        for au in aus:
            cell = cells[columns[au]]
            key = str(C.parse_int(cell, where, f"the AU{au} code")) if cell else cell
            if key not in _OCC:
                raise DatasetError(
                    f"{where}: AU{au} has value {cell!r}; valid codes: 0 absent, 1 present, 9 unknown"
                )
            values.append(_OCC[key])
        out.append((lineno, frame, tuple(values)))
    return out


def load_au_frames(
    root: Path,
    name: str,
    label_dirs: Sequence[str],
    frame_dirs: Sequence[str],
    aus: Sequence[int],
    partitions: dict[int, Sequence[str]],
    dropped: list | None,
) -> list[Record]:
    """Records of a BP4D-style release: one per coded frame, subject and fold from the file name."""
    label_dir = C.first_existing(root, label_dirs)
    frame_dir = C.first_existing(root, frame_dirs)
    if not label_dir.is_dir():
        raise DatasetError(f"{name}: AU label folder {' or '.join(label_dirs)} not found under {root}")
    records, missing = [], []
    for csv_path in sorted(label_dir.iterdir()):
        m = _CSV_RE.fullmatch(csv_path.name)
        if not m:
            raise DatasetError(
                f"{csv_path}: unexpected file in {label_dir}; expected <subject>_<task>.csv (F001_T1.csv)"
            )
        subject, task = m.groups()
        fold = C.subject_folds(subject, partitions, name, str(csv_path))
        images = C.index_images(frame_dir / subject / task)
        for lineno, frame, occ in read_au_occ(csv_path, aus):
            where = f"{csv_path}:{lineno}"
            image = images.get(frame, frame_dir / subject / task / f"{frame:04d}.jpg")
            if not C.exists_or_note(image, where, dropped, missing):
                continue
            key = f"{subject}/{task}/{frame:04d}"
            records.append(Record(key=key, path=image, aus=occ, subject=subject, split="test", fold=fold))
    if missing:
        raise C.missing_files_error(
            name,
            missing,
            f"Unpack the frames into {frame_dir}, or pass a `dropped` list to skip and count them.",
        )
    if not records:
        raise DatasetError(f"{name}: no coded frames found in {label_dir}")
    return C.ordered(records)


def verify_au_release(
    root: Path, name: str, request: str, label_dirs, frame_dirs, tasks, partitions, full: bool
) -> list[str]:
    """Expected label files (every subject x task when full) and the frame folder of each present label file."""
    C.require(root, [tuple(label_dirs), tuple(frame_dirs)], name, request)
    label_dir, frame_dir = C.first_existing(root, label_dirs), C.first_existing(root, frame_dirs)
    present = sorted(p.name for p in label_dir.glob("*.csv"))
    expected = (
        [f"{s}_{t}.csv" for part in partitions.values() for s in part for t in tasks] if full else present
    )
    missing = [str(label_dir.relative_to(root) / f) for f in expected if not (label_dir / f).is_file()]
    for f in present:
        m = _CSV_RE.fullmatch(f)
        if m and not (frame_dir / m.group(1) / m.group(2)).is_dir():
            missing.append(str((frame_dir / m.group(1) / m.group(2)).relative_to(root)))
    if missing:
        C.require(root, missing, name, request)
    return present


def verify(root: str | os.PathLike, full: bool = True, manifest: str | os.PathLike | None = None) -> None:
    """Check AU_OCC and frame folders (all 41 x 8 sequences when full), every coded frame, optional SHA256SUMS."""
    root = C.check_root(root, NAME, REQUEST)
    verify_au_release(root, NAME, REQUEST, LABEL_DIRS, FRAME_DIRS, TASKS, PARTITIONS, full)
    load_records(root)
    C.check_manifest(root, NAME, manifest)


def load_records(root: str | os.PathLike, dropped: list | None = None) -> list[Record]:
    root = C.check_root(root, NAME, REQUEST)
    return load_au_frames(root, NAME, LABEL_DIRS, FRAME_DIRS, AUS, PARTITIONS, dropped)


def split(records: Sequence[Record], fold: int) -> dict[str, list[Record]]:
    """Fold k: test = subjects of partition k, train = the other two partitions, val = test."""
    return C.split_by_fold(records, fold, FOLDS, NAME)


def write_au_occ(
    path: Path, frames: Sequence[int], occ: np.ndarray, aus: Sequence[int], columns: Sequence[int]
) -> None:
    """Write one AU_OCC CSV: header "0,<columns>", AUs outside ``aus`` coded 0, unknown (-1) coded 9."""
    occ = np.asarray(occ)
    if occ.shape != (len(frames), len(aus)):
        raise ValueError(f"{path.name}: AU array must be [{len(frames)}, {len(aus)}], got {list(occ.shape)}")
    if not np.isin(occ, (-1, 0, 1)).all():
        raise ValueError(f"{path.name}: AU values must be 0, 1 or -1 (unknown)")
    index = {au: i for i, au in enumerate(aus)}
    lines = [",".join(["0", *map(str, columns)])]
    for frame, row in zip(frames, occ):
        values = [int(row[index[c]]) if c in index else 0 for c in columns]
        lines.append(",".join(map(str, [frame, *(9 if v == -1 else v for v in values)])))
    C.write_lines(path, lines)


def write_miniature(
    root: str | os.PathLike,
    sequences: dict[tuple[str, str], Sequence[np.ndarray]],
    aus: dict[tuple[str, str], np.ndarray],
    first_frame: int = 1,
) -> Path:
    """Write a small BP4D: ``2D+3D/<S>/<T>/NNNN.jpg`` frames and ``AUCoding/AU_OCC/<S>_<T>.csv`` codes.

    sequences: (subject, task) -> RGB frames; aus: (subject, task) -> [T, 12] of 0/1 (-1 written as 9).
    Subjects must be BP4D subject ids (their fold comes from PARTITIONS). Returns root.
    """
    root = Path(root)
    for (subject, task), frames in sequences.items():
        if subject not in SUBJECTS or task not in TASKS:
            raise ValueError(f"({subject}, {task}) is not a BP4D subject/task; subjects are {SUBJECTS}")
        numbers = list(range(first_frame, first_frame + len(frames)))
        for number, frame in zip(numbers, frames):
            C.write_image(root / FRAME_DIRS[0] / subject / task / f"{number:04d}.jpg", frame)
        write_au_occ(
            root / LABEL_DIRS[0] / f"{subject}_{task}.csv", numbers, aus[(subject, task)], AUS, range(1, 25)
        )
    return root
