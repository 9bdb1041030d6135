"""Metrics treat phishing as positive; thresholds respect the FPR target; the gate explains."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from phishguard.contract.schema import TARGET, feature_vector_ids
from phishguard.modeling.evaluate import (
    classification_metrics,
    fold_metrics,
    gate_failures,
    grouped_cv,
    grouped_splits,
    out_of_fold,
    recall_at_fpr,
    repeated_grouped_cv,
    threshold_for_fpr,
)
from phishguard.modeling.split import with_target
from tests.support import synthetic_rows


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


def _duplicated_table(n: int = 120, copies: int = 3, seed: int = 2) -> pd.DataFrame:
    """Synthetic rows (never the dataset), each present `copies` times, with a learnable label."""
    rows = synthetic_rows(n, seed=seed)
    table = with_target(pd.concat([rows] * copies, ignore_index=True))
    table[TARGET] = (table["SSLfinal_State"] == 1).astype(int)
    return table


def test_grouped_splits_keep_copies_on_one_side():
    table = _duplicated_table()
    groups = feature_vector_ids(table)
    splits = grouped_splits(table, folds=5, seed=3)
    assert len(splits) == 5
    assert sorted(np.concatenate([test for _, test in splits])) == list(range(len(table)))
    for train_idx, test_idx in splits:
        assert not set(groups[train_idx]) & set(groups[test_idx])


def test_repeated_cv_is_grouped_cv_once_per_seed():
    table = _duplicated_table()
    model = LogisticRegression(max_iter=500)
    repeated = repeated_grouped_cv(model, table, folds=4, seeds=[0, 1, 2], workers=2)
    assert repeated.shape == (3, len(table))
    for row, seed in enumerate([0, 1, 2]):
        np.testing.assert_allclose(repeated[row], grouped_cv(model, table, 4, seed))
    # Other seeds draw other folds, hence other out-of-fold predictions.
    assert not np.allclose(repeated[0], repeated[1])


def test_out_of_fold_scores_every_row_of_every_split_set():
    table = _duplicated_table()
    X, y = table.drop(columns=TARGET).to_numpy(), table[TARGET].to_numpy()
    split_sets = [grouped_splits(table, 3, seed) for seed in (5, 6)]
    oof = out_of_fold(LogisticRegression(max_iter=500), X, y, split_sets, workers=2)
    assert oof.shape == (2, len(table)) and ((oof >= 0) & (oof <= 1)).all()
    assert roc_auc_score(y, oof[0]) > 0.95


def test_fold_metrics_score_each_fold_on_its_own_rows():
    table = _duplicated_table()
    y = table[TARGET].to_numpy()
    splits = grouped_splits(table, 4, 0)
    oof = grouped_cv(LogisticRegression(max_iter=500), table, 4, 0)
    per_fold = fold_metrics(y, oof, splits, target_fpr=0.02)
    assert [fold["n"] for fold in per_fold] == [len(test) for _, test in splits]
    _, first_test = splits[0]
    expected = classification_metrics(y[first_test], oof[first_test], 0.5)["accuracy"]
    assert per_fold[0]["accuracy"] == pytest.approx(expected, abs=1e-6)
    assert set(per_fold[0]) == {"accuracy", "roc_auc", "recall_at_target_fpr", "fpr", "n"}
