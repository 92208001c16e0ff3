"""Figures of the paper tables: confusion matrices, per-AU F1 bars (ours beside the paper), learning curves.

Every function draws one PNG with matplotlib's Agg backend (no display needed) and writes it atomically; the
report module decides what to draw, these functions only draw it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # before pyplot is imported anywhere in this process
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    from fer.io import atomic_path

    plt = _pyplot()
    path = Path(path)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path


def confusion_matrix(
    confusion: Sequence[Sequence[float]],
    classes: Sequence[str] | None,
    path: str | os.PathLike,
    title: str = "",
) -> Path:
    """Row-normalised confusion matrix (rows: true class), each cell labelled with its count."""
    plt = _pyplot()
    cm = np.asarray(confusion, dtype=float)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"{path}: a confusion matrix must be square, got shape {cm.shape}")
    n = cm.shape[0]
    names = list(classes) if classes else [str(i) for i in range(n)]
    if len(names) != n:
        raise ValueError(f"{path}: {len(names)} class names for a {n}x{n} confusion matrix")
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * n, 1.0 + 0.6 * n))
    ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    for i in range(n):
        for j in range(n):
            colour = "white" if norm[i, j] > 0.5 else "black"
            ax.text(j, i, f"{cm[i, j]:g}", ha="center", va="center", color=colour, fontsize=8)
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def au_f1_bars(
    ours: Mapping[str, tuple[float, float]],
    paper: Mapping[str, float],
    path: str | os.PathLike,
    title: str = "",
) -> Path:
    """Per-AU F1 (%): our mean with the std over seeds as error bar, the paper's value beside it."""
    plt = _pyplot()
    names = list(ours) + [k for k in paper if k not in ours]
    x = np.arange(len(names))
    mean = [ours[k][0] if k in ours else math.nan for k in names]
    std = [ours[k][1] if k in ours else 0.0 for k in names]
    published = [paper.get(k, math.nan) for k in names]
    fig, ax = plt.subplots(figsize=(1.5 + 0.55 * len(names), 3.2))
    ax.bar(x - 0.2, mean, 0.4, yerr=std, capsize=2, color="tab:blue", label="ours")
    if any(not math.isnan(v) for v in published):
        ax.bar(x + 0.2, published, 0.4, color="tab:gray", label="paper")
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set_ylim(0, 100)
    ax.set_ylabel("F1 (%)")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def learning_curves(
    panels: Mapping[str, Mapping[str, Sequence[tuple[float, float]]]],
    path: str | os.PathLike,
    title: str = "",
) -> Path:
    """One panel per metric ({metric: {line label: [(step, value)]}}), one line per fold / seed."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    panels = {k: v for k, v in panels.items() if any(len(points) for points in v.values())}
    if not panels:
        raise ValueError(f"{path}: no metric history to draw")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, (metric, lines) in zip(axes[0], panels.items()):
        for label, points in sorted(lines.items()):
            if points:
                steps, values = zip(*sorted(points))
                ax.plot(steps, values, marker="." if len(steps) < 30 else None, label=label)
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("epoch" if not metric.startswith("train/") else "optimizer step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)
