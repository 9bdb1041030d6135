"""Bootstrap intervals resample groups (identical feature vectors), not rows; they are
deterministic and contain the point estimate; paired comparisons count wins per seed."""

import numpy as np
import pytest
from sklearn import metrics as skm

from phishguard.modeling.evaluate import classification_metrics
from phishguard.modeling.intervals import (
    bootstrap_intervals,
    clearly_different,
    group_bootstrap_weights,
    paired_comparison,
    spread,
    weighted_roc_auc,
    weighted_threshold_metrics,
)


def _scored(n: int = 400, copies: int = 1, seed: int = 0):
    """`n` distinct scored examples, each present `copies` times; groups name the originals."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    proba = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, n), 0, 1).round(2)  # rounding makes ties
    groups = np.arange(n)
    return np.tile(y, copies), np.tile(proba, copies), np.tile(groups, copies)


def test_copies_of_a_row_are_drawn_together():
    _, _, groups = _scored(50, copies=3)
    weights = group_bootstrap_weights(groups, resamples=200, seed=1)
    assert weights.shape == (200, 150)
    for group in np.unique(groups):
        columns = weights[:, groups == group]
        assert (columns == columns[:, :1]).all()
    # Each draw picks as many groups as there are: 50 groups × 3 rows each.
    assert (weights.sum(axis=1) == 150).all()


def test_duplicates_do_not_narrow_the_interval():
    y, proba, groups = _scored(300, copies=4)
    as_groups = bootstrap_intervals(y, proba, groups, 0.5, resamples=500, seed=3)
    as_rows = bootstrap_intervals(y, proba, np.arange(len(y)), 0.5, resamples=500, seed=3)
    width = {k: v["high"] - v["low"] for k, v in as_groups.items()}
    row_width = {k: v["high"] - v["low"] for k, v in as_rows.items()}
    # Four copies counted as independent rows shrink the interval by about √4 = 2.
    for name in ("accuracy", "roc_auc", "recall", "fpr"):
        assert width[name] > 1.5 * row_width[name], name


def test_intervals_are_deterministic_and_seeded():
    y, proba, groups = _scored(300, copies=2)
    first = bootstrap_intervals(y, proba, groups, 0.5, resamples=300, seed=7)
    assert first == bootstrap_intervals(y, proba, groups, 0.5, resamples=300, seed=7)
    assert first != bootstrap_intervals(y, proba, groups, 0.5, resamples=300, seed=8)


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_interval_contains_the_point_estimate(threshold):
    y, proba, groups = _scored(500, copies=2, seed=4)
    point = classification_metrics(y, proba, threshold)
    intervals = bootstrap_intervals(y, proba, groups, threshold, resamples=1000, seed=0)
    assert set(intervals) == {"accuracy", "precision", "recall", "f1", "fpr", "roc_auc"}
    for name, interval in intervals.items():
        assert interval["low"] <= point[name] <= interval["high"], name
        assert interval["low"] < interval["high"], name


def test_weighted_metrics_match_scikit_learn():
    y, proba, _ = _scored(300, seed=5)
    rng = np.random.default_rng(5)
    weights = rng.integers(0, 4, size=(3, len(y))).astype(float)
    auc = weighted_roc_auc(y, proba, weights)
    at_half = weighted_threshold_metrics(y, proba, 0.5, weights)
    for row, w in enumerate(weights):
        assert auc[row] == pytest.approx(skm.roc_auc_score(y, proba, sample_weight=w))
        predicted = proba >= 0.5
        assert at_half["accuracy"][row] == pytest.approx(
            skm.accuracy_score(y, predicted, sample_weight=w)
        )
        assert at_half["recall"][row] == pytest.approx(
            skm.recall_score(y, predicted, sample_weight=w)
        )


def test_paired_comparison_counts_wins_per_seed():
    baseline = [0.950, 0.955, 0.952, 0.951, 0.953]
    candidate = [0.952, 0.956, 0.951, 0.954, 0.955]
    result = paired_comparison(candidate, baseline)
    assert result["wins"] == 4
    assert result["difference_mean"] == pytest.approx(0.0014)
    assert result["difference_std"] == pytest.approx(np.std([2, 1, -1, 3, 2], ddof=1) / 1000)
    # For FPR lower is better: the same numbers win once.
    assert paired_comparison(candidate, baseline, higher_is_better=False)["wins"] == 1
    assert not clearly_different(result, seeds=5)


def test_clearly_different_needs_every_seed_and_a_margin():
    steady = paired_comparison([0.96, 0.961, 0.962], [0.95, 0.951, 0.952])
    assert steady["wins"] == 3 and clearly_different(steady, seeds=3)
    worse = paired_comparison([0.95, 0.951, 0.952], [0.96, 0.961, 0.962])
    assert worse["wins"] == 0 and clearly_different(worse, seeds=3)
    noisy = paired_comparison([0.951, 0.99, 0.952], [0.95, 0.95, 0.95])
    assert noisy["wins"] == 3 and not clearly_different(noisy, seeds=3)


def test_paired_comparison_refuses_unpaired_series():
    with pytest.raises(ValueError, match="equal"):
        paired_comparison([0.9, 0.91], [0.9])


def test_spread_is_mean_and_sample_std():
    assert spread([1.0, 2.0, 3.0]) == {"mean": 2.0, "std": 1.0}
    assert spread([0.5]) == {"mean": 0.5, "std": 0.0}
