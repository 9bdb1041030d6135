"""The data behind evaluate's `dvc plots`: ROC, precision-recall, calibration and confusion
rows of the held-out test split, written as the DVC plot templates read them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from phishguard.io import write_atomic, write_table


def roc_points(y_true: np.ndarray, proba: np.ndarray) -> list[dict[str, float]]:
    """The ROC curve's corners: false-positive rate, recall and the threshold of each."""
    fpr, tpr, thresholds = skm.roc_curve(y_true, proba, drop_intermediate=True)
    return [
        {"fpr": round(float(f), 6), "tpr": round(float(t), 6), "threshold": _finite(th)}
        for f, t, th in zip(fpr, tpr, thresholds, strict=True)
    ]


def pr_points(y_true: np.ndarray, proba: np.ndarray) -> list[dict[str, float]]:
    """The precision-recall curve's corners."""
    precision, recall, _ = skm.precision_recall_curve(y_true, proba, drop_intermediate=True)
    return [
        {"recall": round(float(r), 6), "precision": round(float(p), 6)}
        for p, r in zip(precision, recall, strict=True)
    ]


def calibration_points(y_true: np.ndarray, proba: np.ndarray, bins: int = 10) -> list[dict]:
    """Mean predicted P(phishing) against the observed fraction, in `bins` quantile bins."""
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
    # roc_curve's first threshold is +inf ("flag nothing"); JSON has no infinity.
    return round(float(min(value, 1.0)), 6)


def write_plots(y_true: np.ndarray, proba: np.ndarray, threshold: float, directory: Path) -> None:
    """ROC, precision-recall, calibration (JSON) and confusion rows (CSV) for `dvc plots`."""
    for name, points in (
        ("roc", roc_points(y_true, proba)),
        ("precision_recall", pr_points(y_true, proba)),
        ("calibration", calibration_points(y_true, proba)),
    ):
        write_atomic(directory / f"{name}.json", json.dumps({name: points}, indent=1) + "\n")
    write_table(directory / "confusion.csv", confusion_rows(y_true, proba, threshold))
