"""AffectNet (Mollahosseini, Hasani & Mahoor, IEEE TAC 2017), manually annotated images, 8 or 7 classes.

Format (the owners' release, read the same way by MAE-SFER's AffectNet lists)::

    Manually_Annotated_file_lists/training.csv     header "subDirectory_filePath,face_x,face_y,face_width,
    Manually_Annotated_file_lists/validation.csv   face_height,facial_landmarks,expression,valence,arousal"
    Manually_Annotated_Images/<subDirectory_filePath>   e.g. 689/737db2...c1.jpg

(a validation.csv without the header row is accepted too: some copies lack it). Expression codes: 0 Neutral,
1 Happiness, 2 Sadness, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger, 7 Contempt, 8 None, 9 Uncertain, 10 Non-Face.
Codes 8-10 are excluded (and counted in ``dropped``). AffectNet-8 keeps 0-7; AffectNet-7 (``num_classes=7``)
also drops Contempt, so labels 0-6 keep their meaning. The test set is unpublished: the validation set is the
test set (``val`` = ``test``), as in MAE-SFER and FMAE-IAT. Published sizes: 287,651 / 4,000 images (8 classes),
283,901 / 3,500 (7 classes).

The newer release FMAE-IAT uses (``AU/AffectNet_peocess.py``) is accepted as well: ``train_set/images/<n>.jpg``
with ``train_set/annotations/<n>_exp.npy`` and ``val_set/...`` (codes 0-7 only).

``pretrain_records(root)`` lists unlabeled images for MAE pretraining (MAE-SFER pretrains on the
``Manually_Annotated_Images`` folder): every training image, dummy label 0, split ``unlabeled``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import _common as C
from .base import DatasetError, Record

NAME = "affectnet"
TASK = "expression"
MEDIA = "image"
CLASSES = ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger", "contempt")
CLASSES_7 = CLASSES[:7]
FOLDS = (1,)
REQUEST = "http://mohammadmahoor.com/affectnet/ (AffectNet request form, academic license)"

LIST_DIR = "Manually_Annotated_file_lists"
IMAGE_DIR = "Manually_Annotated_Images"
LISTS = {"train": f"{LIST_DIR}/training.csv", "test": f"{LIST_DIR}/validation.csv"}
NPY_SETS = {"train": "train_set", "test": "val_set"}
COLUMNS = (
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
    "valence",
    "arousal",
)
EXCLUDED = {8: "None", 9: "Uncertain", 10: "Non-Face"}
PUBLISHED_COUNTS = {8: {"train": 287651, "test": 4000}, 7: {"train": 283901, "test": 3500}}


def layout(root: str | os.PathLike) -> str:
    """'csv' for the original release, 'npy' for the train_set/val_set release."""
    root = Path(root)
    if (root / LIST_DIR).is_dir():
        return "csv"
    if (root / NPY_SETS["train"] / "annotations").is_dir():
        return "npy"
    raise DatasetError(
        f"{NAME}: {root} has neither {LIST_DIR}/ (original release) nor train_set/annotations/ (newer release); "
        f"request AffectNet at {REQUEST}"
    )


def _read_list(path: Path) -> list[tuple[str, dict[str, str]]]:
    """(where, row) for each row of training.csv / validation.csv, header row optional."""
    rows = []
    for lineno, line in C.read_lines(path):
        if lineno == 1 and line.startswith(COLUMNS[0]):
            continue
        cells = line.split(",")
        if len(cells) != len(COLUMNS):
            raise DatasetError(
                f"{path}:{lineno}: expected {len(COLUMNS)} comma-separated fields ({', '.join(COLUMNS)}), "
                f"got {len(cells)}"
            )
        rows.append((f"{path}:{lineno}", dict(zip(COLUMNS, (c.strip() for c in cells)))))
    return rows


def _code(text: str, where: str) -> int:
    code = C.parse_int(text, where, "an expression code")
    if not 0 <= code <= 10:
        valid = ", ".join(
            [f"{i}={c}" for i, c in enumerate(CLASSES)] + [f"{k}={v}" for k, v in EXCLUDED.items()]
        )
        raise DatasetError(f"{where}: unknown label {code}; valid labels: {valid}")
    return code


def _entries(root: Path) -> list[tuple[str, str, Path, int, str]]:
    """(split, key, image path, code, where) for every listed image of either release."""
    out = []
    if layout(root) == "csv":
        for part, rel in LISTS.items():
            for where, row in _read_list(root / rel):
                sub = row["subDirectory_filePath"]
                if not sub or sub.startswith("/") or ".." in Path(sub).parts:
                    raise DatasetError(
                        f"{where}: expected a relative image path like 689/abc.jpg, got {sub!r}"
                    )
                key = str(Path(sub).with_suffix(""))
                out.append((part, key, root / IMAGE_DIR / sub, _code(row["expression"], where), where))
        return out
    for part, folder in NPY_SETS.items():
        annotations = root / folder / "annotations"
        if not annotations.is_dir():
            raise DatasetError(f"{NAME}: {annotations} not found; unpack {folder} of the AffectNet release")
        for npy in sorted(annotations.glob("*_exp.npy")):
            where = str(npy)
            try:
                value = np.load(npy, allow_pickle=False)
            except (ValueError, OSError) as err:
                raise DatasetError(
                    f"{npy}: not a readable numpy array of the expression code ({err})"
                ) from None
            number = npy.name[: -len("_exp.npy")]
            image = root / folder / "images" / f"{number}.jpg"
            out.append(
                (part, f"{folder}/{number}", image, _code(str(np.asarray(value).item()), where), where)
            )
    return out


def load_records(root: str | os.PathLike, num_classes: int = 8, dropped: list | None = None) -> list[Record]:
    """Labeled records of AffectNet-8 (default) or AffectNet-7; excluded codes go to ``dropped``."""
    if num_classes not in (7, 8):
        raise DatasetError(f"{NAME}: num_classes must be 7 or 8, got {num_classes!r}")
    root = C.check_root(root, NAME, REQUEST)
    records, missing = [], []
    entries = _entries(root)
    C.check_unique(((key, where) for _, key, _, _, where in entries), NAME)
    for part, key, path, code, where in entries:
        if code >= num_classes:
            name = EXCLUDED.get(code, CLASSES[code] if code < len(CLASSES) else str(code))
            C.note_dropped(
                dropped, where, f"expression code {code} ({name}) is not in AffectNet-{num_classes}"
            )
            continue
        if C.exists_or_note(path, where, dropped, missing):
            records.append(Record(key=key, path=path, label=code, split=part))
    if missing:
        raise C.missing_files_error(NAME, missing, f"Unpack the AffectNet images into {root}.")
    if not records:
        raise DatasetError(f"{NAME}: no labeled images found under {root}")
    return C.ordered(records)


def pretrain_records(root: str | os.PathLike, dropped: list | None = None) -> list[Record]:
    """Every training-list image (all codes, unlabeled use), dummy label 0, split 'unlabeled'.

    The validation images are left out so that pretraining never sees the test set.
    """
    root = C.check_root(root, NAME, REQUEST)
    records, missing = [], []
    entries = _entries(root)
    C.check_unique(((key, where) for _, key, _, _, where in entries), NAME)
    for part, key, path, _, where in entries:
        if part == "train" and C.exists_or_note(path, where, dropped, missing):
            records.append(Record(key=key, path=path, label=0, split="unlabeled"))
    if missing:
        raise C.missing_files_error(NAME, missing, f"Unpack the AffectNet images into {root}.")
    return C.ordered(records)


def verify(
    root: str | os.PathLike,
    num_classes: int = 8,
    full: bool = True,
    manifest: str | os.PathLike | None = None,
) -> None:
    """Check the lists and every listed image (the published counts too when full), optional SHA256SUMS."""
    root = C.check_root(root, NAME, REQUEST)
    if layout(root) == "csv":
        C.require(root, [*LISTS.values(), IMAGE_DIR], NAME, REQUEST)
    else:
        C.require(
            root,
            [f"{d}/{sub}" for d in NPY_SETS.values() for sub in ("images", "annotations")],
            NAME,
            REQUEST,
        )
    records = load_records(root, num_classes=num_classes)
    if full:
        C.check_counts(root, records, PUBLISHED_COUNTS[num_classes], NAME, REQUEST)
    C.check_manifest(root, NAME, manifest)


def split(records: Sequence[Record], fold: int = 1) -> dict[str, list[Record]]:
    """training.csv -> train; validation.csv -> test, and val = test (no public test set)."""
    return C.split_by_partition(records, fold, FOLDS, NAME)


def write_miniature(
    root: str | os.PathLike,
    images: Sequence[np.ndarray],
    labels: Sequence[int],
    splits: Sequence[str],
) -> Path:
    """Write a small original-release AffectNet: images under Manually_Annotated_Images/<n>/ and both lists.

    labels are AffectNet expression codes 0-10 (0-7 = the class indices of CLASSES; 8-10 are written so the
    exclusion can be exercised); splits: 'train' or 'test' (test = validation.csv). Returns root.
    """
    if not len(images) == len(labels) == len(splits):
        raise ValueError("images, labels and splits must have the same length")
    root = Path(root)
    rows: dict[str, list[str]] = {"train": [], "test": []}
    for i, (image, code, part) in enumerate(zip(images, labels, splits)):
        if part not in rows:
            raise ValueError(f"split must be 'train' or 'test', got {part!r}")
        if not 0 <= int(code) <= 10:
            raise ValueError(f"expression code {code} outside 0..10")
        image = C.as_rgb_uint8(image, f"image {i}")
        sub = f"{1 + i % 3}/{i:08x}{part}.jpg"
        C.write_image(root / IMAGE_DIR / sub, image)
        h, w = image.shape[:2]
        valence = -2 if int(code) >= 8 else 0.0  # the owners mark valence/arousal of non-faces with -2
        rows[part].append(f"{sub},0,0,{w},{h},,{int(code)},{valence},{valence}")
    for part, rel in LISTS.items():
        C.write_lines(root / rel, [",".join(COLUMNS), *rows[part]])
    return root
