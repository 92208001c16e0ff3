"""RAF-DB adapter on a miniature copy in the real layout: parsing, label mapping, partition, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from fer.datasets import DatasetError, get_dataset, rafdb


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (40, 32, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture
def root(tmp_path):
    labels = [0, 1, 2, 3, 4, 5, 6, 3, 6, 0]
    splits = ["train"] * 7 + ["test"] * 3
    return rafdb.write_miniature(tmp_path / "basic", _images(10), labels, splits)


def test_layout_and_records(root):
    assert get_dataset("rafdb") is rafdb
    assert (root / "EmoLabel/list_patition_label.txt").read_text().splitlines()[0] == "train_00001.jpg 1"
    assert (root / "Image/original/train_00007.jpg").is_file()
    assert (root / "Image/aligned/test_00003_aligned.jpg").is_file()
    rafdb.verify(root, full=False)
    with pytest.raises(DatasetError, match="published release"):
        rafdb.verify(root)  # 7/3 images are not the published 12,271 / 3,068
    records = rafdb.load_records(root)
    assert [r.key for r in records][:2] == ["test_00001", "test_00002"]
    byk = {r.key: r for r in records}
    # label file codes 1..7 (Surprise..Neutral) -> 0..6
    assert byk["train_00004"].label == 3 and rafdb.CLASSES[3] == "happiness"
    assert byk["test_00002"].label == 6 and rafdb.CLASSES[6] == "neutral"
    assert byk["train_00001"].path.name == "train_00001_aligned.jpg"
    assert rafdb.load_records(root, images="original")[0].path.name == "test_00001.jpg"


def test_split(root):
    parts = rafdb.split(rafdb.load_records(root), 1)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [7, 3, 3]
    assert all(r.key.startswith("test_") for r in parts["test"]) and parts["val"] == parts["test"]
    with pytest.raises(DatasetError, match="fold 2"):
        rafdb.split(rafdb.load_records(root), 2)


def _edit_label_file(root, old, new):
    path = root / "EmoLabel/list_patition_label.txt"
    path.write_text(path.read_text().replace(old, new))


def test_malformed_line(root):
    _edit_label_file(root, "train_00002.jpg 2", "train_00002.jpg")
    with pytest.raises(DatasetError, match=r"list_patition_label.txt:2: expected"):
        rafdb.load_records(root)


def test_unknown_label(root):
    _edit_label_file(root, "train_00003.jpg 3", "train_00003.jpg 8")
    with pytest.raises(DatasetError, match=r":3: unknown label 8; valid labels: 1=surprise"):
        rafdb.load_records(root)


def test_duplicate_id(root):
    _edit_label_file(root, "train_00003.jpg 3", "train_00002.jpg 3")
    with pytest.raises(DatasetError, match=r"duplicate id 'train_00002'.*:2 and at .*:3"):
        rafdb.load_records(root)


def test_missing_image(root):
    (root / "Image/aligned/train_00005_aligned.jpg").unlink()
    with pytest.raises(DatasetError, match=r"(?s)1 listed file\(s\) not found.*train_00005_aligned.jpg"):
        rafdb.load_records(root)
    dropped = []
    assert len(rafdb.load_records(root, dropped=dropped)) == 9
    assert [d.where.endswith("list_patition_label.txt:5") for d in dropped] == [True]
    (root / "EmoLabel/list_patition_label.txt").unlink()
    with pytest.raises(DatasetError, match=r"(?s)list_patition_label.txt.*whdeng"):
        rafdb.verify(root, full=False)


def test_manifest(root):
    from fer.datasets._common import sha256_file

    target = "Image/aligned/train_00001_aligned.jpg"
    (root / "SHA256SUMS").write_text(f"{sha256_file(root / target)}  {target}\n")
    rafdb.verify(root, full=False)
    (root / target).write_bytes(b"corrupt")
    with pytest.raises(DatasetError, match="sha256 mismatch"):
        rafdb.verify(root, full=False)
