"""Annotation files from records + face manifest: formats, folds, dropped samples, bad labels."""

import csv
import json

import pytest

from fer.data import AnnotationError
from fer.data.annotations import write_fold_annotations, write_pretrain_list
from fer.datasets.base import Record
from fer.datasets.records import read_records, write_records

MANIFEST_COLUMNS = ["item", "frame", "status", "score", "box", "landmarks", "output", "error"]


def _manifest(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(MANIFEST_COLUMNS)
        for item, frame, status in rows:
            output = (
                ""
                if status in ("no_face", "unreadable")
                else (f"{item}.jpg" if frame < 0 else f"{item}/{frame + 1:05d}.jpg")
            )
            writer.writerow([item, frame, status, 0.99, "0 0 1 1", " ".join(["1"] * 10), output, ""])


def test_rafdb_fold_files_and_dropped_samples(tmp_path):
    records = [
        Record(f"train_{i:05d}", tmp_path / f"train_{i:05d}.jpg", label=i % 7, split="train")
        for i in range(1, 15)
    ] + [
        Record(f"test_{i:04d}", tmp_path / f"test_{i:04d}.jpg", label=i % 7, split="test")
        for i in range(1, 8)
    ]
    write_records(records, tmp_path / "records.csv")
    assert read_records(tmp_path / "records.csv") == records
    faces = tmp_path / "faces"
    faces.mkdir()
    rows = [(r.key, -1, "ok") for r in records]
    rows[0] = (records[0].key, -1, "no_face")
    rows[1] = (records[1].key, -1, "unreadable")
    _manifest(faces / "manifest.csv", rows)

    summary = write_fold_annotations(
        "rafdb", tmp_path / "records.csv", faces / "manifest.csv", 1, tmp_path / "ann"
    )
    train = (tmp_path / "ann" / "train.csv").read_text().splitlines()
    assert len(train) == 12 and summary["splits"]["train"]["dropped"] == 2
    assert summary["dropped"]["train"] == {"train_00001": "no_face=1", "train_00002": "unreadable=1"}
    path, label = train[0].split(" ")
    assert path == str(faces / "train_00003.jpg") and label == "3"
    assert (tmp_path / "ann" / "val.csv").read_text() == (tmp_path / "ann" / "test.csv").read_text()
    assert json.loads((tmp_path / "ann" / "summary.json").read_text())["splits"]["test"]["samples"] == 7

    assert write_pretrain_list(tmp_path / "records.csv", faces / "manifest.csv", tmp_path / "pre.csv") == 19
    assert all(line.endswith(" 0") for line in (tmp_path / "pre.csv").read_text().splitlines())


def test_label_out_of_range_is_a_clear_error(tmp_path):
    records = [
        Record("train_00001", tmp_path / "a.jpg", label=9, split="train"),
        Record("test_0001", tmp_path / "b.jpg", label=0, split="test"),
    ]
    write_records(records, tmp_path / "records.csv")
    (tmp_path / "faces").mkdir()
    _manifest(tmp_path / "faces" / "manifest.csv", [(r.key, -1, "ok") for r in records])
    with pytest.raises(AnnotationError, match=r"records.csv: record 'train_00001' has label 9, outside 0..6"):
        write_fold_annotations(
            "rafdb", tmp_path / "records.csv", tmp_path / "faces" / "manifest.csv", 1, tmp_path / "ann"
        )


def test_video_frames_give_frame_folders_and_reused_frames_count_as_usable(tmp_path):
    records = [
        Record(f"{i:05d}", tmp_path / f"{i:05d}.mp4", label=i % 7, split="test", fold=1 + i % 2)
        for i in range(1, 9)
    ]
    write_records(records, tmp_path / "records.csv")
    (tmp_path / "faces").mkdir()
    rows = []
    for r in records:
        rows += [(r.key, 0, "ok"), (r.key, 1, "reused")]
    rows = [row for row in rows if row[0] != "00008"] + [("00008", 0, "unreadable")]
    _manifest(tmp_path / "faces" / "manifest.csv", rows)
    write_pretrain_list(tmp_path / "records.csv", tmp_path / "faces" / "manifest.csv", tmp_path / "pre.csv")
    lines = (tmp_path / "pre.csv").read_text().splitlines()
    assert len(lines) == 7 and lines[0] == f"{tmp_path / 'faces' / '00001'} 0"
