"""The headline numbers: the few that `dvc exp show` compares across experiments.

reports/headline.json is the pipeline's only DVC metrics file; the per-fold, per-interval
detail stays in reports/metrics.json (a plain output) and the plots. One entry per model kind,
keyed by what it scores: `uci` (the UCI feature model, the evaluate stage). A model of another
kind (the URL model of issue 31) adds its own entry, in its own stage's headline file, with
the same four keys.
"""

from __future__ import annotations

from typing import Any

UCI = "uci"
HEADLINE_KEYS = ("accuracy", "roc_auc", "recall_at_fpr", "threshold")
DIGITS = 4  # enough to tell experiments apart, short enough for a 160-column table


def headline_entry(metrics: dict[str, Any]) -> dict[str, float]:
    """From evaluate's metrics document: the test split's accuracy (at 0.5, as `test.accuracy`
    there and the quality gate), ROC-AUC, recall at the operating threshold (chosen on
    out-of-fold predictions for evaluate.target_fpr: `test.at_threshold.recall`), and that
    threshold."""
    test = metrics["test"]
    recall = test["at_threshold"]["recall"]
    values = (test["accuracy"], test["roc_auc"], recall, metrics["threshold"])
    return {
        key: round(float(value), DIGITS) for key, value in zip(HEADLINE_KEYS, values, strict=True)
    }
