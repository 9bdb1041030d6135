"""How sure a figure is: bootstrap intervals over groups, spreads, paired comparisons.

The dataset repeats rows: 5,206 of its 11,055 rows are copies. A bootstrap that resamples rows
treats each copy as independent evidence and draws intervals too narrow, so the unit resampled
here is the group, one distinct feature vector (`schema.feature_vector_ids`), with all its rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

THRESHOLD_METRICS = ("accuracy", "precision", "recall", "f1", "fpr")
"""Metrics at a threshold that `bootstrap_intervals` covers, beside `roc_auc`."""


def group_bootstrap_weights(groups: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Row weights of `resamples` bootstrap draws of the groups, shape (resamples, rows).

    Each draw picks as many groups as there are, with replacement; a row's weight is how many
    times its group was picked, so the copies of a row always move together.
    """
    _, group_index = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(group_index.max()) + 1
    rng = np.random.default_rng(seed)
    # Equal-probability multinomial counts are exactly "draw n_groups with replacement".
    counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=resamples)
    return counts[:, group_index].astype(np.float64)


def weighted_threshold_metrics(
    y_true: np.ndarray, proba: np.ndarray, threshold: float, weights: np.ndarray
) -> dict[str, np.ndarray]:
    """`THRESHOLD_METRICS` for each row of `weights` (phishing, 1, is the positive class)."""
    y = np.asarray(y_true).astype(bool)
    flagged = np.asarray(proba) >= threshold
    tp, fp = weights @ (y & flagged), weights @ (~y & flagged)
    fn, tn = weights @ (y & ~flagged), weights @ (~y & ~flagged)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "accuracy": (tp + tn) / (tp + fp + fn + tn),
            "precision": tp / (tp + fp),
            "recall": tp / (tp + fn),
            "f1": 2 * tp / (2 * tp + fp + fn),
            "fpr": fp / (fp + tn),
        }


def weighted_roc_auc(y_true: np.ndarray, proba: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC-AUC for each row of `weights`, ties counted half, in one pass over sorted scores."""
    y = np.asarray(y_true).astype(bool)
    order = np.argsort(proba, kind="stable")
    scores = np.asarray(proba)[order]
    # One block per distinct score: a tie between a positive and a negative counts 1/2.
    starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])
    sorted_weights = weights[:, order]
    positives = np.add.reduceat(sorted_weights * y[order], starts, axis=1)
    negatives = np.add.reduceat(sorted_weights * ~y[order], starts, axis=1)
    below = np.cumsum(negatives, axis=1) - negatives
    with np.errstate(invalid="ignore", divide="ignore"):
        return (positives * (below + 0.5 * negatives)).sum(axis=1) / (
            positives.sum(axis=1) * negatives.sum(axis=1)
        )


def bootstrap_intervals(
    y_true: np.ndarray,
    proba: np.ndarray,
    groups: np.ndarray,
    threshold: float,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict[str, float]]:
    """Percentile bootstrap intervals, resampling `groups`, of ROC-AUC and the metrics at
    `threshold`: {metric: {"low": …, "high": …}}. The same inputs give the same intervals."""
    return bootstrap_intervals_at(y_true, proba, groups, [threshold], resamples, seed, level)[0]


def bootstrap_intervals_at(
    y_true: np.ndarray,
    proba: np.ndarray,
    groups: np.ndarray,
    thresholds: Sequence[float],
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> list[dict[str, dict[str, float]]]:
    """`bootstrap_intervals` at each of `thresholds`, from one set of draws: the groups are
    drawn and ROC-AUC (which no threshold changes) computed once for all of them."""
    weights = group_bootstrap_weights(groups, resamples, seed)
    roc_auc = weighted_roc_auc(y_true, proba, weights)
    tail = 100 * (1 - level) / 2
    found = []
    for threshold in thresholds:
        draws = weighted_threshold_metrics(y_true, proba, threshold, weights)
        draws["roc_auc"] = roc_auc
        intervals = {}
        for name, values in draws.items():
            # A draw without any positive (or negative) row has no recall (or FPR): left out.
            low, high = np.nanpercentile(values, [tail, 100 - tail])
            intervals[name] = {"low": round(float(low), 6), "high": round(float(high), 6)}
        found.append(intervals)
    return found


def spread(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample standard deviation (ddof 1) of repeated measurements of one metric."""
    array = np.asarray(values, dtype=np.float64)
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return {"mean": float(array.mean()), "std": std}


def paired_comparison(
    candidate: Sequence[float], baseline: Sequence[float], higher_is_better: bool = True
) -> dict[str, float | int]:
    """A candidate against the baseline measured on the same folds, seed by seed.

    Returns the mean and standard deviation of the per-seed difference (candidate − baseline)
    and on how many seeds the candidate is strictly better. Pairing removes the luck of the
    split that both share, which the two unpaired spreads would count twice.
    """
    a, b = np.asarray(candidate, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"need two equal, non-empty series of seeds, got {a.shape} and {b.shape}")
    difference = a - b
    better = difference > 0 if higher_is_better else difference < 0
    return {**_prefixed(spread(difference), "difference_"), "wins": int(better.sum())}


def clearly_different(comparison: dict[str, float | int], seeds: int) -> bool:
    """Whether a paired difference is clear: one side wins on every seed and the
    mean difference is at least twice its own seed-to-seed standard deviation."""
    mean, std = float(comparison["difference_mean"]), float(comparison["difference_std"])
    return comparison["wins"] in (0, seeds) and abs(mean) >= 2 * std and mean != 0


def _prefixed(values: dict[str, float], prefix: str) -> dict[str, float]:
    return {prefix + key: value for key, value in values.items()}
