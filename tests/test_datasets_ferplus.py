"""FER+ adapter: majority vote as microsoft/FERPlus, drops counted, pixel decoding, bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fer.datasets import DatasetError, ferplus


def test_majority_rule():
    assert ferplus.majority_label([4, 0, 0, 1, 3, 2, 0, 0, 0, 0]) is None  # 4 of 9 counted votes
    assert ferplus.majority_label([6, 0, 1, 1, 0, 0, 0, 0, 2, 0]) == 0  # single votes discarded: 6 of 8
    assert ferplus.majority_label([5, 0, 0, 5, 0, 0, 0, 0, 0, 0]) is None  # tie
    assert ferplus.majority_label([0, 0, 0, 0, 0, 0, 0, 0, 0, 10]) == 9  # NF
    assert ferplus.majority_label([1, 1, 1, 1, 1, 1, 1, 1, 1, 1]) is None


@pytest.fixture
def root(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (48, 48), dtype=np.uint8) for _ in range(7)]
    labels = [0, 1, 7, 2, -1, 3, 4]
    splits = ["train", "train", "train", "train", "train", "val", "test"]
    votes = [None] * 7
    votes[3] = [5, 0, 0, 5, 0, 0, 0, 0, 0, 0]  # tie -> dropped
    votes = [
        v if v is not None else [10 if j == lab else 0 for j in range(10)] for v, lab in zip(votes, labels)
    ]
    votes[4] = [0] * 9 + [10]
    ferplus.write_miniature(tmp_path, images, labels, splits, votes=votes)
    return tmp_path, images


def test_records_splits_and_images(root):
    root, images = root
    ferplus.verify(root, full=False)
    with pytest.raises(DatasetError, match="35887"):
        ferplus.verify(root)
    dropped = []
    records = ferplus.load_records(root, dropped=dropped)
    assert [(r.key, r.label, r.split) for r in records] == [
        ("fer0000000", 0, "train"),
        ("fer0000001", 1, "train"),
        ("fer0000002", 7, "train"),
        ("fer0000005", 3, "val"),
        ("fer0000006", 4, "test"),
    ]
    assert sorted(d.reason for d in dropped) == ["no majority vote", "row removed by FER+ (no image name)"]
    png = cv2.imread(str(records[3].path), cv2.IMREAD_UNCHANGED)
    assert records[3].path.parent.name == "FER2013Valid" and np.array_equal(png, images[5])
    parts = ferplus.split(records, 1)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [3, 1, 1]


def _edit(path, lineno, fn):
    lines = path.read_text().splitlines()
    lines[lineno - 1] = fn(lines[lineno - 1])
    path.write_text("\n".join(lines) + "\n")


def test_bad_input(root):
    root, _ = root
    _edit(root / "fer2013new.csv", 3, lambda s: s.replace(",0,", ",x,", 1))
    with pytest.raises(DatasetError, match=r"fer2013new.csv:3: expected the vote count"):
        ferplus.load_records(root)
    _edit(root / "fer2013new.csv", 3, lambda s: s.replace(",x,", ",0,", 1).replace("Training", "PublicTest"))
    with pytest.raises(DatasetError, match=r"fer2013new.csv:3: Usage 'PublicTest' differs from 'Training'"):
        ferplus.load_records(root)
    _edit(
        root / "fer2013new.csv",
        3,
        lambda s: s.replace("PublicTest", "Training").replace("fer0000001", "fer0000000"),
    )
    with pytest.raises(DatasetError, match=r"duplicate id 'fer0000000' listed at .*:2 and at .*:3"):
        ferplus.load_records(root)


def test_bad_pixels(root):
    root, _ = root
    _edit(root / "fer2013.csv", 2, lambda s: s.replace(" ", " 300 ", 1))
    with pytest.raises(DatasetError, match=r"fer2013.csv:2: pixels must be 2304"):
        ferplus.load_records(root)
