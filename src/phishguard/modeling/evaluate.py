"""Honest evaluation: metrics with phishing as the positive class, grouped CV, the gate.

Groups are identical feature vectors (`schema.feature_vector_ids`), so no copy of a test row
is ever trained on: the leak that inflates every public figure on this dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.base import clone
from sklearn.model_selection import StratifiedGroupKFold

from phishguard.config.models import ModelConfig
from phishguard.config.sections import EvaluateParams
from phishguard.contract.schema import FEATURES, TARGET, feature_vector_ids
from phishguard.modeling.bundle import Bundle
from phishguard.modeling.features import as_matrix, model_inputs, table_inputs
from phishguard.modeling.intervals import bootstrap_intervals_at, spread
from phishguard.modeling.zoo import build_model


def classification_metrics(
    y_true: np.ndarray, proba: np.ndarray, threshold: float
) -> dict[str, Any]:
    """Threshold and ranking metrics; `y_true` 1 = phishing."""
    y_true = np.asarray(y_true).astype(int)
    predicted = (proba >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y_true, predicted, labels=[0, 1]).ravel()
    clipped = np.clip(proba, 1e-7, 1 - 1e-7)
    return {
        "accuracy": float(skm.accuracy_score(y_true, predicted)),
        "precision": float(skm.precision_score(y_true, predicted, zero_division=0)),
        "recall": float(skm.recall_score(y_true, predicted, zero_division=0)),
        "f1": float(skm.f1_score(y_true, predicted, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(y_true, proba)),
        "pr_auc": float(skm.average_precision_score(y_true, proba)),
        "fpr": float(fp / (fp + tn)) if fp + tn else 0.0,
        "log_loss": float(skm.log_loss(y_true, clipped, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y_true, proba)),
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
        "threshold": float(threshold),
        "n": len(y_true),
    }


def operating_metrics(y_true: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, Any]:
    """Rows, ROC-AUC, and recall, precision and accuracy at the operating `threshold` of one
    split (`y_true` 1 = phishing), rounded as metrics.json rounds.

    Each metric is None where the split cannot define it: ROC-AUC needs both classes, recall a
    phishing row, precision a flagged row, accuracy any row. The feedback holdout may be small
    or one-sided, so nothing here fails on it. The package stage scores the champion with this
    function, so both models are measured by the same code.
    """
    y = np.asarray(y_true).astype(int)
    flagged = np.asarray(proba) >= threshold
    rows, phishing = len(y), int(y.sum())
    return {
        "rows": rows,
        "roc_auc": round(float(skm.roc_auc_score(y, proba)), 6) if 0 < phishing < rows else None,
        "recall": round(float(np.mean(flagged[y == 1])), 6) if phishing else None,
        "precision": round(float(np.mean(y[flagged])), 6) if flagged.any() else None,
        "accuracy": round(float(np.mean(flagged == (y == 1))), 6) if rows else None,
    }


def threshold_for_fpr(y_true: np.ndarray, proba: np.ndarray, target_fpr: float) -> float:
    """The lowest threshold whose false-positive rate does not exceed `target_fpr`."""
    negatives = np.sort(proba[np.asarray(y_true) == 0])[::-1]
    allowed = int(np.floor(target_fpr * len(negatives)))
    if allowed >= len(negatives):
        return float(np.min(proba))
    # Flag strictly above the (allowed+1)-th highest legitimate score.
    return float(np.nextafter(negatives[allowed], np.inf))


def recall_at_fpr(y_true: np.ndarray, proba: np.ndarray, target_fpr: float) -> float:
    """Recall (phishing caught) at the best threshold with FPR ≤ `target_fpr`."""
    threshold = threshold_for_fpr(y_true, proba, target_fpr)
    y_true = np.asarray(y_true)
    return float(np.mean(proba[y_true == 1] >= threshold))


def grouped_splits(
    table: pd.DataFrame, folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) row indices of StratifiedGroupKFold over identical feature vectors.

    The splitter reads only the target and the groups, so every model, whatever its inputs,
    is scored on the same folds for the same seed.
    """
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    y = table[TARGET].to_numpy()
    return list(splitter.split(np.zeros((len(table), 1)), y, feature_vector_ids(table)))


def grouped_cv(
    estimator: Any,
    table: pd.DataFrame,
    folds: int,
    seed: int,
    fit: Callable[[Any, np.ndarray, np.ndarray], Any] | None = None,
    columns: Sequence[str] = FEATURES,
    workers: int = 1,
) -> np.ndarray:
    """Out-of-fold P(phishing) from StratifiedGroupKFold over identical feature vectors.

    The model sees the input `columns` (`features.model_inputs`, from the 30 features). With
    `workers` > 1, that many folds are fitted at once, each single-threaded: on small data,
    threads inside one tree cost more in synchronisation than they save (`make
    bench-pipeline`). The folds are the same and XGBoost `hist`, the forests and the linear
    model give the same predictions for any thread count, so the result does not change.
    """
    return repeated_grouped_cv(estimator, table, folds, [seed], fit, columns, workers)[0]


def repeated_grouped_cv(
    estimator: Any,
    table: pd.DataFrame,
    folds: int,
    seeds: Sequence[int],
    fit: Callable[[Any, np.ndarray, np.ndarray], Any] | None = None,
    columns: Sequence[str] = FEATURES,
    workers: int = 1,
) -> np.ndarray:
    """`grouped_cv` once per fold seed: out-of-fold P(phishing), shape (len(seeds), rows).

    Each seed draws other folds, so the spread across seeds is the luck of the split.
    """
    X = model_inputs(as_matrix(table), columns)
    split_sets = [grouped_splits(table, folds, seed) for seed in seeds]
    return out_of_fold(estimator, X, table[TARGET].to_numpy(), split_sets, fit, workers)


def out_of_fold(
    estimator: Any,
    X: np.ndarray,
    y: np.ndarray,
    split_sets: Sequence[Sequence[tuple[np.ndarray, np.ndarray]]],
    fit: Callable[[Any, np.ndarray, np.ndarray], Any] | None = None,
    workers: int = 1,
) -> np.ndarray:
    """Out-of-fold P(phishing) for each set of (train, test) splits, shape (sets, rows).

    All folds of all sets share one pool of `workers` threads (each model single-threaded
    when `workers` > 1), so no worker waits for the last fold of a set.
    """
    if workers > 1:
        estimator = single_threaded(estimator)
    fit_fold = partial(_fold_proba, estimator, X, y, fit or _fit)
    tasks = [split for splits in split_sets for split in splits]
    # Threads, not processes: XGBoost and the tree builders release the GIL while fitting.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        probabilities = iter(list(pool.map(fit_fold, tasks)))
    oof = np.empty((len(split_sets), len(y)), dtype=np.float64)
    for row, splits in enumerate(split_sets):
        for (_, test_idx), proba in zip(splits, probabilities, strict=False):
            oof[row, test_idx] = proba
    return oof


def fold_metrics(
    y_true: np.ndarray,
    oof: np.ndarray,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    target_fpr: float,
) -> list[dict[str, float]]:
    """Accuracy, ROC-AUC and FPR at 0.5, and recall at FPR ≤ `target_fpr`, of each test fold."""
    scores = []
    for _, test_idx in splits:
        y, proba = np.asarray(y_true)[test_idx], oof[test_idx]
        at_half = classification_metrics(y, proba, 0.5)
        scores.append(
            {
                "accuracy": round(at_half["accuracy"], 6),
                "roc_auc": round(at_half["roc_auc"], 6),
                "recall_at_target_fpr": round(recall_at_fpr(y, proba, target_fpr), 6),
                "fpr": round(at_half["fpr"], 6),
                "n": len(test_idx),
            }
        )
    return scores


def single_threaded(estimator: Any) -> Any:
    """A clone of `estimator` with every `n_jobs` (nested ones included) set to 1."""
    one = {key: 1 for key in estimator.get_params() if key.split("__")[-1] == "n_jobs"}
    return clone(estimator).set_params(**one)


def _fold_proba(
    estimator: Any,
    X: np.ndarray,
    y: np.ndarray,
    fit: Callable[[Any, np.ndarray, np.ndarray], Any],
    split: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    train_idx, test_idx = split
    model = clone(estimator)
    fit(model, X[train_idx], y[train_idx])
    return model.predict_proba(X[test_idx])[:, 1]


def _fit(model: Any, X: np.ndarray, y: np.ndarray) -> Any:
    return model.fit(X, y)


def gate_failures(
    metrics: dict[str, float], minimums: dict[str, float], maximums: dict[str, float]
) -> list[str]:
    """Human-readable misses of the promotion gate; empty when the model passes."""
    failures = []
    for name, floor in minimums.items():
        if metrics[name] < floor:
            failures.append(
                f"{name} {metrics[name]:.4f} < minimum {floor:.4f} (short by {floor - metrics[name]:.4f})"
            )
    for name, ceiling in maximums.items():
        if metrics[name] > ceiling:
            failures.append(
                f"{name} {metrics[name]:.4f} > maximum {ceiling:.4f} (over by {metrics[name] - ceiling:.4f})"
            )
    return failures


@dataclass(frozen=True)
class EvaluationResult:
    """Everything evaluate writes: metrics, the operating point, and plot data."""

    metrics: dict[str, Any]
    operating_point: dict[str, Any]
    y_test: np.ndarray
    test_proba: np.ndarray
    oof_proba: np.ndarray
    """Out-of-fold P(phishing) of the training split: the reference of prediction drift."""


def evaluate_model(
    bundle: Bundle,
    train: pd.DataFrame,
    test: pd.DataFrame,
    spec: ModelConfig,
    train_seed: int,
    params: EvaluateParams,
    feedback_holdout: pd.DataFrame | None = None,
) -> EvaluationResult:
    """Test metrics of the trained `bundle`, grouped CV of its config `spec` (seeded by
    `train_seed`) on the featurized `train` table (the bundle's input columns), and the
    operating threshold, as the `evaluate` params say.

    The operating threshold comes from out-of-fold predictions on the training split only,
    so the test split never chooses anything. The test metrics carry 95% bootstrap intervals
    over feature-vector groups (seeded by `params.seed`); the CV metrics their spread over folds.
    `feedback_holdout` (the newest analysts' verdicts, never trained on; none = 0 rows) is
    scored at the operating threshold (`operating_metrics`).
    """
    cv_folds, cv_seed, target_fpr = params.cv_folds, params.seed, params.target_fpr
    cv_workers, bootstrap_resamples = params.cv_workers, params.bootstrap_resamples
    y_train, y_test = train[TARGET].to_numpy(), test[TARGET].to_numpy()
    estimator = build_model(spec, train_seed)
    splits = grouped_splits(train, cv_folds, cv_seed)
    X_train = table_inputs(train, bundle.input_columns)
    oof = out_of_fold(estimator, X_train, y_train, [splits], workers=cv_workers)[0]
    threshold = threshold_for_fpr(y_train, oof, target_fpr)
    test_proba = bundle.predict_proba(test)

    cv = _rounded(classification_metrics(y_train, oof, 0.5))
    cv["recall_at_target_fpr"] = round(recall_at_fpr(y_train, oof, target_fpr), 6)
    per_fold = fold_metrics(y_train, oof, splits, target_fpr)
    cv["folds"] = {str(number): scores for number, scores in enumerate(per_fold, start=1)}
    for statistic in ("mean", "std"):
        cv[statistic] = {
            name: round(spread([fold[name] for fold in per_fold])[statistic], 6)
            for name in ("accuracy", "roc_auc", "recall_at_target_fpr", "fpr")
        }
    test_metrics = _rounded(classification_metrics(y_test, test_proba, 0.5))
    at_threshold = classification_metrics(y_test, test_proba, threshold)
    test_metrics["at_threshold"] = {
        k: round(at_threshold[k], 6) for k in ("recall", "precision", "fpr")
    }
    groups = feature_vector_ids(test)
    intervals, at_threshold_intervals = bootstrap_intervals_at(
        y_test, test_proba, groups, [0.5, threshold], bootstrap_resamples, cv_seed
    )
    intervals["at_threshold"] = {k: at_threshold_intervals[k] for k in test_metrics["at_threshold"]}
    test_metrics["intervals"] = intervals
    test_metrics["bootstrap"] = {
        "level": 0.95,
        "resamples": bootstrap_resamples,
        "seed": cv_seed,
        "groups": len(np.unique(groups)),
    }
    metrics = {
        "test": test_metrics,
        "cv": cv,
        "threshold": round(threshold, 6),
        "target_fpr": target_fpr,
        "feedback_holdout": holdout_metrics(bundle, feedback_holdout, threshold),
    }
    operating_point = {
        "threshold": threshold,
        "target_fpr": target_fpr,
        "chosen_on": f"out-of-fold predictions of grouped {cv_folds}-fold CV on the training split",
        "cv_recall_at_threshold": cv["recall_at_target_fpr"],
    }
    return EvaluationResult(metrics, operating_point, y_test, test_proba, oof)


def holdout_metrics(bundle: Bundle, table: pd.DataFrame | None, threshold: float) -> dict[str, Any]:
    """`operating_metrics` of `bundle` on a featurized `table` (None: an empty one)."""
    if table is None or table.empty:
        return operating_metrics(np.empty(0, dtype=int), np.empty(0), threshold)
    return operating_metrics(table[TARGET].to_numpy(), bundle.predict_proba(table), threshold)


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in values.items()}
