"""BP4D+ / MMSE (Zhang et al., CVPR 2016), 12-AU occurrence detection, the 4 subject folds of FMAE-IAT.

Format: as BP4D (:mod:`fer.datasets.bp4d`): frames ``2D+3D/<S>/<T>/<n>.jpg`` and AU occurrence codes
``AUCoding/AU_OCC/<S>_<T>.csv`` (``AU_OCC/`` at the top level is accepted too); the BP4D+ CSVs have one column per
coded AU (1, 2, 4, 5, 6, 7, 9, 10, ...), which the header names, so columns are found by AU number, as
FMAE-IAT ``AU/BP4D_plus_preprocess.py`` does by position. 140 subjects (F001-F082, M001-M058); AUs are coded
for tasks T1, T6, T7, T8. The 12 AUs are BP4D's.

FMAE-IAT keeps only frames with at least one of the 12 AUs present (167,109 frames); ``active_only=True``
(default) does the same and reports the other frames in ``dropped``. Folds: the README's 4 subject lists
(``SUBJECTS_1..4`` of the same script), fold k tests on list k and trains on the other three.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import _common as C
from . import bp4d
from .base import DatasetError, Record

NAME = "bp4dplus"
TASK = "au"
MEDIA = "image"
AUS = bp4d.AUS
FOLDS = (1, 2, 3, 4)
REQUEST = "https://www.cs.binghamton.edu/~lijun/Research/3DFE/3DFE_Analysis.html (BP4D+ license)"

LABEL_DIRS = ("AUCoding/AU_OCC", "AU_OCC")
FRAME_DIRS = ("2D+3D", "2D")
CODED_TASKS = ("T1", "T6", "T7", "T8")
CSV_AUS = (1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 22, 23, 24, 27, 28)
# FMAE-IAT README, "BP4D+" table, verbatim order.
PARTITIONS = {
    1: ("M040", "F072", "M015", "M029", "M003", "F076", "F053", "F026", "F044", "F066", "F057", "F061", "F071",
        "M050", "M033", "F079", "F020", "M025", "F014", "F004", "F013", "M017", "F033", "M042", "M004", "F038",
        "F019", "M036", "M026", "M048", "F039", "F046", "M051", "F047", "M020"),
    2: ("F074", "F012", "F034", "M001", "F056", "F075", "M009", "M038", "F024", "M047", "F016", "M045", "M034",
        "M022", "F060", "M011", "M044", "M046", "M005", "M028", "F077", "F028", "M055", "M019", "F032", "F030",
        "M037", "M043", "F031", "F022", "M023", "M018", "M016", "F065", "M052"),
    3: ("F029", "F054", "F064", "F045", "F009", "F040", "F008", "M041", "F063", "M056", "M024", "F001", "F080",
        "M010", "F062", "F035", "M054", "F052", "F027", "F043", "F042", "F050", "M057", "F078", "F058", "F017",
        "M035", "M030", "M027", "F021", "M031", "F069", "F002", "M008", "F068"),
    4: ("M058", "F037", "F010", "F023", "M007", "M002", "F025", "F073", "F048", "F041", "F051", "F011", "M032",
        "F005", "M021", "F018", "M013", "M049", "M014", "F070", "F006", "F067", "M039", "M006", "F059", "F003",
        "F007", "F049", "M053", "F081", "F055", "M012", "F082", "F015", "F036"),
}  # fmt: skip
SUBJECTS = tuple(sorted(s for part in PARTITIONS.values() for s in part))


def load_records(
    root: str | os.PathLike, active_only: bool = True, dropped: list | None = None
) -> list[Record]:
    """One record per coded frame (with at least one present AU when active_only, as FMAE-IAT)."""
    root = C.check_root(root, NAME, REQUEST)
    records = bp4d.load_au_frames(root, NAME, LABEL_DIRS, FRAME_DIRS, AUS, PARTITIONS, dropped)
    if not active_only:
        return records
    kept = []
    for r in records:
        if 1 in r.aus:
            kept.append(r)
        else:
            C.note_dropped(
                dropped, r.key, "no AU present among the 12 (FMAE-IAT keeps frames with an active AU)"
            )
    if not kept:
        raise DatasetError(f"{NAME}: no coded frame under {root} has any of AUs {AUS} present")
    return kept


def verify(root: str | os.PathLike, full: bool = True, manifest: str | os.PathLike | None = None) -> None:
    """Check AU_OCC and frames (all 140 subjects x T1/T6/T7/T8 when full), every coded frame, SHA256SUMS."""
    root = C.check_root(root, NAME, REQUEST)
    bp4d.verify_au_release(root, NAME, REQUEST, LABEL_DIRS, FRAME_DIRS, CODED_TASKS, PARTITIONS, full)
    load_records(root)
    C.check_manifest(root, NAME, manifest)


def split(records: Sequence[Record], fold: int) -> dict[str, list[Record]]:
    """Fold k: test = subjects of the README's fold-k list, train = the other three lists, val = test."""
    return C.split_by_fold(records, fold, FOLDS, NAME)


def write_miniature(
    root: str | os.PathLike,
    sequences: dict[tuple[str, str], Sequence[np.ndarray]],
    aus: dict[tuple[str, str], np.ndarray],
    first_frame: int = 1,
) -> Path:
    """Write a small BP4D+ (same signature as :func:`fer.datasets.bp4d.write_miniature`); CSV columns = CSV_AUS."""
    root = Path(root)
    for (subject, task), frames in sequences.items():
        if subject not in SUBJECTS or task not in CODED_TASKS:
            raise ValueError(f"({subject}, {task}) is not a coded BP4D+ subject/task (tasks {CODED_TASKS})")
        numbers = list(range(first_frame, first_frame + len(frames)))
        for number, frame in zip(numbers, frames):
            C.write_image(root / FRAME_DIRS[0] / subject / task / f"{number:04d}.jpg", frame)
        bp4d.write_au_occ(
            root / LABEL_DIRS[0] / f"{subject}_{task}.csv", numbers, aus[(subject, task)], AUS, CSV_AUS
        )
    return root
