"""The model's input columns: the engineered signal counts, computed by one function for the
featurize stage's tables and for scoring, and chosen by the model config."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from phishguard.config.hyperparameters import ModelConfigError
from phishguard.config.models import model_config
from phishguard.contract.schema import FEATURES, LABEL, TARGET, to_target
from phishguard.modeling.evaluate import grouped_cv
from phishguard.modeling.features import (
    INPUT_COLUMNS,
    SIGNAL_COUNTS,
    featurize,
    model_inputs,
    signal_counts,
    table_inputs,
)
from phishguard.modeling.zoo import build_model, input_columns
from tests.support import synthetic_rows


def _table(n: int = 300) -> pd.DataFrame:
    rows = synthetic_rows(n, seed=5)
    table = rows.loc[:, list(FEATURES)].copy()
    # Phishing when many signals are -1: exactly what the counts express.
    minus_ones = (rows[list(FEATURES)] == -1).sum(axis=1)
    table[TARGET] = (minus_ones > minus_ones.median()).astype(np.int8)
    assert 0 < table[TARGET].mean() < 1
    assert LABEL in rows and to_target(rows[LABEL]).size == n
    return featurize(table)


def test_counts_are_the_numbers_of_minus_ones_and_zeros() -> None:
    matrix = np.ones((2, len(FEATURES)), dtype=np.float32)
    matrix[0, :3] = -1
    matrix[1, FEATURES.index("SSLfinal_State")] = 0
    matrix[1, FEATURES.index("web_traffic")] = -1
    counts = signal_counts(matrix)
    assert counts.tolist() == [[3.0, 0.0], [1.0, 1.0]]
    extended = model_inputs(matrix, INPUT_COLUMNS)
    assert extended.shape == (2, len(INPUT_COLUMNS)) and extended.dtype == np.float32
    assert np.array_equal(extended[:, : len(FEATURES)], matrix)
    assert model_inputs(matrix, FEATURES) is matrix  # a 30-input model: unchanged


def test_counts_refuse_a_matrix_of_the_wrong_width() -> None:
    with pytest.raises(ValueError, match="30 features"):
        signal_counts(np.zeros((3, 29)))


def test_the_featurized_table_and_scoring_compute_the_same_inputs() -> None:
    table = _table()
    assert list(table.columns[-2:]) == list(SIGNAL_COUNTS)
    at_scoring = model_inputs(table.loc[:, list(FEATURES)].to_numpy(np.float32), INPUT_COLUMNS)
    shuffled = table[list(reversed(table.columns))]
    np.testing.assert_array_equal(table_inputs(shuffled, INPUT_COLUMNS), at_scoring)


def test_the_config_decides_the_input_columns() -> None:
    counting = model_config({"name": "xgboost", "signal_counts": True})
    assert input_columns(counting) == list(INPUT_COLUMNS)
    assert input_columns(model_config({"name": "xgboost"})) == list(FEATURES)
    assert "signal_counts" not in build_model(counting, 1).get_params()
    with pytest.raises(ModelConfigError, match="true or false"):
        model_config({"name": "xgboost", "signal_counts": "yes"})


def test_grouped_cv_uses_the_counts_when_asked() -> None:
    table = _table()
    estimator = build_model(
        model_config({"name": "logistic_regression", "C": 1.0, "max_iter": 500}), 0
    )
    plain = grouped_cv(estimator, table, 3, 0)
    counted = grouped_cv(estimator, table, 3, 0, columns=INPUT_COLUMNS)
    assert not np.allclose(plain, counted)
