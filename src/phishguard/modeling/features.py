"""Engineered model inputs: how many of a record's signals point to phishing or are suspicious.

In the UCI coding every signal is -1 (phishing-like), 0 (suspicious, ternary signals and
`Redirect`) or 1 (legitimate-like). Trees split on one signal at a time, so "many weak signals
at once" costs them deep, data-hungry paths; the two counts hand them that directly. They are
fixed functions of the 30 inputs — nothing is learnt from labels — and are computed by the same
function at training, evaluation and serving time (`models.model_matrix`).
"""

from __future__ import annotations

import numpy as np

from phishguard.contract.schema import FEATURES

SIGNAL_COUNTS: tuple[str, ...] = ("n_phishing_signals", "n_suspicious_signals")
"""Names of the engineered columns, appended after the 30 features in this order."""


def with_signal_counts(matrix: np.ndarray) -> np.ndarray:
    """The 30-feature matrix (canonical order) plus the counts of -1 and of 0 values per row."""
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[1] != len(FEATURES):
        raise ValueError(f"expected a matrix of {len(FEATURES)} features, got shape {matrix.shape}")
    phishing = (matrix == -1).sum(axis=1, dtype=np.float32)
    suspicious = (matrix == 0).sum(axis=1, dtype=np.float32)
    return np.column_stack([matrix, phishing, suspicious]).astype(np.float32, copy=False)
