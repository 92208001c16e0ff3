"""Helpers shared by the dataset adapters: checked parsing with "file:line" errors, layout checks, folds,
and writers for the miniature copies (images with OpenCV, mp4 clips that decord can read).

Conventions every adapter follows:
- every error is a :class:`DatasetError` that names the file (and line) and says what was expected;
- samples that the published protocol excludes (AffectNet codes 8-10, FERPlus ties, ...) are left out of the
  records and, when the caller passes a ``dropped`` list, appended to it as :class:`Dropped` entries so the
  annotation summary can count them; nothing is dropped without a reason;
- a listed file that is missing raises (``verify`` always does); ``load_records(root, dropped=[])`` instead
  skips such samples and lists them in ``dropped`` (the reference scripts skip them silently).
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fer.io import atomic_path

from .base import DatasetError, Record

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
MANIFEST_NAME = "SHA256SUMS"
_MAX_LISTED = 20


@dataclass(frozen=True)
class Dropped:
    """A sample left out of the records: where it was listed (``file:line`` or key) and why."""

    where: str
    reason: str


def note_dropped(dropped: list | None, where: str, reason: str) -> None:
    if dropped is not None:
        dropped.append(Dropped(where, reason))


# ---------------------------------------------------------------------------------------------- layout checks


def _listing(items: Sequence[str]) -> str:
    shown = "\n  ".join(items[:_MAX_LISTED])
    more = f"\n  ... and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else ""
    return f"  {shown}{more}"


def check_root(root: str | os.PathLike, name: str, request: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(
            f"{name}: dataset root {root} is not a directory; request the dataset at {request}"
        )
    return root


def require(root: Path, expected: Iterable[str | Sequence[str]], name: str, request: str) -> None:
    """Raise one error listing every expected path (relative to root) that is missing.

    An entry may be a tuple of alternatives (any one of them suffices), for files the owners spell two ways.
    """
    missing = []
    for entry in expected:
        alternatives = (entry,) if isinstance(entry, str) else tuple(entry)
        if not any((root / alt).exists() for alt in alternatives):
            missing.append(" or ".join(alternatives))
    if missing:
        raise DatasetError(
            f"{name}: {len(missing)} expected file(s)/folder(s) missing under {root}:\n{_listing(missing)}\n"
            f"Unpack the dataset as its owners distribute it; request it at {request}"
        )


def first_existing(root: Path, alternatives: Sequence[str]) -> Path:
    for alt in alternatives:
        if (root / alt).exists():
            return root / alt
    return root / alternatives[0]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def check_manifest(root: Path, name: str, manifest: str | os.PathLike | None = None) -> int:
    """Check files against a ``sha256sum``-format manifest ("<hex>  <relative path>" per line).

    The manifest is optional: by default ``<root>/SHA256SUMS`` is used when present. Returns the number of
    files checked; raises naming every missing or mismatching file.
    """
    path = Path(manifest) if manifest is not None else root / MANIFEST_NAME
    if not path.is_file():
        if manifest is not None:
            raise DatasetError(f"{name}: checksum manifest {path} not found")
        return 0
    problems, count = [], 0
    for lineno, line in read_lines(path):
        m = re.fullmatch(r"([0-9a-fA-F]{64}) [ *](.+)", line)
        if not m:
            raise DatasetError(f"{path}:{lineno}: expected '<sha256 hex>  <relative path>', got {line!r}")
        target = root / m.group(2)
        count += 1
        if not target.is_file():
            problems.append(f"{m.group(2)}: missing")
        elif sha256_file(target) != m.group(1).lower():
            problems.append(f"{m.group(2)}: sha256 mismatch (corrupt or a different release)")
    if problems:
        raise DatasetError(
            f"{name}: {len(problems)} file(s) fail the checksums of {path}:\n{_listing(problems)}\n"
            f"Re-download or re-extract them."
        )
    return count


def exists_or_note(path: Path, where: str, dropped: list | None, missing: list[str]) -> bool:
    """True if the listed file exists; otherwise note it in ``dropped`` (caller opted in) or in ``missing``."""
    if path.exists():
        return True
    if dropped is None:
        missing.append(f"{path} ({where})")
    else:
        note_dropped(dropped, where, f"listed file not found: {path}")
    return False


def missing_files_error(name: str, missing: Sequence[str], fix: str) -> DatasetError:
    return DatasetError(
        f"{name}: {len(missing)} listed file(s) not found:\n{_listing(list(missing))}\n{fix} "
        f"(or pass a `dropped` list to load_records to skip them and count them)"
    )


# ---------------------------------------------------------------------------------------------- parsing


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped text) of every non-blank line; a missing file is a DatasetError."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    with open(path, encoding="utf-8-sig", errors="strict") as f:
        for lineno, line in enumerate(f, start=1):
            text = line.strip()
            if text:
                yield lineno, text


def read_csv(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV with a header, as (line number, row); checks the header and every row's width."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise DatasetError(f"{path}:1: empty file; expected a header with columns {', '.join(required)}")
        header = [h.strip() for h in header]
        absent = [c for c in required if c not in header]
        if absent:
            raise DatasetError(
                f"{path}:1: header lacks column(s) {', '.join(absent)}; expected {', '.join(required)}, "
                f"got {', '.join(header)}"
            )
        for row in reader:
            lineno = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DatasetError(
                    f"{path}:{lineno}: expected {len(header)} comma-separated fields ({', '.join(header)}), "
                    f"got {len(row)}: {','.join(row)!r}"
                )
            yield lineno, {h: cell.strip() for h, cell in zip(header, row)}


def parse_int(text: str, where: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is not None and value.is_integer():
            return int(value)
        raise DatasetError(f"{where}: expected {what} (an integer), got {text!r}") from None


def parse_label(text: str, where: str, valid: dict[int, str], offset: int) -> int:
    """Map the dataset's own integer code to a 0-based label (code - offset); unknown codes name the valid ones."""
    code = parse_int(text, where, "a class code")
    if code not in valid:
        listing = ", ".join(f"{k}={v}" for k, v in sorted(valid.items()))
        raise DatasetError(f"{where}: unknown label {code}; valid labels: {listing}")
    return code - offset


def check_unique(keys: Iterable[tuple[str, str]], name: str) -> None:
    """keys: (id, where it was listed); raise naming both places of the first duplicate."""
    seen: dict[str, str] = {}
    for key, where in keys:
        if key in seen:
            raise DatasetError(f"{name}: duplicate id {key!r} listed at {seen[key]} and at {where}")
        seen[key] = where


def index_images(folder: Path) -> dict[int, Path]:
    """Frame number -> image path for a folder of numbered frames (``0001.jpg``, ``frame_12.png``, ``12.jpg``)."""
    frames: dict[int, Path] = {}
    if not folder.is_dir():
        return frames
    for entry in folder.iterdir():
        if entry.suffix.lower() not in IMAGE_EXTS:
            continue
        digits = re.findall(r"\d+", entry.stem)
        if not digits:
            continue
        number = int(digits[-1])
        if number in frames:
            raise DatasetError(
                f"{folder}: two images for frame {number}: {frames[number].name}, {entry.name}"
            )
        frames[number] = entry
    return frames


# ---------------------------------------------------------------------------------------------- folds


def check_fold(fold: int, folds: Sequence[int], name: str) -> None:
    if fold not in folds:
        raise DatasetError(f"{name}: fold {fold!r} does not exist; the protocol's folds are {tuple(folds)}")


def ordered(records: Iterable[Record]) -> list[Record]:
    return sorted(records, key=lambda r: r.key)


def split_by_partition(records: Sequence[Record], fold: int, folds: Sequence[int], name: str) -> dict:
    """Single official partition: train = 'train' records; val = test where the protocol has no val split."""
    check_fold(fold, folds, name)
    train = ordered(r for r in records if r.split == "train")
    test = ordered(r for r in records if r.split == "test")
    val = ordered(r for r in records if r.split == "val") or test
    return {"train": train, "val": val, "test": test}


def split_by_fold(records: Sequence[Record], fold: int, folds: Sequence[int], name: str) -> dict:
    """k-fold protocols: a record's ``fold`` is the fold whose test set holds it; val = test (MAE-DFER)."""
    check_fold(fold, folds, name)
    unassigned = [r.key for r in records if r.fold is None]
    if unassigned:
        raise DatasetError(f"{name}: records without a fold, e.g. {unassigned[:3]}; they cannot be split")
    train = ordered(r for r in records if r.fold != fold)
    test = ordered(r for r in records if r.fold == fold)
    return {"train": train, "val": test, "test": test}


def assemble_kfold(
    tests: dict[int, dict[str, tuple[int, str]]],
    trains: dict[int, tuple[Path, dict[str, tuple[int, str]]]],
    name: str,
) -> dict[str, tuple[int, int, str]]:
    """Check official k-fold list files and return clip key -> (fold whose test set holds it, label, where).

    tests[k] / trains[k]: key -> (label, 'file:line') of test / train list k. The test sets must be disjoint,
    train list k must be exactly the clips of the other test sets, with the same labels: then fold k's split
    is "test = fold k, train = the rest" and one fold id per record describes the protocol.
    """
    owner: dict[str, tuple[int, int, str]] = {}
    for k, clips in tests.items():
        for key, (label, where) in clips.items():
            if key in owner:
                raise DatasetError(
                    f"{name}: duplicate id {key!r} in two test sets: {owner[key][2]} and {where}"
                )
            owner[key] = (k, label, where)
    for k, (path, train) in trains.items():
        for key, (label, where) in train.items():
            if key not in owner:
                raise DatasetError(
                    f"{where}: clip {key} is in no test set; the folds must partition the clips"
                )
            fold, test_label, test_where = owner[key]
            if fold == k:
                raise DatasetError(f"{where}: clip {key} is also in the test set of fold {k} ({test_where})")
            if label != test_label:
                raise DatasetError(
                    f"{where}: clip {key} has label {label} here but {test_label} at {test_where} (0-based)"
                )
        absent = sorted(key for key, (fold, _, _) in owner.items() if fold != k and key not in train)
        if absent:
            raise DatasetError(
                f"{path}: fold {k} leaves {len(absent)} clip(s) out of both train and test, e.g. {absent[:5]}"
            )
    return owner


def subject_folds(subject: str, partitions: dict[int, Sequence[str]], name: str, where: str) -> int:
    for fold, subjects in partitions.items():
        if subject in subjects:
            return fold
    raise DatasetError(f"{where}: subject {subject!r} is in none of the {name} subject folds")


# ---------------------------------------------------------------------------------------------- miniature writers


def as_rgb_uint8(image: np.ndarray, what: str) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{what}: expected an HxWx3 uint8 RGB array, got {image.dtype} {image.shape}")
    return image


def write_image(path: Path, image: np.ndarray) -> None:
    """Write an RGB uint8 image (format from the suffix)."""
    image = as_rgb_uint8(image, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write image {path}")


def write_video(path: Path, frames: np.ndarray | Sequence[np.ndarray], fps: int) -> None:
    """Write RGB frames as an mp4 ('mp4v'); decord reads it back frame for frame."""
    frames = [as_rgb_uint8(f, str(path)) for f in frames]
    if not frames:
        raise ValueError(f"{path}: a video needs at least one frame")
    h, w = frames[0].shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot open an mp4v writer for {path}")
    try:
        for frame in frames:
            if frame.shape[:2] != (h, w):
                raise ValueError(f"{path}: all frames must be {h}x{w}, got {frame.shape[:2]}")
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary file + rename, so an interrupted run never leaves half a file."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_lines(path: Path, lines: Iterable[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def check_counts(
    source: Path, records: Sequence[Record], expected: dict[str, int], name: str, request: str
) -> None:
    """Compare records per split with the published counts (an incomplete or different release fails)."""
    got = {part: sum(r.split == part for r in records) for part in expected}
    if got != expected:
        raise DatasetError(
            f"{name}: {source} lists {got}, the published release has {expected}; the copy is incomplete or a "
            f"different release (request it at {request}), or pass full=False for a subset"
        )
