"""BP4D+ and DISFA adapters: README folds, active-frame rule, intensity threshold, video frames, bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from fer.datasets import DatasetError, bp4dplus, disfa

README_FOLD_1 = (
    "'M040', 'F072', 'M015', 'M029', 'M003', 'F076', 'F053', 'F026', 'F044', 'F066',  'F057', 'F061', 'F071', "
    "'M050', 'M033', 'F079', 'F020', 'M025', 'F014', 'F004',  'F013', 'M017', 'F033', 'M042', 'M004', 'F038', "
    "'F019', 'M036', 'M026', 'M048',  'F039', 'F046', 'M051', 'F047', 'M020'"
)
README_FOLD_4 = (
    "'M058', 'F037', 'F010', 'F023', 'M007', 'M002', 'F025', 'F073', 'F048', 'F041',  'F051', 'F011', 'M032', "
    "'F005', 'M021', 'F018', 'M013', 'M049', 'M014', 'F070',  'F006', 'F067', 'M039', 'M006', 'F059', 'F003', "
    "'F007', 'F049', 'M053', 'F081',  'F055', 'M012', 'F082', 'F015', 'F036'"
)


def _ids(text):
    return tuple(s.strip().strip("'") for s in text.split(","))


def test_bp4dplus_folds_are_the_readme_lists():
    assert bp4dplus.PARTITIONS[1] == _ids(README_FOLD_1) and bp4dplus.PARTITIONS[4] == _ids(README_FOLD_4)
    assert len(bp4dplus.SUBJECTS) == 140 == len(set(bp4dplus.SUBJECTS))
    assert all(len(p) == 35 for p in bp4dplus.PARTITIONS.values())


@pytest.fixture(scope="module")
def plus_root(tmp_path_factory):
    rng = np.random.default_rng(1)
    seqs = [("M040", "T1"), ("F074", "T6"), ("F029", "T7"), ("M058", "T8")]  # one subject per fold
    sequences = {s: [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(3)] for s in seqs}
    aus = {}
    for s in seqs:
        occ = rng.integers(0, 2, (3, 12))
        occ[0] = 0  # frame 1 of every sequence has no active AU
        occ[1, 0] = 1
        aus[s] = occ
    return bp4dplus.write_miniature(tmp_path_factory.mktemp("bp4dplus"), sequences, aus), aus


def test_bp4dplus_records(plus_root):
    root, aus = plus_root
    header = (root / "AUCoding/AU_OCC/M040_T1.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["0", "1", "2", "4"] and header[20:22] == [
        "23",
        "24",
    ]  # AU24 = column 21 as in FMAE-IAT
    bp4dplus.verify(root, full=False)
    dropped = []
    records = bp4dplus.load_records(root, dropped=dropped)
    assert len(records) == 8 and len(dropped) == 4 and all("no AU present" in d.reason for d in dropped)
    assert len(bp4dplus.load_records(root, active_only=False)) == 12
    rec = {r.key: r for r in records}["F029/T7/0002"]
    assert rec.aus == tuple(aus[("F029", "T7")][1]) and rec.subject == "F029" and rec.fold == 3
    for k, subject in zip(bp4dplus.FOLDS, ("M040", "F074", "F029", "M058")):
        parts = bp4dplus.split(records, k)
        assert {r.subject for r in parts["test"]} == {subject} and len(parts["train"]) == 6


def test_bp4dplus_missing_column(plus_root, tmp_path):
    root = shutil.copytree(plus_root[0], tmp_path / "p")
    path = root / "AUCoding/AU_OCC/F074_T6.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0].replace(",24,", ",25,"), *lines[1:]]) + "\n")
    with pytest.raises(DatasetError, match=r"F074_T6.csv:1: header has no column for AU 24"):
        bp4dplus.load_records(root)


def test_disfa_partitions():
    assert len(disfa.SUBJECTS) == 27 == len(set(disfa.SUBJECTS))
    assert disfa.PARTITIONS[3] == (
        "SN003",
        "SN004",
        "SN005",
        "SN007",
        "SN008",
        "SN017",
        "SN023",
        "SN025",
        "SN029",
    )


@pytest.fixture(scope="module")
def disfa_root(tmp_path_factory):
    rng = np.random.default_rng(2)
    videos, intensities = {}, {}
    for subject in ("SN001", "SN006", "SN003"):
        videos[subject] = rng.integers(0, 255, (5, 32, 32, 3), dtype=np.uint8)
        values = rng.integers(0, 2, (5, 8))  # 0 or 1: below the threshold
        values[1, 0] = 2  # frame 2: AU1 at intensity 2 -> occurrence
        values[3, 7] = 5  # frame 4: AU26 at intensity 5
        intensities[subject] = values
    return disfa.write_miniature(tmp_path_factory.mktemp("disfa"), videos, intensities)


def test_disfa_records(disfa_root, tmp_path):
    assert (disfa_root / "ActionUnit_Labels/SN001/SN001_au5.txt").read_text().startswith("1,0\n2,0\n")
    disfa.verify(disfa_root, frame_dir=tmp_path / "frames", full=False)
    with pytest.raises(DatasetError, match=r"(?s)expected file.*SN002_au1.txt"):
        disfa.verify(disfa_root, frame_dir=tmp_path / "frames")
    dropped = []
    records = disfa.load_records(disfa_root, frame_dir=tmp_path / "frames", dropped=dropped)
    # frames 2 and 4 are active, both cameras, 3 subjects; frames 1, 3, 5 dropped per subject
    assert len(records) == 12 and len(dropped) == 9
    byk = {r.key: r for r in records}
    assert byk["LeftVideoSN001/00002"].aus == (1, 0, 0, 0, 0, 0, 0, 0)
    assert byk["RightVideoSN006/00004"].aus[7] == 1 and byk["RightVideoSN006/00004"].subject == "SN006"
    assert byk["LeftVideoSN003/00004"].path.is_file() and byk["LeftVideoSN003/00004"].fold == 3
    left = disfa.load_records(disfa_root, frame_dir=tmp_path / "frames", cameras=("left",), active_only=False)
    assert len(left) == 15 and all(r.key.startswith("Left") for r in left)
    parts = disfa.split(records, 2)
    assert {r.subject for r in parts["test"]} == {"SN006"} and len(parts["train"]) == 8


def test_disfa_bad_input(disfa_root, tmp_path):
    root = shutil.copytree(disfa_root, tmp_path / "d")
    path = root / "ActionUnit_Labels/SN006/SN006_au4.txt"
    original = path.read_text()
    lines = original.splitlines()
    path.write_text("\n".join([*lines[:2], "3,6", *lines[3:]]) + "\n")
    with pytest.raises(DatasetError, match=r"SN006_au4.txt:3: unknown label 6; valid intensities: 0-5"):
        disfa.load_records(root, frame_dir=tmp_path / "fr")
    path.write_text(original.replace("\n3,", "\n3;", 1))
    with pytest.raises(DatasetError, match=r"SN006_au4.txt:3: expected 'frame,intensity'"):
        disfa.load_records(root, frame_dir=tmp_path / "fr")
    path.write_text(original.replace("\n3,", "\n2,", 1))
    with pytest.raises(DatasetError, match=r"SN006_au4.txt: duplicate frame 2 at .*:2 and line 3"):
        disfa.load_records(root, frame_dir=tmp_path / "fr")
    path.write_text(original)
    (root / "Videos_RightCamera/RightVideoSN003_comp.avi").unlink()
    with pytest.raises(DatasetError, match=r"(?s)1 listed file.*RightVideoSN003_comp.avi"):
        disfa.load_records(root, frame_dir=tmp_path / "fr")
