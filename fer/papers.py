"""The paper-table step: our runs of one seed table beside the published numbers, plots, and the MLflow view.

`write_paper_table` is what the workflow's table targets call (workflow_scripts/paper_table.py): it reads the
metrics.json of every fold and seed of the table's cells, writes <table>.md / .csv / .tex and the plots, nests
the runs under one MLflow parent per table row, and links every number of the Markdown table to its run(s).
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from fer import plots
from fer.io import atomic_path, write_text
from fer.report import (
    LAYOUTS,
    METRIC_NAMES,
    Cell,
    Layout,
    collect_runs,
    load_published,
    paper_table,
    render_latex,
    render_markdown,
    shown_lines,
)
from fer.report_mlflow import DEFAULT_UI, TableRuns, metric_key, run_links

log = logging.getLogger(__name__)

_NOTE_LIMIT = 19000  # MLflow keeps at most 20000 characters in an experiment tag


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text).strip("_") or "cell"


def _curve_keys(layout: Layout) -> list[str]:
    """Training loss (per epoch, else per logged step) and the validation metrics the table reports."""
    val = ["val/f1_mean"] if layout.kind == "aus" else [f"val/{m}" for m in layout.metrics]
    return ["epoch/train_loss", "train/loss", *val]


def draw_plots(
    name: str,
    cells: list[Cell],
    table: pd.DataFrame,
    layout: Layout,
    plot_dir: str | os.PathLike,
    runs: TableRuns | None = None,
) -> dict[str, list[Path]]:
    """The plots of each cell ({cell name: [png]}): summed confusion matrix (expression cells), per-AU F1 bars
    beside the paper's (AU cells), and learning curves of every fold and seed (when the runs are in MLflow)."""
    plot_dir = Path(plot_dir)
    plot_dir.mkdir(parents=True, exist_ok=True)
    _, runs_of = collect_runs(cells, layout)
    out: dict[str, list[Path]] = defaultdict(list)
    for cell in cells:
        key = cell.name or cell.row
        label = f"{cell.row} / {cell.column}" if cell.column else cell.row
        stem = plot_dir / _slug(key)
        parsed = runs_of[key]
        confusions = [r["metrics"]["confusion"] for r in parsed if "confusion" in r["metrics"]]
        if confusions and len({np.shape(c) for c in confusions}) == 1:
            classes = parsed[0]["metrics"].get("classes")
            total = np.sum([np.asarray(c, dtype=float) for c in confusions], axis=0)
            title = f"{name}: {label}, test, summed over {len(confusions)} run(s)"
            out[key].append(plots.confusion_matrix(total, classes, f"{stem}_confusion.png", title))
        if layout.kind == "aus":
            lines = table[(table["level"] == "cell") & (table["cell"] == key)]
            ours = {
                r.column: (r.ours, 0.0 if pd.isna(r.ours_std) else r.ours_std) for r in lines.itertuples()
            }
            paper = {r.column: r.paper for r in lines.itertuples() if not pd.isna(r.paper)}
            out[key].append(plots.au_f1_bars(ours, paper, f"{stem}_au_f1.png", f"{name}: {label}"))
        if runs is not None:
            panels: dict[str, dict] = defaultdict(dict)
            for run in parsed:
                if run["run_id"]:
                    for metric, points in runs.history(run["run_id"], _curve_keys(layout)).items():
                        panels[metric][f"fold{run['fold']} seed{run['seed']}"] = points
            if "epoch/train_loss" in panels:
                panels.pop("train/loss", None)
            if panels:
                out[key].append(plots.learning_curves(panels, f"{stem}_curves.png", f"{name}: {label}"))
    return dict(out)


def _row_metrics(table: pd.DataFrame, layout: Layout) -> dict[str, dict[str, float]]:
    """{row: {column/metric: ours}} of the numbers the drawn table shows, for the row's parent run."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for r in shown_lines(table, layout).itertuples():
        if pd.isna(r.ours):
            continue
        key = metric_key(r.column, METRIC_NAMES.get(r.metric, r.metric))
        out[r.row][key] = r.ours
        if r.n_seeds > 1:
            out[r.row][key + "_std"] = r.ours_std
    return out


def write_paper_table(
    name: str,
    cells: Iterable[Cell],
    md_path: str | os.PathLike,
    csv_path: str | os.PathLike,
    tex_path: str | os.PathLike,
    plot_dir: str | os.PathLike,
    tracking_uri: str | None = None,
    ui_url: str = DEFAULT_UI,
    title: str | None = None,
    published: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Write one paper table (Markdown, CSV, LaTeX, plots) and its MLflow view; returns the long table.

    tracking_uri: the store the cells' runs logged to (None: no MLflow, numbers unlinked). ui_url: where
    `mlflow ui` serves that store, the base of the links in the Markdown table and the CSV.
    """
    cells = list(cells)
    layout = LAYOUTS[name]
    title = title or layout.title
    table = paper_table(name, cells, load_published(published), layout)
    runs = TableRuns(tracking_uri, name) if tracking_uri else None
    parents: dict[str, str] = {}
    link = None
    if runs is not None:
        by_row: dict[str, list[str]] = defaultdict(list)
        for r in table[(table["level"] == "run") & (table["run_ids"] != "")].itertuples():
            if r.run_ids not in by_row[r.row]:
                by_row[r.row].append(r.run_ids)
        parents = runs.adopt(by_row)
        link = run_links(ui_url, runs.experiment_id)
    drawn = draw_plots(name, cells, table, layout, plot_dir, runs)
    md_dir = Path(md_path).resolve().parent
    plot_files = [os.path.relpath(p.resolve(), md_dir) for files in drawn.values() for p in files]

    table["parent_run_id"] = table["row"].map(parents).fillna("")
    table["mlflow_url"] = [link(ids.split()) or "" if link else "" for ids in table["run_ids"].fillna("")]
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")
    write_text(md_path, render_markdown(table, layout, title, link, plot_files))
    write_text(tex_path, render_latex(table, layout, title, label=f"tab:{name}"))

    if runs is not None:
        by_cell_row = {c.name or c.row: c.row for c in cells}
        row_plots: dict[str, list[Path]] = defaultdict(list)
        for key, files in drawn.items():
            row_plots[by_cell_row[key]].extend(files)
        for row, metrics in _row_metrics(table, layout).items():
            if row in parents:
                runs.log_row(parents[row], metrics, row_plots.get(row, []), "plots")
                runs.log_row(parents[row], {}, [md_path, csv_path, tex_path], "table")
        note = render_markdown(table, layout, title, link, details=False)
        if len(note) > _NOTE_LIMIT:
            note = note[:_NOTE_LIMIT] + f"\n\n(cut; the whole table is {Path(md_path).name})\n"
        runs.describe(note)
    runs_total = len(table.loc[table["level"] == "run", ["cell", "fold", "seed"]].drop_duplicates())
    log.info("table %s: %d cells, %d runs, written to %s", name, len(cells), runs_total, md_path)
    return table
