"""Annotation files: records + face manifest -> per-fold train / val / test files the loaders read.

Formats (one source of truth, read by fer.data.datasets):
- expression datasets, images or videos: MAE-DFER's "<path> <label>" lines (sunlicai/MAE-DFER README, "Data
  Preparation"), path = aligned face image or frame folder of aligned faces, label 0-based;
- AU datasets: CSV "path,subject,subject_id,AU<n>..." with 1 / 0 / -1 (unknown); subject_id indexes the training
  subjects of the fold (FMAE-IAT's identity head), -1 for subjects the training split does not contain;
- pretraining lists: the expression format with dummy label 0 (as MAE-DFER does for VoxCeleb2).
Samples without a usable face are left out and counted, with the reason, in summary.json.
"""

from __future__ import annotations

import csv
import os
from collections import Counter, defaultdict
from pathlib import Path

from fer.datasets import get_dataset
from fer.datasets.base import Record
from fer.datasets.records import dropped_path, read_records
from fer.io import atomic_path, write_json

from . import AnnotationError

USABLE = ("ok", "reused")


def usable_faces(manifest_csv: str | os.PathLike) -> tuple[dict[str, Path], dict[str, str]]:
    """Map record key -> aligned image (or frame folder) and key -> reason for records without a usable face."""
    manifest_csv = Path(manifest_csv)
    faces_dir = manifest_csv.parent.resolve()
    usable: dict[str, Path] = {}
    statuses: dict[str, Counter] = defaultdict(Counter)
    with open(manifest_csv, newline="") as f:
        for row in csv.DictReader(f):
            statuses[row["item"]][row["status"]] += 1
            if row["status"] in USABLE and row["output"]:
                out = faces_dir / row["output"]
                usable[row["item"]] = out if int(row["frame"]) < 0 else out.parent
    failed = {
        key: ",".join(f"{status}={n}" for status, n in sorted(counts.items()))
        for key, counts in statuses.items()
        if key not in usable
    }
    return usable, failed


def _write_lines(path: Path, lines: list[str]) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text("".join(f"{line}\n" for line in lines))


def _check_label(record: Record, num_classes: int, records_csv: Path) -> int:
    if record.label is None or not 0 <= record.label < num_classes:
        raise AnnotationError(
            f"{records_csv}: record {record.key!r} has label {record.label!r}, outside 0..{num_classes - 1}; "
            f"the dataset's label file is inconsistent with its family's classes: regenerate {records_csv.name}"
        )
    return record.label


def write_fold_annotations(
    family: str, records_csv: str | os.PathLike, manifest_csv: str | os.PathLike, fold: int, out_dir: str | os.PathLike
) -> dict:
    """Write train.csv / val.csv / test.csv and summary.json of one fold; return the summary."""
    module = get_dataset(family)
    records_csv, out_dir = Path(records_csv), Path(out_dir)
    splits = module.split(read_records(records_csv), fold)
    usable, failed = usable_faces(manifest_csv)
    summary: dict = {"family": family, "fold": fold, "splits": {}, "dropped": {},
                     "excluded_by_protocol": _protocol_drops(records_csv)}

    train_subjects = sorted({r.subject for r in splits["train"] if r.subject is not None and r.key in usable})
    subject_ids = {s: i for i, s in enumerate(train_subjects)}
    if module.TASK == "au":
        summary["num_subjects"] = len(train_subjects)

    for split in ("train", "val", "test"):
        kept = [r for r in splits[split] if r.key in usable]
        dropped = {r.key: failed.get(r.key, "not in manifest") for r in splits[split] if r.key not in usable}
        summary["dropped"][split] = dropped
        if not kept:
            raise AnnotationError(f"{manifest_csv}: fold {fold} has no {split} samples with a usable face")
        path = out_dir / f"{split}.csv"
        if module.TASK == "au":
            _write_au_table(path, kept, usable, module.AUS, subject_ids)
            positives = {f"AU{au}": sum(r.aus[i] == 1 for r in kept) for i, au in enumerate(module.AUS)}
            summary["splits"][split] = {"samples": len(kept), "dropped": len(dropped), "positives": positives}
        else:
            labels = [_check_label(r, len(module.CLASSES), records_csv) for r in kept]
            _write_lines(path, [f"{usable[r.key]} {label}" for r, label in zip(kept, labels)])
            per_class = Counter(module.CLASSES[label] for label in labels)
            summary["splits"][split] = {"samples": len(kept), "dropped": len(dropped), "classes": dict(per_class)}
    write_json(out_dir / "summary.json", summary)
    return summary


def _protocol_drops(records_csv: Path) -> dict:
    """Counts per reason of the samples the dataset's protocol left out at the data stage (see dropped.csv)."""
    path = dropped_path(records_csv)
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        return dict(Counter(row["reason"] for row in csv.DictReader(f)))


def _write_au_table(path: Path, records: list[Record], usable: dict[str, Path], aus, subject_ids) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "subject", "subject_id", *(f"AU{au}" for au in aus)])
        for r in records:
            if r.aus is None or len(r.aus) != len(aus):
                raise AnnotationError(f"record {r.key!r} has AU labels {r.aus!r}, expected {len(aus)} values")
            writer.writerow([usable[r.key], r.subject or "", subject_ids.get(r.subject, -1), *r.aus])


def write_pretrain_list(records_csv: str | os.PathLike, manifest_csv: str | os.PathLike,
                        out_csv: str | os.PathLike) -> int:
    """Every record with a usable face, dummy label 0; returns how many."""
    usable, _ = usable_faces(manifest_csv)
    lines = [f"{usable[r.key]} 0" for r in read_records(records_csv) if r.key in usable]
    if not lines:
        raise AnnotationError(f"{manifest_csv}: no usable faces to pretrain on")
    _write_lines(Path(out_csv), lines)
    return len(lines)
