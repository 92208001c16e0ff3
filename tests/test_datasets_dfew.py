"""DFEW adapter on a miniature copy: 5 folds (fold k test = set_k), label mapping, mp4 + frame media, bad input."""

from __future__ import annotations

import decord
import numpy as np
import pytest

from fer.datasets import DatasetError, dfew

SPLITS = "EmoLabel_DataSplit"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    rng = np.random.default_rng(0)
    clips = [rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8) for _ in range(10)]
    labels = [0, 1, 2, 3, 4, 5, 6, 0, 1, 2]
    folds = [1, 2, 3, 4, 5, 1, 2, 3, 4, 5]
    return dfew.write_miniature(tmp_path_factory.mktemp("dfew"), clips, labels, folds, fps=25, frames=True)


@pytest.fixture
def copy(root, tmp_path):
    import shutil

    shutil.copytree(root / SPLITS, tmp_path / SPLITS)
    (tmp_path / "Clip").symlink_to(root / "Clip")
    return tmp_path


def test_layout_and_media(root):
    assert (root / SPLITS / "test(single-labeled)/set_3.csv").read_text() == "video_name,label\n3,3\n8,1\n"
    reader = decord.VideoReader(str(root / "Clip/original/00004.mp4"))
    assert len(reader) == 6 and reader[0].shape == (32, 32, 3)
    dfew.verify(root, full=False)
    with pytest.raises(DatasetError, match="published release"):
        dfew.verify(root)
    records = dfew.load_records(root)
    assert [r.key for r in records] == [f"{i:05d}" for i in range(1, 11)]
    assert records[6].label == 6 and dfew.CLASSES[6] == "fear"  # code 7 = Fear -> 6
    assert records[0].path.name == "00001.mp4" and records[0].fold == 1
    frames = dfew.load_records(root, media="clip_224x224")[1].path
    assert frames.is_dir() and len(list(frames.glob("00002_*.jpg"))) == 6


def test_folds_follow_set_files(root):
    records = dfew.load_records(root)
    for k in dfew.FOLDS:
        parts = dfew.split(records, k)
        test_file = root / SPLITS / f"test(single-labeled)/set_{k}.csv"
        listed = {f"{int(line.split(',')[0]):05d}" for line in test_file.read_text().splitlines()[1:]}
        assert {r.key for r in parts["test"]} == listed and parts["val"] == parts["test"]
        assert len(parts["train"]) == 8 and not {r.key for r in parts["train"]} & listed
    with pytest.raises(DatasetError, match="fold 6"):
        dfew.split(records, 6)


def _edit(root, name, old, new):
    path = root / SPLITS / name
    path.write_text(path.read_text().replace(old, new))


def test_malformed_row(copy):
    _edit(copy, "test(single-labeled)/set_2.csv", "2,2\n", "2\n")
    with pytest.raises(DatasetError, match=r"set_2.csv:2: expected 2 comma-separated"):
        dfew.load_records(copy)


def test_unknown_label(copy):
    _edit(copy, "test(single-labeled)/set_2.csv", "2,2\n", "2,9\n")
    with pytest.raises(DatasetError, match=r"set_2.csv:2: unknown label 9; valid labels: 1=happy"):
        dfew.load_records(copy)


def test_duplicate_and_inconsistent(copy):
    _edit(copy, "test(single-labeled)/set_2.csv", "7,7\n", "7,7\n2,2\n")
    with pytest.raises(
        DatasetError, match=r"duplicate id '00002' listed at .*set_2.csv:2 and at .*set_2.csv:4"
    ):
        dfew.load_records(copy)


def test_train_label_disagrees(copy):
    _edit(copy, "train(single-labeled)/set_1.csv", "2,2\n", "2,5\n")
    with pytest.raises(DatasetError, match=r"clip 00002 has label 4 here but 1 at"):
        dfew.load_records(copy)


def test_missing_clip(copy, tmp_path_factory):
    other = tmp_path_factory.mktemp("partial")
    (copy / "Clip").unlink()
    (copy / "Clip/original").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"(?s)10 listed file\(s\) not found.*00001.mp4 \(.*set_1.csv:2\)"):
        dfew.load_records(copy)
    with pytest.raises(DatasetError, match=r"(?s)11 expected file.*set_1.csv.*dfew-dataset"):
        dfew.verify(other)
