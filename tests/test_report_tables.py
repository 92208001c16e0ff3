"""Paper tables: the published numbers, the fold / seed aggregation, the config checks, the identity probe split,
and one table target run end to end by Snakemake on demo data (the slow test), its numbers linked to MLflow runs.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest
import yaml

from fer.report import LAYOUTS, Cell, load_published, paper_table, render_latex, render_markdown

REPO = Path(__file__).resolve().parents[1]


# -------------------------------------------------------------------------------------------- published numbers
def test_published_numbers_cover_every_table_and_say_why_a_number_is_missing():
    pub = load_published()
    assert set(pub["table"]) == set(LAYOUTS)
    for r in pub.itertuples():
        assert r.metric in LAYOUTS[r.table].metrics, r
        assert r.source, r
        assert not pd.isna(r.value) or r.note, r

    # the seeds' headline numbers
    def get(t, row, col, m):
        return pub[(pub.table == t) & (pub.row == row) & (pub.column == col) & (pub.metric == m)]

    assert get("apvit", "APViT", "RAF-DB", "acc").value.item() == 91.98
    assert get("mae_sfer", "MAE ViT-Base", "RAF-DB", "acc").value.item() == 91.07
    assert get("mae_dfer", "MAFW", "total_paper", "war").value.item() == 54.31
    assert get("fmae_iat_bp4d", "FMAE-IAT", "Avg", "f1").value.item() == 67.1
    assert pd.isna(get("mae_sfer", "ConvNeXt V2-B", "AffectNet-7", "acc").value.item())


def test_published_totals_are_the_means_of_their_parts():
    """Transcription check: each FMAE-IAT Avg is the mean of its AUs, each MAE-DFER total the mean of its folds."""
    pub = load_published()
    for table in ("fmae_iat_bp4d", "fmae_iat_bp4dplus", "fmae_iat_disfa"):
        for row in ("FMAE", "FMAE-IAT"):
            lines = pub[(pub.table == table) & (pub.row == row)]
            aus = lines[lines.column != "Avg"].value
            assert len(aus) == (8 if table == "fmae_iat_disfa" else 12)
            assert aus.mean() == pytest.approx(lines[lines.column == "Avg"].value.item(), abs=0.051), (
                table,
                row,
            )
    dfer = pub[pub.table == "mae_dfer"]
    for row in ("DFEW", "MAFW"):
        for metric in ("uar", "war"):
            lines = dfer[(dfer.row == row) & (dfer.metric == metric)]
            folds = lines[lines.column.str.startswith("fold")].value
            assert len(folds) == 5
            total = lines[lines.column == "total"].value.item()
            assert folds.mean() == pytest.approx(total, abs=0.006), (row, metric)


def test_a_malformed_published_file_names_the_line(tmp_path):
    path = tmp_path / "published.csv"
    path.write_text("table,row,column,metric,value,source,note\napvit,APViT,RAF-DB,acc,91.98%,seed,\n")
    with pytest.raises(ValueError, match=r"published.csv:2: value '91.98%' is not a number"):
        load_published(path)
    path.write_text("table,row,column,metric,value,source,note\napvit,APViT,RAF-DB,acc,,seed,\n")
    with pytest.raises(ValueError, match=r"published.csv:2: empty value without a note"):
        load_published(path)


# ------------------------------------------------------------------------------------------------- aggregation
def _metrics(root: Path, cell: str, fold: int, seed: int, **values) -> str:
    path = root / cell / f"fold{fold}" / f"seed{seed}" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**values, "mlflow_run_id": f"{cell}-{fold}-{seed}"}))
    return str(path)


def test_folds_layout_means_over_folds_and_std_over_seeds(tmp_path):
    war = {(1, 0): 0.70, (1, 1): 0.72, (2, 0): 0.60, (2, 1): 0.66}
    files = [_metrics(tmp_path, "dfew", f, s, uar=w - 0.1, war=w, acc=w) for (f, s), w in war.items()]
    table = paper_table("mae_dfer", [Cell("DFEW", None, files, "dfew")])

    def line(level, col, metric):
        return table[
            (table.level == level) & (table.row == "DFEW") & (table.column == col) & (table.metric == metric)
        ]

    total = line("cell", "total", "war").iloc[0]
    assert total.ours == pytest.approx(67.0)  # seed 0: (70 + 60) / 2 = 65, seed 1: 69
    assert total.ours_std == pytest.approx(2.0)
    assert total.paper == 74.43 and total.delta == pytest.approx(67.0 - 74.43)
    assert (total.n_seeds, total.n_folds) == (2, 2)
    fold1 = line("fold", "fold1", "war").iloc[0]
    assert fold1.ours == pytest.approx(71.0) and fold1.ours_std == pytest.approx(1.0) and fold1.paper == 74.88
    assert sorted(fold1.run_ids.split()) == ["dfew-1-0", "dfew-1-1"]
    assert len(line("run", "fold2", "uar")) == 2
    assert (
        line("cell", "total_paper", "uar").iloc[0].paper == 63.41
    )  # the paper's own total, beside the README's
    # published lines without our runs stay, ours empty
    assert pd.isna(line("cell", "fold5", "war").iloc[0].ours)
    assert line("cell", "fold5", "war").iloc[0].paper == 75.81
    assert pd.isna(table[(table.row == "MAFW") & (table.column == "total")].ours).all()
    # drawn: DFEW's folds are the paper's columns; FERV39k (one split) shows its totals only
    ferv = [_metrics(tmp_path, "ferv", 1, 0, uar=0.4, war=0.5, acc=0.5)]
    table = paper_table("mae_dfer", [Cell("DFEW", None, files, "dfew"), Cell("FERV39k", None, ferv, "ferv")])
    md = render_markdown(table, LAYOUTS["mae_dfer"], "T")
    assert "| DFEW | fold 1 | 61.00 ± 1.00 | 62.59 | -1.59 | 71.00 ± 1.00 | 74.88 | -3.88 |" in md
    assert "| FERV39k | total | 40.00 | 43.29 | -3.29 | 50.00 | 52.50 | -2.50 |" in md
    assert "| FERV39k | fold 1 |" not in md and "| MAFW | fold 1 |  | 36.11 |" in md


def test_au_layout_reads_per_au_f1_and_the_mean(tmp_path):
    files = [
        _metrics(tmp_path, "iat", 1, s, f1_mean=0.5 + s / 10, f1={"AU1": 0.4 + s / 10, "AU2": 0.6 + s / 10})
        for s in (0, 1, 2)
    ]
    table = paper_table("fmae_iat_disfa", [Cell("FMAE-IAT", None, files, "iat")])
    cells = table[(table.level == "cell") & (table.row == "FMAE-IAT")].set_index("column")
    assert cells.loc["AU1"].ours == pytest.approx(50.0) and cells.loc["AU1"].paper == 64.7
    assert cells.loc["Avg"].ours == pytest.approx(60.0)
    assert cells.loc["Avg"].ours_std == pytest.approx(pd.Series([50.0, 60, 70]).std(ddof=0))
    assert pd.isna(cells.loc["AU26"].ours) and cells.loc["AU26"].paper == 71.3
    with pytest.raises(ValueError, match="no per-AU F1"):
        paper_table("fmae_iat_disfa", [Cell("FMAE", None, [_metrics(tmp_path, "x", 1, 0, acc=0.5)], "x")])


def test_drawn_tables_show_ours_paper_and_delta_with_links(tmp_path):
    files = {c: [_metrics(tmp_path, c, 1, 0, acc=a, uar=a, war=a)] for c, a in (("raf", 0.5), ("an8", 0.25))}
    cells = [
        Cell("MAE ViT-Tiny", "RAF-DB", files["raf"], "raf"),
        Cell("MAE ViT-Tiny", "AffectNet-8", files["an8"], "an8"),
    ]
    table = paper_table("mae_sfer", cells)
    md = render_markdown(table, LAYOUTS["mae_sfer"], "T", link=lambda ids: "http://ui/" + ",".join(ids))
    header = next(line for line in md.splitlines() if line.startswith("| Row"))
    assert "RAF-DB ours | RAF-DB paper | RAF-DB Δ" in header and "FERPlus paper" in header
    tiny = next(line for line in md.splitlines() if line.startswith("| MAE ViT-Tiny |"))
    assert (
        "[50.00](http://ui/raf-1-0) | 88.72 | -38.72" in tiny and "[25.00](http://ui/an8-1-0) | 61.45" in tiny
    )
    base = next(line for line in md.splitlines() if line.startswith("| MAE ViT-Base |"))
    assert "| 91.07 |" in base and "http" not in base  # paper only
    assert "'-' in the README" in md  # why ConvNeXt V2-B has no AffectNet numbers
    tex = render_latex(table, LAYOUTS["mae_sfer"], "MAE-SFER 100%")
    assert r"\multicolumn{3}{c}{RAF-DB}" in tex and "50.00 & 88.72 & -38.72" in tex and r"100\%" in tex


# ---------------------------------------------------------------------------------------------- config checks
def _config(tmp_path) -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["tracking"]["uri"] = f"sqlite:///{tmp_path}/mlflow.db"
    return config


def test_config_tables_resolve_cells_and_refuse_mistakes(tmp_path):
    from fer.config import ConfigError, WorkflowConfig
    from fer.engine import RecipeError

    config = _config(tmp_path)
    w = WorkflowConfig(config, base_dir=tmp_path)
    assert set(w.paper_tables()) == set(LAYOUTS)
    bp4d = w.paper_cells("fmae_iat_bp4d")
    assert list(bp4d) == ["FMAE", "FMAE-IAT"] and bp4d["FMAE"]["folds"] == [1, 2]
    assert bp4d["FMAE-IAT"]["overrides"]["model_kwargs"]["embed_dim"] == 96  # table defaults merged in
    probe = w.paper_cell("fmae_iat_id_probe", "FMAE-IAT__BP4D")
    assert w.paper_pretrained("fmae_iat_id_probe", "FMAE-IAT__BP4D") == [
        "results/papers/fmae_iat_bp4d/runs/FMAE-IAT/fold1/seed0/checkpoint-final.pth"
    ]
    assert probe["folds"] == [1]
    cfg = w.paper_finetune_cfg(
        "fmae_iat_bp4d", "FMAE-IAT", 2, 1, str(tmp_path / "ann"), None, str(tmp_path / "o")
    )
    assert cfg["tracking"]["experiment"] == "table_fmae_iat_bp4d"
    assert cfg["tracking"]["tags"] | {"row": "FMAE-IAT", "fold": 2, "seed": 1} == cfg["tracking"]["tags"]
    assert cfg["grad_reverse"] == 2.0 and cfg["seed"] == 1 and cfg["aus"][0] == 1
    # the default target stays the demo's experiments
    assert w.tables() == [f"results/tables/{e}.{x}" for e in config["experiments"] for x in ("md", "csv")]

    def refused(edit, match):
        bad = copy.deepcopy(config)
        edit(bad["tables"]["papers"])
        with pytest.raises((ConfigError, RecipeError), match=match):
            WorkflowConfig(bad, base_dir=tmp_path).paper_tables()

    refused(lambda p: p.update(nope={"cells": []}), "tables.papers.nope: no such paper table")
    refused(lambda p: p["apvit"]["cells"][0].pop("column"), r"apvit.cells\[0\]: .*needs a `column`")
    refused(
        lambda p: p["mae_dfer"]["cells"][0].update(column="x"), r"mae_dfer.cells\[0\]: .*takes no `column`"
    )
    refused(lambda p: p["apvit"]["cells"][0].update(dataset="nope"), "'nope' is not a key of `datasets`")
    refused(lambda p: p["apvit"]["cells"][0].update(dataset="bp4d_demo"), "does not fit dataset 'bp4d_demo'")
    refused(lambda p: p["fmae_iat_disfa"]["cells"][0].update(folds=[3]), r"folds: \[3\] not configured")
    refused(
        lambda p: p["fmae_iat_id_probe"]["cells"][0].pop("finetuned"), "an identity probe needs `finetuned`"
    )
    refused(
        lambda p: p["fmae_iat_id_probe"]["cells"][0]["finetuned"].update(row="nope"),
        "no cell with row 'nope'",
    )
    refused(lambda p: p["apvit"]["cells"].append(dict(p["apvit"]["cells"][0])), "two cells with the same row")
    refused(lambda p: p["apvit"]["cells"][0]["overrides"].update(nope=1), "unknown override key")


# ---------------------------------------------------------------------------------------- identity probe split
def test_identity_probe_split_keeps_every_subject_in_train_and_test(tmp_path):
    from fer.id_probe import write_probe_split

    sources = []
    for name, subjects in (("train", ["F001", "M002"]), ("test", ["F003"])):
        path = tmp_path / f"{name}.csv"
        rows = [["path", "subject", "subject_id", "AU1", "AU2"]]
        rows += [[f"/x/{s}/{i}.jpg", s, 0, i % 2, -1] for s in subjects for i in range(10)]
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows(rows)
        sources.append(path)
    summary = write_probe_split([*sources, sources[1]], tmp_path / "probe", per_subject=6, train_fraction=0.7)
    assert summary["subjects"] == ["F001", "F003", "M002"] and summary["samples"] == {"train": 12, "test": 6}
    read = lambda n: list(csv.reader((tmp_path / "probe" / f"{n}.csv").read_text().splitlines()))  # noqa: E731
    train, test = read("train"), read("test")
    assert train[0] == ["path", "subject", "subject_id", "AU1", "AU2"] and read("val") == test
    ids = {(r[1], r[2]) for r in train[1:]}
    assert ids == {("F001", "0"), ("F003", "1"), ("M002", "2")} == {(r[1], r[2]) for r in test[1:]}
    assert not {r[0] for r in train[1:]} & {r[0] for r in test[1:]}  # split by image
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\n/x.jpg,1\n")
    with pytest.raises(ValueError, match="bad.csv: expected an AU annotation file"):
        write_probe_split([bad], tmp_path / "p2")


# ------------------------------------------------------------------------------------- one target, end to end
SMALL = """
results_dir: results
logs_dir: logs
device: cpu
tracking: {uri: sqlite:///results/mlflow.db}
launcher: {executor: local, timeout_min: 30}
faces: {backend: mtcnn, size: 64, workers: 1}
datasets:
  disfa_demo: {family: disfa, root: data/demo/disfa, demo: true, folds: [1, 2]}
pretrain: {}
experiments:  # never run here: the target below is not `all`
  unused: {dataset: disfa_demo, recipe: fmae_disfa}
tables:
  mlflow_ui: http://127.0.0.1:5999
  papers:
    fmae_iat_disfa:
      defaults:
        dataset: disfa_demo
        overrides:
          model: vit_tiny_patch16
          input_size: 32
          model_kwargs: {img_size: 32, embed_dim: 48, depth: 1, num_heads: 2}
          epochs: 1
          warmup_epochs: 0
          batch_size: 16
          num_workers: 0
      cells:
        - {row: FMAE, recipe: fmae_disfa, seeds: [0, 1]}
        - {row: FMAE-IAT, recipe: fmae_iat_disfa, seeds: [0], folds: [1]}
"""


@pytest.fixture(scope="module")
def disfa_table(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("paper_table")
    (workdir / "config.yaml").write_text(SMALL)
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(workdir), "--configfile", str(workdir / "config.yaml"), "--cores", "2", "table_fmae_iat_disfa"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=1500, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    report = [*command[:-1], "--report", str(workdir / "report.html"), "table_fmae_iat_disfa"]
    done = subprocess.run(report, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return workdir


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_table_target_rows_columns_and_aggregation(disfa_table):
    papers = disfa_table / "results/papers"
    table = pd.read_csv(
        papers / "fmae_iat_disfa.csv", dtype={"fold": str, "seed": str}, keep_default_na=False
    )
    assert {"row", "column", "metric", "fold", "seed", "ours", "ours_std", "paper", "delta", "run_ids",
            "parent_run_id", "mlflow_url"} <= set(table.columns)  # fmt: skip
    aus = ["AU1", "AU2", "AU4", "AU6", "AU9", "AU12", "AU25", "AU26", "Avg"]
    cells = table[table.level == "cell"]
    assert set(cells.row) == {"FMAE", "FMAE-IAT"} and set(cells.column) == set(aus)
    runs = table[table.level == "run"].assign(ours=lambda t: t.ours.astype(float))
    assert sorted({(r.row, r.fold, r.seed) for r in runs.itertuples()}) == [
        ("FMAE", "1", "0"),
        ("FMAE", "1", "1"),
        ("FMAE", "2", "0"),
        ("FMAE", "2", "1"),
        ("FMAE-IAT", "1", "0"),
    ]
    for r in cells.itertuples():
        mine = runs[(runs.row == r.row) & (runs.column == r.column)]
        per_seed = mine.groupby("seed").ours.mean()  # mean over folds of each seed
        assert float(r.ours) == pytest.approx(per_seed.mean(), abs=1e-3), (r.row, r.column)
        assert float(r.ours_std) == pytest.approx(per_seed.std(ddof=0), abs=1e-3)
        folds = table[(table.level == "fold") & (table.row == r.row) & (table.column == r.column)]
        assert float(r.ours) == pytest.approx(
            folds.ours.astype(float).mean(), abs=1e-3
        )  # = mean of fold rows
        assert float(r.delta) == pytest.approx(float(r.ours) - float(r.paper), abs=1e-3)
    md = (papers / "fmae_iat_disfa.md").read_text()
    assert md.count("| AU") == 8 and "| Avg |" in md and "70.1" in md  # FMAE-IAT's published DISFA mean
    assert (papers / "fmae_iat_disfa.tex").read_text().count(r"\\") >= 11
    assert {p.name for p in (papers / "fmae_iat_disfa/plots").glob("*.png")} == {
        "FMAE_au_f1.png",
        "FMAE_curves.png",
        "FMAE-IAT_au_f1.png",
        "FMAE-IAT_curves.png",
    }


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_every_number_links_to_its_mlflow_runs(disfa_table):
    from mlflow import MlflowClient

    papers = disfa_table / "results/papers"
    client = MlflowClient(f"sqlite:///{disfa_table}/results/mlflow.db")
    experiment = client.get_experiment_by_name("table_fmae_iat_disfa")
    table = pd.read_csv(papers / "fmae_iat_disfa.csv", dtype=str, keep_default_na=False)
    parents = {}
    for r in table[table.level == "run"].itertuples():
        run = client.get_run(r.run_ids)
        assert run.info.experiment_id == experiment.experiment_id
        tags = run.data.tags
        assert (tags["dataset"], tags["fold"], tags["seed"]) == ("disfa_demo", r.fold, r.seed)
        assert (
            tags["recipe"] == {"FMAE": "fmae_disfa", "FMAE-IAT": "fmae_iat_disfa"}[r.row]
            and tags["git_commit"]
        )
        key = "test/f1_mean" if r.column == "Avg" else f"test/f1_{r.column}"
        assert 100 * run.data.metrics[key] == pytest.approx(float(r.ours), abs=1e-3)
        assert tags["mlflow.parentRunId"] == r.parent_run_id
        parents[r.row] = r.parent_run_id
    for row, parent_id in parents.items():  # one parent per table row, named after it
        parent = client.get_run(parent_id)
        assert parent.info.run_name == row and parent.data.tags["fer.row"] == row
        assert parent.data.metrics["Avg/F1"] == pytest.approx(
            float(table[(table.level == "cell") & (table.row == row) & (table.column == "Avg")].ours.item()),
            abs=1e-3,
        )
    # every number of the Markdown table links to the run(s) it comes from
    md = (papers / "fmae_iat_disfa.md").read_text()
    table_part = md.split("## Runs")[0]
    numbers = re.findall(
        r"\[(-?\d+\.\d\d(?: ± \d+\.\d\d)?)\]\((http://127\.0\.0\.1:5999/[^)]+)\)", table_part
    )
    plain = re.findall(r"\| (-?\d+\.\d\d(?: ± \d+\.\d\d)?) \|", table_part)
    assert len(numbers) == 2 * 9 and not [p for p in plain if "±" in p]
    for _, url in numbers:
        ids = re.findall(r"[0-9a-f]{32}", unquote(url))
        assert ids and all(client.get_run(i).info.experiment_id == experiment.experiment_id for i in ids)
    runs_part = md.split("## Runs")[1]
    assert len(re.findall(r"/#/experiments/\d+/runs/[0-9a-f]{32}", runs_part)) == 5


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_snakemake_report_holds_the_table_and_its_plots(disfa_table):
    report = (disfa_table / "report.html").read_text()
    assert "Paper tables" in report
    for name in ("fmae_iat_disfa.md", "fmae_iat_disfa.csv", "FMAE_au_f1.png", "FMAE-IAT_curves.png"):
        assert name in report, f"{name} not in the Snakemake report"
