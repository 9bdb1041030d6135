"""The model's input columns: the 30 signals plus two engineered counts, computed here only.

In the UCI coding every signal is -1 (phishing-like), 0 (suspicious, ternary signals and
`Redirect`) or 1 (legitimate-like). Trees split on one signal at a time, so "many weak signals
at once" costs them deep, data-hungry paths; the two counts hand them that directly. They are
fixed functions of the 30 inputs — nothing is learnt from labels. The `featurize` stage writes
them into the train/test tables (`featurize`), and the model bundle computes them from the 30
signals at scoring time (`model_inputs`): both through `signal_counts`. Which columns a model
takes is recorded in its manifest (`input_columns`); `phishguard.modeling.zoo.input_columns`
decides it from the model config.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from phishguard.contract.schema import DOMAINS, FEATURES

SIGNAL_COUNTS: tuple[str, ...] = ("n_phishing_signals", "n_suspicious_signals")
"""Names of the engineered columns, appended after the 30 features in this order."""
INPUT_COLUMNS: tuple[str, ...] = (*FEATURES, *SIGNAL_COUNTS)
"""Every column a model may take, in this order."""


def signal_counts(matrix: np.ndarray) -> np.ndarray:
    """Per row of the 30-feature matrix (canonical order), the counts of -1 and of 0 values."""
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[1] != len(FEATURES):
        raise ValueError(f"expected a matrix of {len(FEATURES)} features, got shape {matrix.shape}")
    phishing = (matrix == -1).sum(axis=1, dtype=np.float32)
    suspicious = (matrix == 0).sum(axis=1, dtype=np.float32)
    return np.column_stack([phishing, suspicious])


def as_matrix(features: pd.DataFrame) -> np.ndarray:
    """The 30-feature matrix in canonical column order, whatever order the frame has."""
    return features.loc[:, list(FEATURES)].to_numpy(dtype=np.float32)


def featurize(table: pd.DataFrame) -> pd.DataFrame:
    """The table with the engineered columns added (integers; other columns kept)."""
    counts = signal_counts(as_matrix(table)).astype(np.int8)
    return table.assign(**{name: counts[:, i] for i, name in enumerate(SIGNAL_COUNTS)})


def check_input_columns(columns: Sequence[str]) -> None:
    """Refuse a column list that is not the 30 features, optionally followed by the counts."""
    if list(columns) not in (list(FEATURES), list(INPUT_COLUMNS)):
        raise ValueError(
            f"input columns must be the {len(FEATURES)} features, optionally followed by "
            f"{', '.join(SIGNAL_COUNTS)}; got {len(columns)} columns"
        )


def model_inputs(matrix: np.ndarray, columns: Sequence[str]) -> np.ndarray:
    """The float32 model input named by `columns`, from the 30-feature matrix (canonical order)."""
    if tuple(columns) == FEATURES:
        return matrix
    return np.column_stack([matrix, signal_counts(matrix)]).astype(np.float32, copy=False)


def table_inputs(table: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """The float32 model input named by `columns`, from a featurized table (any column order)."""
    return table.loc[:, list(columns)].to_numpy(dtype=np.float32)


def value_shares(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Each feature's share of each value of its domain, over the rows of `table` (whose
    values are in their domains). The training split's shares go into the model's manifest:
    the service's live drift gauge compares what it scores with them."""
    return {
        name: {
            str(value): round(float(share), 6)
            for value, share in zip(
                DOMAINS[name],
                value_counts(table[name].to_numpy(), DOMAINS[name]) / max(len(table), 1),
                strict=True,
            )
        }
        for name in FEATURES
    }


def value_counts(values: np.ndarray, domain: tuple[int, ...]) -> np.ndarray:
    """How often each value of `domain` occurs in `values`, in domain order."""
    return np.array([(values == value).sum() for value in domain], dtype=np.int64)


def psi(reference_counts: np.ndarray, current_counts: np.ndarray, pseudo_count: float) -> float:
    """Population stability index of two count vectors over the same bins, each bin's count
    smoothed by `pseudo_count` (so an empty bin on one side gives a large but finite value).
    `phishguard drift` and the service's live drift gauge both measure with it."""
    ref = np.asarray(reference_counts, dtype=np.float64) + pseudo_count
    cur = np.asarray(current_counts, dtype=np.float64) + pseudo_count
    ref, cur = ref / ref.sum(), cur / cur.sum()
    return float(np.sum((cur - ref) * np.log(cur / ref)))
