"""The records table: what the data stage hands to the faces and annotation stages (one CSV per dataset)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from fer.io import atomic_path

from . import get_dataset
from .base import DatasetError, Record

COLUMNS = ("key", "path", "label", "aus", "subject", "split", "fold")


def write_records(records: list[Record], path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for r in records:
            aus = "" if r.aus is None else " ".join(str(a) for a in r.aus)
            writer.writerow(
                [
                    r.key,
                    r.path,
                    "" if r.label is None else r.label,
                    aus,
                    r.subject or "",
                    r.split,
                    "" if r.fold is None else r.fold,
                ]
            )


def read_records(path: str | os.PathLike) -> list[Record]:
    path = Path(path)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise DatasetError(
                f"{path}: expected columns {','.join(COLUMNS)}, got {reader.fieldnames}; "
                f"regenerate it with `fer prepare`"
            )
        return [
            Record(
                key=row["key"],
                path=Path(row["path"]),
                label=int(row["label"]) if row["label"] else None,
                aus=tuple(int(a) for a in row["aus"].split()) if row["aus"] else None,
                subject=row["subject"] or None,
                split=row["split"],
                fold=int(row["fold"]) if row["fold"] else None,
            )
            for row in reader
        ]


def dropped_path(records_csv: str | os.PathLike) -> Path:
    """Where the data stage lists the samples the dataset's protocol leaves out (beside the records table)."""
    return Path(records_csv).with_name("dropped.csv")


def prepare_records(
    family: str,
    root: str | os.PathLike,
    out_csv: str | os.PathLike,
    options: dict | None = None,
    check_counts: bool = True,
) -> list[Record]:
    """Data stage: verify a dataset root in its owners' layout, parse its labels, write the records table.

    `options` go to the adapter (e.g. RAF-DB's ``images``, DFEW's ``media``, AffectNet's ``num_classes``);
    `check_counts` compares with the published release sizes (off for miniature copies). Samples the protocol
    excludes are written to dropped.csv beside the table, with where they were listed and why.
    """
    module = get_dataset(family)
    options = dict(options or {})
    root = Path(root).resolve()
    module.verify(root, full=check_counts, **options)
    dropped: list = []
    records = module.load_records(root, dropped=dropped, **options)
    if not records:
        raise DatasetError(f"{root}: no samples found for dataset family {family!r}")
    write_records(records, out_csv)
    with atomic_path(dropped_path(out_csv)) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["where", "reason"])
        writer.writerows([d.where, d.reason] for d in dropped)
    return records
