"""Honest evaluation: metrics with phishing as the positive class, grouped CV, the gate.

Groups are identical feature vectors (`schema.feature_vector_ids`), so no copy of a test row
is ever trained on: the leak that inflates every public figure on this dataset.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.base import clone
from sklearn.model_selection import StratifiedGroupKFold

from phishguard.features import with_signal_counts
from phishguard.models import as_matrix
from phishguard.schema import TARGET, feature_vector_ids


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


def grouped_cv(
    estimator: Any,
    table: pd.DataFrame,
    folds: int,
    seed: int,
    fit: Callable[[Any, np.ndarray, np.ndarray], Any] | None = None,
    signal_counts: bool = False,
    workers: int = 1,
) -> np.ndarray:
    """Out-of-fold P(phishing) from StratifiedGroupKFold over identical feature vectors.

    With `signal_counts`, the model sees the engineered counts too (`features`). With
    `workers` > 1, that many folds are fitted at once, each single-threaded: on small data,
    threads inside one tree cost more in synchronisation than they save (`make
    bench-pipeline`). The folds are the same and XGBoost `hist`, the forests and the linear
    model give the same predictions for any thread count, so the result does not change.
    """
    X, y = as_matrix(table), table[TARGET].to_numpy()
    if signal_counts:
        X = with_signal_counts(X)
    groups = feature_vector_ids(table)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    if workers > 1:
        estimator = single_threaded(estimator)
    fit_fold = partial(_fold_proba, estimator, X, y, fit or _fit)
    splits = list(splitter.split(X, y, groups))
    # Threads, not processes: XGBoost and the tree builders release the GIL while fitting.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        probabilities = list(pool.map(fit_fold, splits))
    oof = np.empty(len(table), dtype=np.float64)
    for (_, test_idx), proba in zip(splits, probabilities, strict=True):
        oof[test_idx] = proba
    return oof


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


def roc_points(y_true: np.ndarray, proba: np.ndarray) -> list[dict[str, float]]:
    fpr, tpr, thresholds = skm.roc_curve(y_true, proba, drop_intermediate=True)
    return [
        {"fpr": round(float(f), 6), "tpr": round(float(t), 6), "threshold": _finite(th)}
        for f, t, th in zip(fpr, tpr, thresholds, strict=True)
    ]


def pr_points(y_true: np.ndarray, proba: np.ndarray) -> list[dict[str, float]]:
    precision, recall, _ = skm.precision_recall_curve(y_true, proba, drop_intermediate=True)
    return [
        {"recall": round(float(r), 6), "precision": round(float(p), 6)}
        for p, r in zip(precision, recall, strict=True)
    ]


def calibration_points(y_true: np.ndarray, proba: np.ndarray, bins: int = 10) -> list[dict]:
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(y_true, proba, n_bins=bins, strategy="quantile")
    return [
        {"mean_predicted": round(float(p), 6), "fraction_phishing": round(float(o), 6)}
        for p, o in zip(predicted, observed, strict=True)
    ]


def confusion_rows(y_true: np.ndarray, proba: np.ndarray, threshold: float) -> pd.DataFrame:
    """One row per test example, as DVC's confusion template wants it."""
    names = np.array(["legitimate", "phishing"])
    return pd.DataFrame(
        {
            "actual": names[np.asarray(y_true).astype(int)],
            "predicted": names[(proba >= threshold).astype(int)],
        }
    )


def _finite(value: float) -> float:
    return round(float(min(value, 1.0)), 6)


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


def evaluate_model(
    model: Any,
    spec: dict[str, Any],
    train_seed: int,
    train: pd.DataFrame,
    test: pd.DataFrame,
    cv_folds: int,
    cv_seed: int,
    target_fpr: float,
    cv_workers: int = 1,
) -> EvaluationResult:
    """Test metrics of the fitted `model`, grouped CV of its config on `train`, threshold.

    The operating threshold comes from out-of-fold predictions on the training split only,
    so the test split never chooses anything.
    """
    from phishguard.models import build_model, phishing_probability, uses_signal_counts

    y_train, y_test = train[TARGET].to_numpy(), test[TARGET].to_numpy()
    estimator = build_model(spec, train_seed)
    oof = grouped_cv(
        estimator,
        train,
        cv_folds,
        cv_seed,
        signal_counts=uses_signal_counts(spec),
        workers=cv_workers,
    )
    threshold = threshold_for_fpr(y_train, oof, target_fpr)
    test_proba = phishing_probability(model, test)

    cv = _rounded(classification_metrics(y_train, oof, 0.5))
    cv["recall_at_target_fpr"] = round(recall_at_fpr(y_train, oof, target_fpr), 6)
    test_metrics = _rounded(classification_metrics(y_test, test_proba, 0.5))
    at_threshold = classification_metrics(y_test, test_proba, threshold)
    test_metrics["at_threshold"] = {
        k: round(at_threshold[k], 6) for k in ("recall", "precision", "fpr")
    }
    metrics = {
        "test": test_metrics,
        "cv": cv,
        "threshold": round(threshold, 6),
        "target_fpr": target_fpr,
    }
    operating_point = {
        "threshold": threshold,
        "target_fpr": target_fpr,
        "chosen_on": f"out-of-fold predictions of grouped {cv_folds}-fold CV on the training split",
        "cv_recall_at_threshold": cv["recall_at_target_fpr"],
    }
    return EvaluationResult(metrics, operating_point, y_test, test_proba)


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in values.items()}


def write_plots(result: EvaluationResult, directory: Path) -> None:
    """ROC, precision-recall, calibration (JSON) and confusion rows (CSV) for `dvc plots`."""
    directory.mkdir(parents=True, exist_ok=True)
    y, proba = result.y_test, result.test_proba
    for name, points in (
        ("roc", roc_points(y, proba)),
        ("precision_recall", pr_points(y, proba)),
        ("calibration", calibration_points(y, proba)),
    ):
        (directory / f"{name}.json").write_text(json.dumps({name: points}, indent=1) + "\n")
    confusion_rows(y, proba, result.metrics["threshold"]).to_csv(
        directory / "confusion.csv", index=False
    )
