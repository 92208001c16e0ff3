"""Evaluation metrics, as fractions in [0, 1] (tables multiply by 100).

Definitions (MAE-DFER README "Evaluation"; FMAE-IAT `engine_finetune.evaluate`):
- accuracy / WAR: correct / total (WAR = sum_i n_i/N * recall_i, which is the overall accuracy);
- UAR: mean recall over the classes present in y_true (scikit-learn's `balanced_accuracy_score`);
- AU F1: per AU, binary F1 of the positive class over the samples whose label is known (target != -1); the
  reference thresholds sigmoid probabilities at 0.5, i.e. logits at 0. An AU with no positive among its known
  labels and no positive prediction (or with no known label at all) scores 0, as scikit-learn's
  `f1_score(zero_division=0)`; the mean is over all AUs.
Inputs may be numpy arrays, torch tensors or lists; class predictions may be labels [N] or scores [N, C].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _labels(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = _numpy(y_true), _numpy(y_pred)
    if y_pred.ndim == 2:  # scores / logits -> predicted class
        y_pred = y_pred.argmax(axis=1)
    if y_true.ndim != 1 or y_pred.shape != y_true.shape:
        raise ValueError(
            f"y_true {y_true.shape} and y_pred {y_pred.shape} must be [N] labels (or [N, C] scores)"
        )
    if y_true.size == 0:
        raise ValueError("no samples to evaluate")
    return y_true.astype(np.int64), y_pred.astype(np.int64)


def accuracy(y_true, y_pred) -> float:
    y_true, y_pred = _labels(y_true, y_pred)
    return float((y_true == y_pred).mean())


def war(y_true, y_pred) -> float:
    """Weighted average recall = overall accuracy (MAE-DFER's WAR)."""
    return accuracy(y_true, y_pred)


def uar(y_true, y_pred) -> float:
    """Unweighted average recall over the classes present in y_true."""
    y_true, y_pred = _labels(y_true, y_pred)
    recalls = [float((y_pred[y_true == c] == c).mean()) for c in np.unique(y_true)]
    return float(np.mean(recalls))


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """[num_classes, num_classes] int64 counts, rows = true class, columns = predicted class."""
    y_true, y_pred = _labels(y_true, y_pred)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f"{name} holds labels outside 0..{num_classes - 1}")
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def au_f1(pred, target, threshold: float = 0.0) -> tuple[np.ndarray, float]:
    """Per-AU F1 and their mean. pred: [N, A] logits or 0/1 (positive where pred > threshold; pass 0.5 for
    probabilities); target: [N, A] with 1 / 0 and -1 for unknown (ignored)."""
    pred, target = _numpy(pred), _numpy(target)
    if pred.ndim != 2 or pred.shape != target.shape:
        raise ValueError(f"pred {pred.shape} and target {target.shape} must both be [N, num_aus]")
    if not np.isin(target, (-1, 0, 1)).all():
        raise ValueError("target values must be 1, 0 or -1 (unknown)")
    positive = pred.astype(np.float64) > threshold
    known = target != -1
    truth = target == 1
    tp = (positive & truth & known).sum(axis=0)
    fp = (positive & ~truth & known).sum(axis=0)
    fn = (~positive & truth & known).sum(axis=0)
    denom = 2 * tp + fp + fn
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    return f1, float(f1.mean())


def expression_metrics(y_true, y_pred, classes: Sequence[str]) -> dict:
    """The expression keys of metrics.json: acc, uar, war, confusion (list of lists), classes."""
    return {
        "acc": accuracy(y_true, y_pred),
        "uar": uar(y_true, y_pred),
        "war": war(y_true, y_pred),
        "confusion": confusion_matrix(y_true, y_pred, len(classes)).tolist(),
        "classes": list(classes),
    }


def au_metrics(pred, target, aus: Sequence[str | int], threshold: float = 0.0) -> dict:
    """The AU keys of metrics.json: f1_mean and f1 per AU ({"AU1": ...}); aus are names or AU numbers."""
    f1, mean = au_f1(pred, target, threshold)
    if len(aus) != len(f1):
        raise ValueError(f"{len(aus)} AU names for {len(f1)} AU columns")
    names = [a if isinstance(a, str) else f"AU{a}" for a in aus]
    return {"f1_mean": mean, "f1": {name: float(v) for name, v in zip(names, f1)}}
