"""MAFW, FERV39k and VoxCeleb2 adapters on miniature copies: folds, label mapping, tree checks, bad input."""

from __future__ import annotations

import shutil

import decord
import numpy as np
import pytest

from fer.datasets import DatasetError, ferv39k, mafw, voxceleb2


def _clips(n, t=4, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (t, 24, 24, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture(scope="module")
def mafw_root(tmp_path_factory):
    labels = [0, 4, 8, 9, 10, 7, 6]
    folds = [1, 2, 3, 4, 5, 1, 2]
    return mafw.write_miniature(tmp_path_factory.mktemp("mafw"), _clips(7), labels, folds, frames=True)


def test_mafw_folds_and_labels(mafw_root):
    listed = (mafw_root / "Train & Test Set/single/no_caption/set_1/test.txt").read_text()
    assert listed == "00001.mp4 anger\n00006.mp4 contempt\n"
    mafw.verify(mafw_root, full=False)
    with pytest.raises(DatasetError, match="10045"):
        mafw.verify(mafw_root)
    records = mafw.load_records(mafw_root)
    assert [r.label for r in records] == [0, 4, 8, 9, 10, 7, 6] and mafw.CLASSES[9] == "helplessness"
    for k in mafw.FOLDS:
        parts = mafw.split(records, k)
        test = (mafw_root / f"Train & Test Set/single/no_caption/set_{k}/test.txt").read_text().split()[::2]
        assert [f"{r.key}.mp4" for r in parts["test"]] == test and parts["val"] == parts["test"]
        assert len(parts["train"]) == 7 - len(test)
    assert len(decord.VideoReader(str(records[0].path))) == 4
    assert mafw.load_records(mafw_root, media="frames")[0].path.is_dir()


def test_mafw_bad_input(mafw_root, tmp_path):
    shutil.copytree(mafw_root, tmp_path / "m")
    path = tmp_path / "m/Train & Test Set/single/no_caption/set_2/test.txt"
    path.write_text("00002.mp4 neutral\n00007.mp4 joy\n")
    with pytest.raises(DatasetError, match=r"set_2/test.txt:2: unknown label 'joy'; valid labels: anger"):
        mafw.load_records(tmp_path / "m")
    path.write_text("00002.mp4 neutral\n00007.mp4\n")
    with pytest.raises(DatasetError, match=r"set_2/test.txt:2: expected '<clip>.mp4 <emotion>'"):
        mafw.load_records(tmp_path / "m")
    path.write_text("00002.mp4 neutral\n00001.mp4 anger\n00007.mp4 surprise\n")
    with pytest.raises(DatasetError, match=r"duplicate id '00001' in two test sets: .*set_1/test.txt:1 and"):
        mafw.load_records(tmp_path / "m")
    path.write_text("00002.mp4 neutral\n00007.mp4 surprise\n")
    (tmp_path / "m/data/clips/00007.mp4").unlink()
    with pytest.raises(DatasetError, match=r"(?s)1 listed file.*00007.mp4 \(.*set_2/test.txt:2\)"):
        mafw.load_records(tmp_path / "m")


@pytest.fixture(scope="module")
def ferv_root(tmp_path_factory):
    labels = [0, 1, 2, 3, 4, 5, 6, 3]
    splits = ["train"] * 6 + ["test"] * 2
    scenes = ["Daily/Talk"] * 4 + ["Action/Fight"] * 4
    return ferv39k.write_miniature(tmp_path_factory.mktemp("ferv"), _clips(8, t=3), labels, splits, scenes)


def test_ferv39k(ferv_root):
    first = (ferv_root / "4_setups/All_scenes/train_All.csv").read_text().splitlines()[0]
    assert first == "Daily/Talk/Happy/0001 Happy"
    ferv39k.verify(ferv_root, full=False)
    records = ferv39k.load_records(ferv_root)
    parts = ferv39k.split(records, 1)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [6, 2, 2]
    byk = {r.key: r for r in records}
    assert byk["Action/Fight/Angry/0008"].label == 3 and ferv39k.CLASSES[3] == "angry"
    assert len(list(byk["Daily/Talk/Sad/0002"].path.glob("*.jpg"))) == 3


def test_ferv39k_bad_input(ferv_root, tmp_path):
    shutil.copytree(ferv_root, tmp_path / "f")
    path = tmp_path / "f/4_setups/All_scenes/test_All.csv"
    original = path.read_text()
    path.write_text(original.replace(" Fear", " Scared", 1))
    with pytest.raises(DatasetError, match=r"test_All.csv:1: unknown label 'Scared'; valid labels: Happy"):
        ferv39k.load_records(tmp_path / "f")
    path.write_text(original + "Daily/Talk/Happy/0001 Happy\n")
    with pytest.raises(
        DatasetError, match=r"duplicate id 'Daily/Talk/Happy/0001' listed at .*train_All.csv:1"
    ):
        ferv39k.load_records(tmp_path / "f")
    path.write_text(original + "Daily/Talk/Happy/0099 Happy\n")
    with pytest.raises(DatasetError, match=r"(?s)not found.*0099 \(.*test_All.csv:3\)"):
        ferv39k.load_records(tmp_path / "f")


def test_voxceleb2(tmp_path):
    root = voxceleb2.write_miniature(tmp_path / "vox", _clips(5), fps=25)
    voxceleb2.verify(root, full=False)
    with pytest.raises(DatasetError, match="5994"):
        voxceleb2.verify(root)
    records = voxceleb2.load_records(root)
    assert [r.key for r in records][:2] == ["id10000/yt10000000/00001", "id10000/yt10000000/00002"]
    assert {r.label for r in records} == {0} and {r.split for r in records} == {"unlabeled"}
    assert [r.subject for r in records] == ["id10000", "id10000", "id10001", "id10001", "id10002"]
    parts = voxceleb2.split(records, 1)
    assert len(parts["train"]) == 5 and parts["test"] == []
    assert len(decord.VideoReader(str(records[4].path))) == 4
    (root / "dev/mp4/id10001/yt10001001/notes.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"notes.txt: expected only NNNNN.mp4 clips"):
        voxceleb2.load_records(root)
    (root / "dev/mp4/id10001/yt10001001/notes.txt").unlink()
    (root / "dev/mp4/speaker").mkdir()
    with pytest.raises(DatasetError, match=r"speaker: expected identity folders named id00012"):
        voxceleb2.load_records(root)
