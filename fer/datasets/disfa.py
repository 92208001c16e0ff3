"""DISFA (Mavadati et al., IEEE TAC 2013), 8-AU occurrence from intensity codes, 3 subject folds.

Format (the DISFA release; read by FMAE-IAT ``AU/DISFA_preprocess.py``)::

    ActionUnit_Labels/SN001/SN001_au1.txt ...       "frame,intensity" per line, frame 1-based, intensity 0-5
    Videos_LeftCamera/LeftVideoSN001_comp.avi       the two cameras, 4,845 frames at 20 fps
    Videos_RightCamera/RightVideoSN001_comp.avi

AUs 1, 2, 4, 6, 9, 12, 25, 26 (the 8 of the AU literature); occurrence = intensity >= 2 (JAA-Net, ME-GraphAU and
FMAE-IAT all use this threshold). 27 subjects, folds = the MPSCL partitions (``SUBJECTS_1..3`` of FMAE-IAT's
script); fold k tests on partition k.

FMAE-IAT takes frames from both cameras and keeps only frames with at least one AU present; the defaults
``cameras=("left", "right"), active_only=True`` do the same (dropped frames are reported). Frames are read
from the videos once and stored as ``<frame_dir>/<LeftVideoSN001>/<n>.jpg`` (default frame_dir = root/frames).
Each record's subject is the person (``SN001``), whichever the camera.
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

NAME = "disfa"
TASK = "au"
MEDIA = "image"
AUS = (1, 2, 4, 6, 9, 12, 25, 26)
LABELED_AUS = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)
FOLDS = (1, 2, 3)
THRESHOLD = 2
REQUEST = "http://mohammadmahoor.com/disfa/ (DISFA request form)"

LABEL_DIR = "ActionUnit_Labels"
VIDEO_DIRS = {
    "left": ("Videos_LeftCamera", "LeftVideo{}_comp.avi"),
    "right": ("Videos_RightCamera", "RightVideo{}_comp.avi"),
}
PARTITIONS = {
    1: ("SN001", "SN002", "SN009", "SN010", "SN016", "SN026", "SN027", "SN030", "SN032"),
    2: ("SN006", "SN011", "SN012", "SN013", "SN018", "SN021", "SN024", "SN028", "SN031"),
    3: ("SN003", "SN004", "SN005", "SN007", "SN008", "SN017", "SN023", "SN025", "SN029"),
}
SUBJECTS = tuple(sorted(s for part in PARTITIONS.values() for s in part))
_SUBJECT_RE = re.compile(r"SN\d{3}")


def read_intensity(path: Path) -> dict[int, tuple[int, str]]:
    """frame -> (intensity 0-5, 'file:line') of one SN001_au1.txt."""
    out: dict[int, tuple[int, str]] = {}
    for lineno, line in C.read_lines(path):
        where = f"{path}:{lineno}"
        cells = line.split(",")
        if len(cells) != 2:
            raise DatasetError(f"{where}: expected 'frame,intensity', got {line!r}")
        frame = C.parse_int(cells[0].strip(), where, "the frame number")
        value = C.parse_int(cells[1].strip(), where, "the AU intensity")
        if not 0 <= value <= 5:
            raise DatasetError(
                f"{where}: unknown label {value}; valid intensities: 0-5 (occurrence = >= {THRESHOLD})"
            )
        if frame in out:
            raise DatasetError(f"{path}: duplicate frame {frame} at {out[frame][1]} and line {lineno}")
        out[frame] = (value, where)
    return out


def subject_labels(root: Path, subject: str) -> dict[int, tuple[tuple[int, ...], str]]:
    """frame -> (occurrence of the 8 AUs, 'file:line' of the AU1 row) for one subject."""
    folder = root / LABEL_DIR / subject
    per_au = {au: read_intensity(folder / f"{subject}_au{au}.txt") for au in AUS}
    frames = set(per_au[AUS[0]])
    for au in AUS[1:]:
        if set(per_au[au]) != frames:
            odd = sorted(set(per_au[au]) ^ frames)[:5]
            raise DatasetError(
                f"{folder / f'{subject}_au{au}.txt'}: frames differ from {subject}_au{AUS[0]}.txt (e.g. {odd}); "
                f"every AU file of a subject must code the same frames"
            )
    return {
        f: (tuple(int(per_au[au][f][0] >= THRESHOLD) for au in AUS), per_au[AUS[0]][f][1])
        for f in sorted(frames)
    }


def _extract(video: Path, wanted: set[int], out_dir: Path) -> None:
    """Write the wanted 1-based frames of a video that are not on disk yet (one sequential pass)."""
    todo = {f for f in wanted if not (out_dir / f"{f:05d}.jpg").is_file()}
    if not todo:
        return
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise DatasetError(f"{video}: OpenCV cannot open the video; re-extract it from the DISFA archive")
    try:
        count, last = 0, max(todo)
        while count < last:
            ok, frame = cap.read()
            if not ok:
                break
            count += 1
            if count in todo:
                ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
                C.write_bytes_atomic(out_dir / f"{count:05d}.jpg", data.tobytes())
    finally:
        cap.release()


def load_records(
    root: str | os.PathLike,
    frame_dir: str | os.PathLike | None = None,
    cameras: Sequence[str] = ("left", "right"),
    active_only: bool = True,
    dropped: list | None = None,
) -> list[Record]:
    """One record per (camera, coded frame), frames extracted from the videos on first use."""
    root = C.check_root(root, NAME, REQUEST)
    frame_dir = Path(frame_dir) if frame_dir is not None else root / "frames"
    unknown = [c for c in cameras if c not in VIDEO_DIRS]
    if unknown or not cameras:
        raise DatasetError(
            f"{NAME}: cameras must be a non-empty subset of {tuple(VIDEO_DIRS)}, got {cameras!r}"
        )
    label_root = root / LABEL_DIR
    if not label_root.is_dir():
        raise DatasetError(f"{NAME}: {label_root} not found; request DISFA at {REQUEST}")
    records, missing = [], []
    for folder in sorted(label_root.iterdir()):
        if not (folder.is_dir() and _SUBJECT_RE.fullmatch(folder.name)):
            raise DatasetError(f"{folder}: expected subject folders named SN001 in {label_root}")
        subject = folder.name
        fold = C.subject_folds(subject, PARTITIONS, NAME, str(folder))
        labels = subject_labels(root, subject)
        wanted = {}
        for frame, (occ, where) in labels.items():
            if active_only and 1 not in occ:
                C.note_dropped(
                    dropped,
                    where,
                    f"frame {frame}: no AU at intensity >= {THRESHOLD} (FMAE-IAT keeps active frames)",
                )
            else:
                wanted[frame] = (occ, where)
        for camera in cameras:
            video_folder, pattern = VIDEO_DIRS[camera]
            video = root / video_folder / pattern.format(subject)
            stem = pattern.format(subject)[: -len("_comp.avi")]
            if not video.is_file():
                missing.append(f"{video} (videos of {subject})")
                continue
            _extract(video, set(wanted), frame_dir / stem)
            for frame, (occ, where) in wanted.items():
                image = frame_dir / stem / f"{frame:05d}.jpg"
                if not image.is_file():
                    if dropped is None:
                        missing.append(f"{image} (frame {frame} of {video.name}, coded at {where})")
                    else:
                        C.note_dropped(dropped, where, f"frame {frame} is beyond the end of {video.name}")
                    continue
                key = f"{stem}/{frame:05d}"
                records.append(Record(key=key, path=image, aus=occ, subject=subject, split="test", fold=fold))
    if missing:
        raise C.missing_files_error(NAME, missing, f"Unpack the DISFA videos into {root}.")
    if not records:
        raise DatasetError(f"{NAME}: no usable coded frames under {root}")
    return C.ordered(records)


def verify(
    root: str | os.PathLike,
    frame_dir: str | os.PathLike | None = None,
    full: bool = True,
    manifest: str | os.PathLike | None = None,
) -> None:
    """Check labels of the 8 AUs and both videos (all 27 subjects when full), then every coded frame."""
    root = C.check_root(root, NAME, REQUEST)
    C.require(root, [LABEL_DIR, *(d for d, _ in VIDEO_DIRS.values())], NAME, REQUEST)
    present = sorted(p.name for p in (root / LABEL_DIR).iterdir() if p.is_dir())
    expected = []
    for subject in SUBJECTS if full else present:
        expected += [f"{LABEL_DIR}/{subject}/{subject}_au{au}.txt" for au in AUS]
        expected += [f"{d}/{p.format(subject)}" for d, p in VIDEO_DIRS.values()]
    C.require(root, expected, NAME, REQUEST)
    load_records(root, frame_dir=frame_dir)
    C.check_manifest(root, NAME, manifest)


def split(records: Sequence[Record], fold: int) -> dict[str, list[Record]]:
    """Fold k: test = subjects of partition k, train = the other two partitions, val = test."""
    return C.split_by_fold(records, fold, FOLDS, NAME)


def write_miniature(
    root: str | os.PathLike,
    videos: dict[str, np.ndarray],
    intensities: dict[str, np.ndarray],
    fps: int = 20,
) -> Path:
    """Write a small DISFA: both camera videos per subject and the 12 AU intensity files.

    videos: subject (SN001) -> TxHxWx3 uint8 RGB (used for both cameras, the right one mirrored);
    intensities: subject -> [T, 8] ints 0-5 for AUS (the other labeled AUs are written as 0). Returns root.
    """
    root = Path(root)
    for subject, clip in videos.items():
        if subject not in SUBJECTS:
            raise ValueError(f"{subject!r} is not a DISFA subject; subjects are {SUBJECTS}")
        values = np.asarray(intensities[subject])
        if values.shape != (len(clip), len(AUS)) or values.min() < 0 or values.max() > 5:
            raise ValueError(f"{subject}: intensities must be [{len(clip)}, {len(AUS)}] ints 0-5")
        for camera, (folder, pattern) in VIDEO_DIRS.items():
            frames = clip if camera == "left" else np.ascontiguousarray(np.asarray(clip)[:, :, ::-1])
            C.write_video(root / folder / pattern.format(subject), frames, fps)
        for au in LABELED_AUS:
            column = values[:, AUS.index(au)] if au in AUS else np.zeros(len(clip), dtype=int)
            lines = [f"{t},{int(v)}" for t, v in enumerate(column, start=1)]
            C.write_lines(root / LABEL_DIR / subject / f"{subject}_au{au}.txt", lines)
    return root
