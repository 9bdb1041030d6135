"""Engineered signal counts: computed identically at training, evaluation and scoring time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from phishguard.config.models import model_config
from phishguard.contract.schema import FEATURES, LABEL, TARGET, to_target
from phishguard.modeling.evaluate import grouped_cv
from phishguard.modeling.features import SIGNAL_COUNTS, with_signal_counts
from phishguard.modeling.train import train_and_save
from phishguard.modeling.zoo import (
    ModelConfigError,
    build_model,
    design_matrix,
    load_model,
    model_matrix,
    phishing_probability,
)
from tests.support import synthetic_rows


def _table(n: int = 300) -> pd.DataFrame:
    rows = synthetic_rows(n, seed=5)
    table = rows.loc[:, list(FEATURES)].copy()
    # Phishing when many signals are -1: exactly what the counts express.
    minus_ones = (rows[list(FEATURES)] == -1).sum(axis=1)
    table[TARGET] = (minus_ones > minus_ones.median()).astype(np.int8)
    assert 0 < table[TARGET].mean() < 1
    assert LABEL in rows and to_target(rows[LABEL]).size == n
    return table


def test_counts_are_the_numbers_of_minus_ones_and_zeros() -> None:
    matrix = np.ones((2, len(FEATURES)), dtype=np.float32)
    matrix[0, :3] = -1
    matrix[1, FEATURES.index("SSLfinal_State")] = 0
    matrix[1, FEATURES.index("web_traffic")] = -1
    extended = with_signal_counts(matrix)
    assert extended.shape == (2, len(FEATURES) + len(SIGNAL_COUNTS))
    assert extended[:, -2].tolist() == [3.0, 1.0]
    assert extended[:, -1].tolist() == [0.0, 1.0]
    assert np.array_equal(extended[:, : len(FEATURES)], matrix)


def test_counts_refuse_a_matrix_of_the_wrong_width() -> None:
    with pytest.raises(ValueError, match="30 features"):
        with_signal_counts(np.zeros((3, 29)))


def test_signal_counts_must_be_a_boolean() -> None:
    with pytest.raises(ModelConfigError, match="true or false"):
        design_matrix(_table(), model_config({"name": "xgboost", "signal_counts": "yes"}))


@pytest.mark.parametrize("name", ["xgboost", "extra_trees"])
def test_a_counts_model_scores_with_the_counts_it_was_trained_on(name: str, tmp_path: Path) -> None:
    table = _table()
    spec = model_config({"name": name, "n_estimators": 20, "signal_counts": True})
    metadata = train_and_save(spec, 42, table, tmp_path)
    assert metadata["input_columns"] == [*FEATURES, *SIGNAL_COUNTS]
    assert "signal_counts" not in build_model(spec, 42).get_params()
    model = load_model(tmp_path / metadata["model_file"], metadata["model_sha256"])
    assert model.n_features_in_ == len(FEATURES) + len(SIGNAL_COUNTS)
    proba = phishing_probability(model, table)
    expected = model.predict_proba(with_signal_counts(table[list(FEATURES)].to_numpy()))[:, 1]
    assert np.allclose(proba, expected)
    # Column order does not matter, and identical records get identical scores.
    shuffled = table[list(reversed(table.columns))]
    assert np.allclose(phishing_probability(model, shuffled), proba)
    doubled = pd.concat([table.iloc[:1]] * 3, ignore_index=True)
    assert len(set(phishing_probability(model, doubled).tolist())) == 1


def test_plain_models_take_the_30_features_unchanged(tmp_path: Path) -> None:
    table = _table()
    metadata = train_and_save(
        model_config({"name": "xgboost", "n_estimators": 5}), 42, table, tmp_path
    )
    assert metadata["input_columns"] == list(FEATURES)
    model = load_model(tmp_path / metadata["model_file"], metadata["model_sha256"])
    matrix = table[list(FEATURES)].to_numpy(dtype=np.float32)
    assert model_matrix(model, matrix) is matrix


def test_a_model_of_another_width_is_refused() -> None:
    class Odd:
        n_features_in_ = 31

    with pytest.raises(ModelConfigError, match="31 inputs"):
        model_matrix(Odd(), np.zeros((1, len(FEATURES)), dtype=np.float32))


def test_grouped_cv_uses_the_counts_when_asked() -> None:
    table = _table()
    estimator = build_model(
        model_config({"name": "logistic_regression", "C": 1.0, "max_iter": 500}), 0
    )
    plain = grouped_cv(estimator, table, 3, 0)
    counted = grouped_cv(estimator, table, 3, 0, signal_counts=True)
    assert not np.allclose(plain, counted)
