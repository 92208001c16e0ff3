"""Result tables: one row per fold and seed, the mean over folds (and std over seeds), Markdown and CSV."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fer.io import atomic_path, write_text

_FOLD_SEED = re.compile(r"fold(\d+)/seed(\d+)/metrics\.json$")


def _row(path: Path) -> dict:
    match = _FOLD_SEED.search(path.as_posix())
    if not match:
        raise ValueError(f"{path}: expected .../fold<k>/seed<s>/metrics.json")
    metrics = json.loads(path.read_text())
    row = {"fold": int(match.group(1)), "seed": int(match.group(2))}
    if "f1_mean" in metrics:
        row.update({"f1_mean": 100 * metrics["f1_mean"]})
        row.update({au: 100 * v for au, v in metrics["f1"].items()})
    else:
        row.update({"acc": 100 * metrics["acc"], "uar": 100 * metrics["uar"], "war": 100 * metrics["war"]})
    row["mlflow_run_id"] = metrics.get("mlflow_run_id", "")
    return row


def experiment_table(metrics_files: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Fold/seed rows, then `mean` (over folds of the per-seed values) and `std` (over seeds of the fold means)."""
    rows = pd.DataFrame([_row(Path(p)) for p in metrics_files]).sort_values(["fold", "seed"])
    numeric = [c for c in rows.columns if c not in ("fold", "seed", "mlflow_run_id")]
    per_seed = rows.groupby("seed")[numeric].mean()
    mean = per_seed.mean().to_dict()
    std = per_seed.std(ddof=0).to_dict()
    table = rows.astype({"fold": str, "seed": str})
    summary = pd.DataFrame([{"fold": "mean", "seed": "all", **mean}, {"fold": "std", "seed": "all", **std}])
    return pd.concat([table, summary], ignore_index=True)


def write_experiment_table(
    name: str,
    metrics_files: Iterable[str | os.PathLike],
    md_path: str | os.PathLike,
    csv_path: str | os.PathLike,
) -> pd.DataFrame:
    table = experiment_table(metrics_files)
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.2f")
    shown = table.fillna("")
    write_text(
        md_path,
        f"# {name}\n\nPercent; `mean` averages the folds, `std` is over seeds.\n\n"
        + shown.to_markdown(index=False, floatfmt=".2f")
        + "\n",
    )
    return table


# ======================================================================================================== papers
# The seeds' tables regenerated: our runs beside the published numbers (fer/published.csv), one table per paper
# table. A *cell* of the config is one experiment (a dataset, a recipe, folds x seeds); the layout says how its
# numbers fill the published table: one column per dataset (MAE-SFER), per fold (MAE-DFER) or per AU (FMAE-IAT).

PUBLISHED = Path(__file__).with_name("published.csv")
PUBLISHED_COLUMNS = ("table", "row", "column", "metric", "value", "source", "note")
METRIC_NAMES = {"acc": "Acc", "uar": "UAR", "war": "WAR", "f1": "F1"}
_FOLD_COLUMN = re.compile(r"fold(\d+)$")


@dataclass(frozen=True)
class Layout:
    """How a published table is filled and drawn.

    kind: ``datasets`` (a cell per row and column, e.g. model x dataset), ``folds`` (a cell per row whose folds
    are the columns fold<k>, plus totals) or ``aus`` (a cell per row whose per-AU F1 are the columns, plus Avg).
    lines / groups: the fields that make a line of the drawn table and the fields spread across its columns.
    """

    kind: str
    metrics: tuple[str, ...]
    lines: tuple[str, ...]
    groups: tuple[str, ...]
    title: str


LAYOUTS = {
    "mae_sfer": Layout("datasets", ("acc",), ("row",), ("column",),
                       "MAE-SFER: accuracy (%) of MAE-pretrained models finetuned on static FER datasets"),
    "mae_dfer": Layout("folds", ("uar", "war"), ("row", "column"), ("metric",),
                       "MAE-DFER: UAR / WAR (%) per fold and in total on DFEW, FERV39k and MAFW"),
    "fmae_iat_bp4d": Layout("aus", ("f1",), ("column",), ("row",), "FMAE-IAT: per-AU F1 (%) on BP4D"),
    "fmae_iat_bp4dplus": Layout("aus", ("f1",), ("column",), ("row",), "FMAE-IAT: per-AU F1 (%) on BP4D+"),
    "fmae_iat_disfa": Layout("aus", ("f1",), ("column",), ("row",), "FMAE-IAT: per-AU F1 (%) on DISFA"),
    "fmae_iat_fer": Layout("datasets", ("acc",), ("row",), ("column",),
                           "FMAE-IAT: FMAE accuracy (%) on FER benchmarks"),
    "fmae_iat_id_probe": Layout("datasets", ("acc",), ("row",), ("column",),
                                "FMAE-IAT: identity linear probing accuracy (%) of the finetuned encoders"),
    "apvit": Layout("datasets", ("acc",), ("row",), ("column",), "APViT: accuracy (%) on RAF-DB"),
}  # fmt: skip


@dataclass
class Cell:
    """One configured experiment of a table: `column` is None where the experiment fills a whole row."""

    row: str
    column: str | None
    metrics_files: list[str]
    name: str = ""


def load_published(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The published numbers: one line per (table, row, column, metric); value is NaN where the paper has none
    (the `note` says why), `value_text` keeps the number as printed."""
    path = Path(path or PUBLISHED)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if tuple(frame.columns) != PUBLISHED_COLUMNS:
        raise ValueError(
            f"{path}: expected the header {','.join(PUBLISHED_COLUMNS)}, got {','.join(frame.columns)}"
        )
    values = []
    for i, (text, note) in enumerate(zip(frame["value"], frame["note"]), start=2):
        try:
            values.append(float(text) if text else math.nan)
        except ValueError:
            raise ValueError(
                f"{path}:{i}: value {text!r} is not a number; write it as printed (e.g. 91.07) or "
                f"leave it empty with a note"
            ) from None
        if not text and not note:
            raise ValueError(f"{path}:{i}: empty value without a note; say why the paper has no number")
    frame["value_text"] = frame["value"]
    frame["value"] = values
    keys = frame[["table", "row", "column", "metric"]]
    if keys.duplicated().any():
        line = int(keys.duplicated().to_numpy().nonzero()[0][0]) + 2
        raise ValueError(f"{path}:{line}: (table, row, column, metric) listed twice")
    return frame


def read_run(path: str | os.PathLike) -> dict:
    """fold, seed, run id and the metrics of one .../fold<k>/seed<s>/metrics.json."""
    path = Path(path)
    match = _FOLD_SEED.search(path.as_posix())
    if not match:
        raise ValueError(f"{path}: expected .../fold<k>/seed<s>/metrics.json")
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(
            f"{path}: unreadable metrics ({err}); rerun the finetune job that writes it"
        ) from None
    return {"fold": int(match.group(1)), "seed": int(match.group(2)), "run_id": metrics.get("mlflow_run_id") or "",
            "metrics": metrics, "path": str(path)}  # fmt: skip


def _run_values(cell: Cell, run: dict, layout: Layout) -> list[tuple[str, str, float]]:
    """(column, metric, value in %) of one run, as the layout places them."""
    m, where = run["metrics"], run["path"]
    if layout.kind == "aus":
        if "f1" not in m or "f1_mean" not in m:
            raise ValueError(
                f"{where}: no per-AU F1 (f1, f1_mean); table layout {layout.kind!r} needs an AU run"
            )
        return [
            *((au, "f1", 100 * float(v)) for au, v in m["f1"].items()),
            ("Avg", "f1", 100 * float(m["f1_mean"])),
        ]
    column = f"fold{run['fold']}" if layout.kind == "folds" else cell.column
    missing = [k for k in layout.metrics if k not in m]
    if missing:
        raise ValueError(f"{where}: metrics {missing} missing; the table needs {list(layout.metrics)}")
    return [(column, k, 100 * float(m[k])) for k in layout.metrics]


def collect_runs(cells: Iterable[Cell], layout: Layout) -> tuple[pd.DataFrame, dict[str, list[dict]]]:
    """One line per run, column and metric (level `run`), and the parsed runs of each cell by cell name."""
    lines, runs_of = [], {}
    for cell in cells:
        if layout.kind == "datasets" and not cell.column:
            raise ValueError(
                f"cell {cell.name or cell.row!r}: layout {layout.kind!r} needs a column per cell"
            )
        runs = [read_run(p) for p in cell.metrics_files]
        runs_of[cell.name or cell.row] = runs
        for run in runs:
            for column, metric, value in _run_values(cell, run, layout):
                lines.append({"row": cell.row, "column": column, "metric": metric, "fold": run["fold"],
                              "seed": run["seed"], "value": value, "run_id": run["run_id"],
                              "cell": cell.name or cell.row})  # fmt: skip
    columns = ["row", "column", "metric", "fold", "seed", "value", "run_id", "cell"]
    return pd.DataFrame(lines, columns=columns), runs_of


def _summary(runs: pd.DataFrame) -> dict:
    """Mean over folds of each seed, then mean and std (ddof 0) over seeds; as experiment_table."""
    per_seed = runs.groupby("seed")["value"].mean()
    ids = " ".join(runs.sort_values(["fold", "seed"])["run_id"].astype(str))
    return {"ours": per_seed.mean(), "ours_std": per_seed.std(ddof=0), "n_seeds": len(per_seed),
            "n_folds": runs["fold"].nunique(), "run_ids": ids.strip()}  # fmt: skip


def paper_table(
    name: str, cells: Iterable[Cell], published: pd.DataFrame | None = None, layout: Layout | None = None
) -> pd.DataFrame:
    """The long table: levels `run` (one fold and seed), `fold` (mean and std over seeds) and `cell` (the
    number the paper prints: mean over folds, std over seeds), each with the paper's value and ours - paper.

    Published lines no cell fills stay as `cell` lines with ours empty, so the table shows the paper's layout.
    """
    layout = layout or LAYOUTS[name]
    published = load_published() if published is None else published
    paper = published[published["table"] == name]
    ref = {(r.row, r.column, r.metric): r for r in paper.itertuples()}
    runs, _ = collect_runs(cells, layout)
    out = []

    def add(level, row, column, metric, fold, seed, stats, cell):
        pub = ref.get((row, column, metric))
        value = pub.value if pub is not None else math.nan
        out.append(
            {
                "table": name,
                "level": level,
                "row": row,
                "column": column,
                "metric": metric,
                "fold": str(fold),
                "seed": str(seed),
                **stats,
                "paper": value,
                "paper_text": pub.value_text if pub is not None else "",
                "delta": stats.get("ours", math.nan) - value,
                "cell": cell,
                "source": pub.source if pub is not None else "",
                "note": pub.note if pub is not None else "",
            }
        )

    for r in runs.itertuples():
        stats = {"ours": r.value, "ours_std": math.nan, "n_seeds": 1, "n_folds": 1, "run_ids": r.run_id}
        add("run", r.row, r.column, r.metric, r.fold, r.seed, stats, r.cell)
    done = set()
    group_keys = ["cell", "row", "metric"] if layout.kind == "folds" else ["cell", "row", "column", "metric"]
    for key, group in runs.groupby(group_keys, sort=False):
        cell, row, metric = key[0], key[1], key[-1]
        for (column, fold), per_fold in group.groupby(["column", "fold"], sort=False):
            add("fold", row, column, metric, fold, "all", _summary(per_fold), cell)
            if layout.kind == "folds":
                done.add((row, column, metric))
        if layout.kind == "folds":
            totals = [c for c in paper[(paper.row == row) & (paper.metric == metric)]["column"]
                      if not _FOLD_COLUMN.match(c)] or ["total"]  # fmt: skip
        else:
            totals = [key[2]]
        for column in totals:
            add("cell", row, column, metric, "all", "all", _summary(group), cell)
            done.add((row, column, metric))
    for r in paper.itertuples():
        if (r.row, r.column, r.metric) not in done:
            add(
                "cell",
                r.row,
                r.column,
                r.metric,
                "all",
                "all",
                {"ours": math.nan, "n_seeds": 0, "n_folds": 0},
                "",
            )
    frame = pd.DataFrame(out, columns=TABLE_COLUMNS)
    # the paper's order of rows and columns first, then ours in the config's order
    rank = {f: _order([*paper[f], *frame[f]]) for f in ("row", "column")}
    rank["metric"] = _order([*layout.metrics, *frame["metric"]])
    rank["level"] = {"cell": 0, "fold": 1, "run": 2}
    sort_key = pd.DataFrame({f: frame[f].map(rank[f]) for f in ("row", "column", "metric", "level")})
    sort_key["fold"], sort_key["seed"] = frame["fold"], frame["seed"]
    return frame.loc[sort_key.sort_values(list(sort_key.columns), kind="stable").index].reset_index(drop=True)


TABLE_COLUMNS = ["table", "level", "row", "column", "metric", "fold", "seed", "ours", "ours_std", "n_seeds",
                 "n_folds", "paper", "paper_text", "delta", "run_ids", "cell", "source", "note"]  # fmt: skip


# -- drawing -------------------------------------------------------------------------------------------------------
def _label(field: str, value: str) -> str:
    if field == "metric":
        return METRIC_NAMES.get(value, value)
    if field == "column":
        fold = _FOLD_COLUMN.match(value)
        if fold:
            return f"fold {fold.group(1)}"
        return {"total": "total", "total_paper": "total (paper)"}.get(value, value)
    return value


def _order(values: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out.setdefault(v, len(out))
    return out


def shown_lines(table: pd.DataFrame, layout: Layout) -> pd.DataFrame:
    """The lines the drawn table shows: `cell` lines, and `fold` lines where the folds are the paper's columns
    (a row with published per-fold numbers, or with several folds; FERV39k's single split shows its total only)."""
    keep = table["level"] == "cell"
    if layout.kind == "folds":
        folds = table[
            (table["level"] == "fold") | ((table["level"] == "cell") & table["column"].str.match(r"fold\d+$"))
        ]
        rows = {
            row
            for row, group in folds.groupby("row")
            if group["paper"].notna().any() or group["column"].nunique() > 1
        }
        keep |= (table["level"] == "fold") & table["row"].isin(rows)
    return table[keep]


def grid(table: pd.DataFrame, layout: Layout) -> tuple[list[tuple], list[tuple], dict]:
    """(line keys, group keys, {(line, group): table line}) in the paper's order, then ours."""
    shown = shown_lines(table, layout)  # already in the paper's order (paper_table sorts it)
    order = {f: _order(shown[f]) for f in ("row", "column", "metric")}
    cells = {}
    for r in shown.to_dict("records"):
        cells[(tuple(r[f] for f in layout.lines), tuple(r[f] for f in layout.groups))] = r
    key = lambda fields: lambda k: tuple(order[f][v] for f, v in zip(fields, k))  # noqa: E731
    lines = sorted({k[0] for k in cells}, key=key(layout.lines))
    groups = sorted({k[1] for k in cells}, key=key(layout.groups))
    return lines, groups, cells


def format_ours(line: dict, digits: int = 2) -> str:
    if line is None or pd.isna(line.get("ours")):
        return ""
    text = f"{line['ours']:.{digits}f}"
    if line.get("n_seeds", 1) > 1 and not pd.isna(line.get("ours_std")):
        text += f" ± {line['ours_std']:.{digits}f}"
    return text


def format_delta(line: dict | None, digits: int = 2) -> str:
    return "" if line is None or pd.isna(line.get("delta")) else f"{line['delta']:+.{digits}f}"


def render_markdown(
    table: pd.DataFrame,
    layout: Layout,
    title: str,
    link=None,
    plots: Iterable[str] = (),
    details: bool = True,
) -> str:
    """The table as Markdown: ours | paper | Δ per column group; each of our numbers links to its MLflow run(s)
    when `link(run_ids) -> url` is given; a list of every run below it, then the plots (paths relative to it)."""
    lines, groups, cells = grid(table, layout)
    header = [f.capitalize() for f in layout.lines]
    for g in groups:
        name = " ".join(_label(f, v) for f, v in zip(layout.groups, g))
        header += [f"{name} ours", f"{name} paper", f"{name} Δ"]
    rows = []
    for line_key in lines:
        row = [_label(f, v) for f, v in zip(layout.lines, line_key)]
        for g in groups:
            c = cells.get((line_key, g))
            ours = format_ours(c)
            url = link(c["run_ids"].split()) if (link and c is not None and ours and c["run_ids"]) else None
            row += [
                f"[{ours}]({url})" if url else ours,
                c["paper_text"] if c is not None else "",
                format_delta(c),
            ]
        rows.append(row)
    out = [f"# {title}", "", _legend(table), "", _md_table(header, rows), ""]
    notes = _notes(table)
    if notes:
        out += ["Notes on the published numbers:", "", *notes, ""]
    sources = sorted({s for s in shown_lines(table, layout)["source"] if s})
    if sources:
        out += ["Sources:", "", *(f"- {s}" for s in sources), ""]
    if details:
        out += ["## Runs", "", _runs_md(table, layout, link), ""]
    plots = list(plots)
    if plots:
        out += ["## Plots", "", *(f"![{Path(p).stem}]({p})" for p in plots), ""]
    return "\n".join(out)


def _legend(table: pd.DataFrame) -> str:
    cell = table[(table["level"] == "cell") & table["ours"].notna()]
    seeds = sorted({int(n) for n in cell["n_seeds"]}) or [0]
    folds = sorted({int(n) for n in cell["n_folds"]}) or [0]
    return (
        f"Percent. *ours*: the mean over folds ({'/'.join(map(str, folds))} fold(s)) of each seed, then the mean "
        f"± std over seeds ({'/'.join(map(str, seeds))} seed(s); no ± with one seed). *paper*: the published "
        f"number (empty where the paper has none, see the notes). Δ = ours - paper. Each of our numbers links "
        f"to its MLflow run, or to the comparison of the runs it averages."
    )


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(out)


def _notes(table: pd.DataFrame) -> list[str]:
    """One line per (row, column, note), naming the metrics only where they do not all share the note."""
    lines = table[(table["level"] == "cell") & (table["note"] != "")]
    out = []
    for (row, column, note), group in lines.groupby(["row", "column", "note"], sort=False):
        metrics = sorted(set(group["metric"]))
        where = f"{row}, {_label('column', column)}"
        if len(metrics) < table[(table["row"] == row) & (table["column"] == column)]["metric"].nunique():
            where += " (" + ", ".join(METRIC_NAMES.get(m, m) for m in metrics) + ")"
        out.append(f"- {where}: {note}")
    return out


def _runs_md(table: pd.DataFrame, layout: Layout, link) -> str:
    runs = table[table["level"] == "run"]
    if runs.empty:
        return "No runs yet."
    headline = {"aus": "Avg"}.get(layout.kind)
    rows = []
    for (_cell, fold, seed), group in runs.groupby(["cell", "fold", "seed"], sort=False):
        first = group.iloc[0]
        picked = group[group["column"] == headline] if headline else group
        values = ", ".join(
            f"{METRIC_NAMES.get(m, m)} {v:.2f}" for m, v in zip(picked["metric"], picked["ours"])
        )
        run_id = first["run_ids"]
        url = link([run_id]) if (link and run_id) else None
        column = "" if layout.kind != "datasets" else first["column"]
        rows.append([first["row"], column, fold, seed, values, f"[{run_id[:8]}]({url})" if url else run_id])
    return _md_table(["Row", "Column", "Fold", "Seed", "Test metrics", "MLflow run"], rows)


_TEX = {"&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$", "{": r"\{", "}": r"\}", "±": r"$\pm$"}


def _tex(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def render_latex(table: pd.DataFrame, layout: Layout, caption: str, label: str = "") -> str:
    """The drawn table as a booktabs LaTeX table (ours, paper, Δ under each column group)."""
    lines, groups, cells = grid(table, layout)
    n_line = len(layout.lines)
    spec = "l" * n_line + "rrr" * len(groups)
    top = [""] * n_line + [
        rf"\multicolumn{{3}}{{c}}{{{_tex(' '.join(_label(f, v) for f, v in zip(layout.groups, g)))}}}"
        for g in groups
    ]
    rules = "".join(
        rf"\cmidrule(lr){{{n_line + 3 * i + 1}-{n_line + 3 * i + 3}}}" for i in range(len(groups))
    )
    sub = [_tex(f.capitalize()) for f in layout.lines] + ["ours", "paper", r"$\Delta$"] * len(groups)
    body = []
    for key in lines:
        row = [_tex(_label(f, v)) for f, v in zip(layout.lines, key)]
        for g in groups:
            c = cells.get((key, g))
            row += [
                _tex(format_ours(c)),
                _tex(c["paper_text"] if c is not None else ""),
                _tex(format_delta(c)),
            ]
        body.append(" & ".join(row) + r" \\")
    return "\n".join([
        r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
        " & ".join(top) + r" \\", rules, " & ".join(sub) + r" \\", r"\midrule", *body, r"\bottomrule",
        r"\end{tabular}", rf"\caption{{{_tex(caption)}}}", *([rf"\label{{{label}}}"] if label else []), r"\end{table}", "",
    ])  # fmt: skip
