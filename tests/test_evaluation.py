"""Metrics treat phishing as positive; thresholds respect the FPR target; the gate explains."""

import numpy as np
import pytest

from phishguard.evaluation import (
    classification_metrics,
    gate_failures,
    recall_at_fpr,
    threshold_for_fpr,
)


def test_phishing_is_the_positive_class():
    y = np.array([1, 1, 0, 0])
    proba = np.array([0.9, 0.2, 0.8, 0.1])
    m = classification_metrics(y, proba, 0.5)
    assert m["confusion_matrix"] == {"tn": 1, "fp": 1, "fn": 1, "tp": 1}
    assert m["recall"] == 0.5 and m["precision"] == 0.5 and m["fpr"] == 0.5


@pytest.mark.parametrize("target", [0.0, 0.01, 0.02, 0.1, 0.5])
def test_threshold_keeps_fpr_within_target(target):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000)
    proba = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)
    threshold = threshold_for_fpr(y, proba, target)
    fpr = np.mean(proba[y == 0] >= threshold)
    assert fpr <= target
    # ...and is the loosest such threshold: one step lower breaks the target or catches no more.
    lower = np.max(proba[(y == 0) & (proba < threshold)], initial=-1)
    assert np.mean(proba[y == 0] >= lower) > target or lower == -1
    assert recall_at_fpr(y, proba, target) == pytest.approx(np.mean(proba[y == 1] >= threshold))


def test_gate_says_which_metric_missed_by_how_much():
    failures = gate_failures(
        {"roc_auc": 0.97, "accuracy": 0.95, "fpr": 0.1},
        minimums={"roc_auc": 0.98, "accuracy": 0.93},
        maximums={"fpr": 0.08},
    )
    assert failures == [
        "roc_auc 0.9700 < minimum 0.9800 (short by 0.0100)",
        "fpr 0.1000 > maximum 0.0800 (over by 0.0200)",
    ]
