"""fer.metrics against scikit-learn on random data, including absent classes and never-positive AUs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from fer.metrics import accuracy, au_f1, au_metrics, confusion_matrix, expression_metrics, uar, war


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")  # class 5, on purpose
@pytest.mark.parametrize("seed", range(5))
def test_expression_metrics_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    c = 7
    y_true = rng.integers(0, c, 300)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, c, 300))
    y_true[y_true == 5] = 6  # class 5 absent from the truth (but still predicted)
    y_pred[y_pred == 3] = 2  # class 3 never predicted
    expected_uar = skm.balanced_accuracy_score(y_true, y_pred)
    assert accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=1e-12)
    assert war(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=1e-12)
    assert uar(y_true, y_pred) == pytest.approx(expected_uar, abs=1e-12)
    assert uar(y_true, y_pred) != pytest.approx(accuracy(y_true, y_pred))  # imbalanced: they differ
    cm = confusion_matrix(y_true, y_pred, c)
    assert cm.dtype == np.int64 and np.array_equal(cm, skm.confusion_matrix(y_true, y_pred, labels=range(c)))

    # scores [N, C] are argmaxed; torch tensors work as numpy arrays do
    logits = torch.randn(300, c, generator=torch.Generator().manual_seed(seed))
    assert uar(torch.from_numpy(y_true), logits) == pytest.approx(
        skm.balanced_accuracy_score(y_true, logits.argmax(1).numpy()), abs=1e-12
    )

    out = expression_metrics(y_true, y_pred, [f"c{i}" for i in range(c)])
    assert set(out) == {"acc", "uar", "war", "confusion", "classes"}
    assert out["confusion"] == cm.tolist() and out["uar"] == pytest.approx(expected_uar)


def test_war_is_the_support_weighted_recall():
    y_true = np.array([0, 0, 0, 1, 2, 2])
    y_pred = np.array([0, 0, 1, 1, 0, 2])
    recalls = np.array([2 / 3, 1.0, 0.5])
    support = np.array([3, 1, 2]) / 6
    assert war(y_true, y_pred) == pytest.approx(float((support * recalls).sum()))
    assert uar(y_true, y_pred) == pytest.approx(float(recalls.mean()))


def test_metric_input_errors():
    with pytest.raises(ValueError, match="outside 0..2"):
        confusion_matrix([0, 1, 3], [0, 1, 2], 3)
    with pytest.raises(ValueError, match="must be"):
        accuracy([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="1, 0 or -1"):
        au_f1(np.zeros((2, 1)), np.array([[1], [999]]))


@pytest.mark.parametrize("seed", range(5))
def test_au_f1_equals_sklearn_over_known_labels(seed):
    rng = np.random.default_rng(seed)
    n, a = 120, 6
    target = (rng.random((n, a)) < 0.3).astype(int)
    target[rng.random((n, a)) < 0.2] = -1  # unknown labels
    logits = rng.normal(size=(n, a)) + 1.5 * (target == 1)
    target[:, 3] = np.where(target[:, 3] == -1, -1, 0)  # AU never positive ...
    logits[:, 3] = -1.0  # ... and never predicted: F1 0 by definition (sklearn zero_division=0)
    target[:, 4] = np.where(target[:, 4] == -1, -1, 0)  # never positive but predicted: F1 0 too
    f1, mean = au_f1(torch.from_numpy(logits), torch.from_numpy(target))
    expected = []
    for j in range(a):
        known = target[:, j] != -1
        expected.append(skm.f1_score(target[known, j], logits[known, j] > 0, zero_division=0))
    assert np.allclose(f1, expected, atol=1e-12) and mean == pytest.approx(np.mean(expected))
    assert f1[3] == 0 and f1[4] == 0 and f1[0] > 0
    # masking matters: treating unknown as negative gives a different score
    assert not np.allclose(f1[0], skm.f1_score(target[:, 0] == 1, logits[:, 0] > 0))

    # 0/1 predictions (threshold 0) and probabilities (threshold 0.5) give the same result
    hard = (logits > 0).astype(int)
    probs = 1 / (1 + np.exp(-logits))
    assert np.allclose(au_f1(hard, target)[0], f1) and np.allclose(au_f1(probs, target, threshold=0.5)[0], f1)


def test_au_with_no_known_label_scores_zero_and_au_metrics_keys():
    target = np.array([[1, -1], [0, -1], [1, -1]])
    pred = np.array([[3.0, 1.0], [-1.0, 1.0], [-2.0, 1.0]])
    f1, mean = au_f1(pred, target)
    assert f1.tolist() == pytest.approx([2 / 3, 0.0]) and mean == pytest.approx(1 / 3)
    out = au_metrics(pred, target, [1, "AU12"])
    assert out == {"f1_mean": pytest.approx(1 / 3), "f1": {"AU1": pytest.approx(2 / 3), "AU12": 0.0}}
