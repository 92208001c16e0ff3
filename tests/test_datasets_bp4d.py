"""BP4D adapter on a miniature copy: AU_OCC parsing (9 -> -1), 3 subject folds, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from fer.datasets import DatasetError, bp4d

# one subject of each partition (MPSCL / FMAE-IAT SUBJECTS_1..3), two tasks for the first
SEQS = [("F001", "T1"), ("F001", "T2"), ("M002", "T1"), ("F004", "T8")]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    rng = np.random.default_rng(0)
    sequences, aus = {}, {}
    for i, seq in enumerate(SEQS):
        sequences[seq] = [rng.integers(0, 255, (24, 24, 3), dtype=np.uint8) for _ in range(3)]
        occ = rng.integers(0, 2, (3, 12))
        occ[0, i] = -1  # written as 9, the release's "not coded"
        aus[seq] = occ
    root = bp4d.write_miniature(tmp_path_factory.mktemp("bp4d"), sequences, aus, first_frame=101)
    return root, aus


@pytest.fixture
def copy(root, tmp_path):
    import shutil

    shutil.copytree(root[0], tmp_path / "BP4D")
    return tmp_path / "BP4D"


def test_partitions_match_the_literature():
    assert len(bp4d.SUBJECTS) == 41 and len(set(bp4d.SUBJECTS)) == 41
    assert [len(p) for p in bp4d.PARTITIONS.values()] == [14, 14, 13]
    # FMAE-IAT AU/BP4D_preprocess.py SUBJECTS_1 (short ids), = ME-GraphAU's first part
    short = ["F01", "F02", "F08", "F09", "F10", "F18", "F16", "F23", "M01", "M04", "M07", "M08", "M12", "M14"]
    assert set(bp4d.PARTITIONS[1]) == {s[0] + "0" + s[1:] for s in short}


def test_records_and_codes(root):
    root, aus = root
    header = (root / "AUCoding/AU_OCC/F001_T1.csv").read_text().splitlines()[0]
    assert header == ",".join(map(str, range(25)))
    assert (root / "2D+3D/M002/T1/0103.jpg").is_file()
    bp4d.verify(root, full=False)
    with pytest.raises(DatasetError, match=r"(?s)expected file.*F001_T3.csv"):
        bp4d.verify(root)  # a full release has all 41 x 8 sequences
    records = bp4d.load_records(root)
    assert len(records) == 12 and records[0].key == "F001/T1/0101"
    byk = {r.key: r for r in records}
    for i, seq in enumerate(SEQS):
        for t in range(3):
            rec = byk[f"{seq[0]}/{seq[1]}/{101 + t:04d}"]
            assert rec.aus == tuple(int(v) for v in aus[seq][t]) and rec.subject == seq[0]
            assert rec.path.name == f"{101 + t:04d}.jpg"
        assert byk[f"{seq[0]}/{seq[1]}/0101"].aus[i] == -1


def test_folds(root):
    records = bp4d.load_records(root[0])
    for k, subject in zip((1, 2, 3), ("F001", "M002", "F004")):
        parts = bp4d.split(records, k)
        assert {r.subject for r in parts["test"]} == {subject} and parts["val"] == parts["test"]
        assert subject not in {r.subject for r in parts["train"]}
        assert len(parts["train"]) + len(parts["test"]) == 12
    assert len(bp4d.split(records, 1)["test"]) == 6


def _edit(path, old, new):
    path.write_text(path.read_text().replace(old, new, 1))


def test_bad_values(copy):
    path = copy / "AUCoding/AU_OCC/M002_T1.csv"
    lines = path.read_text().splitlines()
    cells = lines[2].split(",")
    cells[4] = "5"  # AU4 column
    path.write_text("\n".join([*lines[:2], ",".join(cells), *lines[3:]]) + "\n")
    with pytest.raises(
        DatasetError, match=r"M002_T1.csv:3: AU4 has value '5'; valid codes: 0 absent, 1 present, 9"
    ):
        bp4d.load_records(copy)
    path.write_text("\n".join([*lines[:2], lines[2] + ",1", *lines[3:]]) + "\n")
    with pytest.raises(DatasetError, match=r"M002_T1.csv:3: expected 25 comma-separated"):
        bp4d.load_records(copy)
    path.write_text("\n".join([*lines[:2], lines[1], *lines[3:]]) + "\n")
    with pytest.raises(DatasetError, match=r"M002_T1.csv: duplicate frame 101 at lines 2 and 3"):
        bp4d.load_records(copy)


def test_unknown_subject_and_missing_frame(copy):
    (copy / "AUCoding/AU_OCC/F001_T2.csv").rename(copy / "AUCoding/AU_OCC/F099_T2.csv")
    with pytest.raises(DatasetError, match=r"F099_T2.csv: subject 'F099' is in none"):
        bp4d.load_records(copy)
    (copy / "AUCoding/AU_OCC/F099_T2.csv").unlink()
    (copy / "2D+3D/F004/T8/0102.jpg").unlink()
    with pytest.raises(DatasetError, match=r"(?s)1 listed file.*F004/T8/0102.jpg \(.*F004_T8.csv:3\)"):
        bp4d.load_records(copy)
    dropped = []
    assert len(bp4d.load_records(copy, dropped=dropped)) == 8
    assert (
        len(dropped) == 1 and dropped[0].where.endswith("F004_T8.csv:3") and "not found" in dropped[0].reason
    )
