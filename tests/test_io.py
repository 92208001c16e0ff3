import argparse
import datetime

import numpy as np
import pytest
import torch

from fer.io import UnsafeCheckpointError, atomic_path, load_checkpoint, save_checkpoint, write_json


def test_released_checkpoint_classes_load(tmp_path):
    path = tmp_path / "released.pth"
    torch.save(
        {
            "model": {"w": torch.ones(2)},
            "args": argparse.Namespace(lr=1e-3),
            "epoch": np.int64(3),
            "acc": np.float64(0.5),
        },
        path,
    )
    ckpt = load_checkpoint(path)
    assert ckpt["args"].lr == 1e-3 and int(ckpt["epoch"]) == 3
    assert torch.equal(ckpt["model"]["w"], torch.ones(2))


def test_checkpoint_with_arbitrary_object_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": {}, "saved_at": datetime.datetime(2024, 1, 1)}, path)
    with pytest.raises(UnsafeCheckpointError, match="evil.pth"):
        load_checkpoint(path)


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_checkpoint(tmp_path / "nope.pth")


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(path, {"acc": 1})
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert path.read_text().strip().startswith("{") and '"acc": 1' in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_save_checkpoint_roundtrip(tmp_path):
    save_checkpoint(
        {"model": {"w": torch.arange(3)}, "config": {"model": "vit_tiny_patch16"}}, tmp_path / "c.pth"
    )
    assert load_checkpoint(tmp_path / "c.pth")["config"]["model"] == "vit_tiny_patch16"
