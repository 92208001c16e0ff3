"""Result tables: one row per fold and seed, the mean over folds (and std over seeds), Markdown and CSV."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
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


def write_experiment_table(name: str, metrics_files: Iterable[str | os.PathLike], md_path: str | os.PathLike,
                           csv_path: str | os.PathLike) -> pd.DataFrame:
    table = experiment_table(metrics_files)
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.2f")
    shown = table.fillna("")
    write_text(md_path, f"# {name}\n\nPercent; `mean` averages the folds, `std` is over seeds.\n\n"
               + shown.to_markdown(index=False, floatfmt=".2f") + "\n")
    return table
