"""The identity linear-probing split of FMAE-IAT: the same subjects in train and test, split by image.

FMAE-IAT (branch ``BP4D_ID_linear_prob``, ``AU/AU_json_process.py::extract_100_samples_for_each_subject``) takes
up to 100 random frames of every BP4D subject and puts 70 of them in training and 30 in test, then trains a
linear classifier of subject identity on the frozen encoder of a finetuned FMAE / FMAE-IAT model (41 classes).
Our fold annotation files split by subject (a test subject never trains), so this module re-splits the frames of
one fold's files (train, val and test together hold every subject) per subject, keeping the AU CSV format of
fer.data.annotations with ``subject_id`` = the subject's index among all subjects.
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np

HEADER_START = ["path", "subject", "subject_id"]


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0][:3] != HEADER_START:
        raise ValueError(f"{path}: expected an AU annotation file with header path,subject,subject_id,AU...; "
                         f"regenerate it with the fold_annotations rule")  # fmt: skip
    return rows[0], rows[1:]


def write_probe_split(
    sources: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    per_subject: int = 100,
    train_fraction: float = 0.7,
    seed: int = 0,
) -> dict:
    """Write out_dir/{train,val,test}.csv (val = test, as the seeds evaluate) and summary.json; returns it.

    sources: AU annotation files whose rows together cover the subjects (duplicated paths are kept once).
    Each subject contributes up to `per_subject` random frames, the first `train_fraction` of them to train.
    """
    if not 0 < train_fraction < 1 or per_subject < 2:
        raise ValueError(
            f"need 0 < train_fraction < 1 and per_subject >= 2, got {train_fraction}, {per_subject}"
        )
    header, by_subject, seen = None, defaultdict(list), set()
    for source in sources:
        head, rows = _read(Path(source))
        if header is None:
            header = head
        elif head != header:
            raise ValueError(
                f"{source}: columns {head} differ from {header}; the sources must share one AU set"
            )
        for line, row in enumerate(rows, start=2):
            if len(row) != len(header):
                raise ValueError(f"{source}:{line}: {len(row)} fields, expected {len(header)}")
            if row[0] not in seen and row[1]:
                seen.add(row[0])
                by_subject[row[1]].append(row)
    if header is None:
        raise ValueError("no annotation file given to the identity probe split")
    rng = np.random.default_rng(seed)
    subjects = sorted(s for s, rows in by_subject.items() if len(rows) >= 2)
    skipped = sorted(set(by_subject) - set(subjects))
    if len(subjects) < 2:
        raise ValueError(f"identity probe: {len(subjects)} subject(s) with 2+ frames; it needs at least two")
    parts: dict[str, list[list[str]]] = {"train": [], "test": []}
    for index, subject in enumerate(subjects):
        rows = by_subject[subject]
        picked = [rows[i] for i in rng.permutation(len(rows))[:per_subject]]
        cut = min(max(1, round(train_fraction * len(picked))), len(picked) - 1)
        for part, chunk in (("train", picked[:cut]), ("test", picked[cut:])):
            parts[part] += [[r[0], subject, str(index), *r[3:]] for r in chunk]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", "train"), ("val", "test"), ("test", "test")):
        _write(out_dir / f"{name}.csv", header, parts[part])
    summary = {"protocol": "FMAE-IAT identity linear probing (per-subject image split)", "subjects": subjects,
               "num_subjects": len(subjects), "per_subject": per_subject, "train_fraction": train_fraction,
               "seed": seed, "samples": {k: len(v) for k, v in parts.items()},
               "dropped_subjects": {s: "fewer than 2 frames" for s in skipped}}  # fmt: skip
    _write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
