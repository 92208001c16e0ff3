"""config.yaml is checked before any job starts: wrong keys, types and references fail naming the key."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fer.config import ConfigError, WorkflowConfig

REPO = Path(__file__).resolve().parents[1]
DEMO = yaml.safe_load((REPO / "config.yaml").read_text())


def dry_run(tmp_path: Path, config: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--configfile",
        str(path),
        "--dry-run",
        "--cores",
        "1",
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_demo_config_plans_the_whole_dag(tmp_path):
    result = dry_run(tmp_path, DEMO)
    assert result.returncode == 0, result.stderr[-3000:]
    for rule in (
        "demo_dataset",
        "records",
        "faces",
        "fold_annotations",
        "pretrain_list",
        "pretrain",
        "finetune",
        "table",
    ):
        assert rule in result.stdout, rule
    assert not (tmp_path / "results").exists()


def test_unknown_key_fails_before_any_job(tmp_path):
    config = copy.deepcopy(DEMO)
    config["faces"]["detector_size"] = 640
    result = dry_run(tmp_path, config)
    assert result.returncode != 0
    assert "'detector_size' was unexpected" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_wrong_type_names_the_key(tmp_path):
    config = copy.deepcopy(DEMO)
    config["faces"]["size"] = "large"
    result = dry_run(tmp_path, config)
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "'large' is not of type 'integer'" in out and "['faces']" in out


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda c: c["experiments"]["rafdb_vit_tiny_demo"].update(dataset="affectnet"),
            "is not a key of `datasets`",
        ),
        (
            lambda c: c["experiments"]["rafdb_vit_tiny_demo"].update(pretrain="nope"),
            "is not a key of `pretrain`",
        ),
        (lambda c: c["datasets"]["dfew_demo"].update(folds=[1, 6]), "[6] not among dfew's folds"),
        (lambda c: c["experiments"]["rafdb_vit_tiny_demo"]["overrides"].update(epoch=3), "epoch"),
        (
            lambda c: c["experiments"]["rafdb_vit_tiny_demo"].update(dataset="bp4d_demo"),
            "does not fit dataset",
        ),
    ],
)
def test_cross_references_are_checked(edit, message):
    config = copy.deepcopy(DEMO)
    edit(config)
    with pytest.raises(
        (ConfigError, ValueError, KeyError), match=message.replace("[", r"\[").replace("]", r"\]")
    ):
        WorkflowConfig(config)
