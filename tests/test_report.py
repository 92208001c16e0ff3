import json

import pytest

from fer.report import experiment_table, write_experiment_table


def _metrics(tmp_path, fold, seed, acc):
    path = tmp_path / f"fold{fold}" / f"seed{seed}" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"acc": acc, "uar": acc / 2, "war": acc, "mlflow_run_id": f"r{fold}{seed}"}))
    return path


def test_mean_over_folds_and_std_over_seeds(tmp_path):
    files = [_metrics(tmp_path, f, s, a) for f, s, a in [(1, 0, 0.5), (2, 0, 0.7), (1, 1, 0.6), (2, 1, 0.8)]]
    table = experiment_table(files)
    assert list(table["fold"]) == ["1", "1", "2", "2", "mean", "std"]
    mean = table[table.fold == "mean"].iloc[0]
    std = table[table.fold == "std"].iloc[0]
    assert mean["war"] == pytest.approx(65.0)
    assert std["war"] == pytest.approx(5.0)  # seed means 60 and 70
    assert mean["uar"] == pytest.approx(32.5)
    write_experiment_table("exp", files, tmp_path / "t.md", tmp_path / "t.csv")
    md = (tmp_path / "t.md").read_text()
    assert "| mean" in md and "r21" in md


def test_au_metrics_table(tmp_path):
    path = tmp_path / "fold1" / "seed0" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"f1_mean": 0.5, "f1": {"AU1": 0.4, "AU2": 0.6}}))
    table = experiment_table([path])
    assert table.loc[0, "AU2"] == pytest.approx(60.0) and table.loc[0, "f1_mean"] == pytest.approx(50.0)


def test_misplaced_metrics_file_is_refused(tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(ValueError, match="fold<k>/seed<s>"):
        experiment_table([tmp_path / "metrics.json"])
