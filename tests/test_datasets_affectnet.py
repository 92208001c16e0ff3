"""AffectNet adapter: 8/7-class variants, codes 8-10 excluded and counted, both releases, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from fer.datasets import DatasetError, affectnet

LISTS = "Manually_Annotated_file_lists"


@pytest.fixture
def root(tmp_path):
    rng = np.random.default_rng(0)
    codes = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 7, 3]
    splits = ["train"] * 11 + ["test"] * 3
    images = [rng.integers(0, 255, (20, 20, 3), dtype=np.uint8) for _ in codes]
    return affectnet.write_miniature(tmp_path, images, codes, splits)


def test_eight_and_seven_classes(root):
    assert (root / LISTS / "training.csv").read_text().startswith("subDirectory_filePath,face_x,")
    affectnet.verify(root, full=False)
    with pytest.raises(DatasetError, match="published release"):
        affectnet.verify(root)
    dropped = []
    records = affectnet.load_records(root, dropped=dropped)
    parts = affectnet.split(records, 1)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [8, 3, 3]
    assert sorted(r.label for r in parts["train"]) == list(range(8))
    assert sorted(d.reason.split("(")[1][: -len(") is not in AffectNet-8")] for d in dropped) == [
        "Non-Face",
        "None",
        "Uncertain",
    ]
    dropped7 = []
    parts7 = affectnet.split(affectnet.load_records(root, num_classes=7, dropped=dropped7), 1)
    assert [len(parts7["train"]), len(parts7["test"])] == [7, 2] and len(dropped7) == 5
    assert all(r.label < 7 for r in parts7["test"]) and affectnet.CLASSES_7[-1] == "anger"
    pre = affectnet.pretrain_records(root)
    assert len(pre) == 11 and {r.split for r in pre} == {"unlabeled"} and {r.label for r in pre} == {0}


def test_headerless_validation_and_npy_release(root, tmp_path):
    path = root / LISTS / "validation.csv"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[1:]))
    assert len(affectnet.load_records(root)) == 11
    other = tmp_path / "npy"
    for folder, numbers in (("train_set", (0, 1)), ("val_set", (5,))):
        (other / folder / "images").mkdir(parents=True)
        (other / folder / "annotations").mkdir()
        for n in numbers:
            (other / folder / "images" / f"{n}.jpg").write_bytes(b"jpg")
            np.save(other / folder / "annotations" / f"{n}_exp.npy", np.array(str(n + 1)))
    assert affectnet.layout(other) == "npy"
    records = affectnet.load_records(other)
    assert [(r.key, r.label, r.split) for r in records] == [
        ("train_set/0", 1, "train"),
        ("train_set/1", 2, "train"),
        ("val_set/5", 6, "test"),
    ]


def _replace_line(root, lineno, text):
    path = root / LISTS / "training.csv"
    lines = path.read_text().splitlines()
    lines[lineno - 1] = text(lines[lineno - 1])
    path.write_text("\n".join(lines) + "\n")


def test_bad_input(root):
    _replace_line(root, 3, lambda line: line.rsplit(",", 3)[0] + ",11,0.0,0.0")
    with pytest.raises(DatasetError, match=r"training.csv:3: unknown label 11; valid labels: 0=neutral"):
        affectnet.load_records(root)
    _replace_line(root, 3, lambda line: line.rsplit(",", 1)[0])
    with pytest.raises(DatasetError, match=r"training.csv:3: expected 9 comma-separated"):
        affectnet.load_records(root)


def test_duplicate(root):
    first = (root / LISTS / "training.csv").read_text().splitlines()[1]
    _replace_line(root, 4, lambda line: first)
    with pytest.raises(DatasetError, match=r"duplicate id .* at .*training.csv:2 and at .*training.csv:4"):
        affectnet.load_records(root)


def test_missing_image(root):
    sub = (root / LISTS / "validation.csv").read_text().splitlines()[1].split(",")[0]
    (root / "Manually_Annotated_Images" / sub).unlink()
    with pytest.raises(DatasetError, match=r"(?s)1 listed file\(s\) not found.*validation.csv:2"):
        affectnet.load_records(root)
    dropped = []
    assert len(affectnet.load_records(root, dropped=dropped)) == 10
    assert any("not found" in d.reason for d in dropped)
