"""The model zoo: build an estimator from its config, save it safely, load it verified.

XGBoost models are stored in XGBoost's native UBJSON format; scikit-learn models with skops,
loaded against an explicit allow-list of types. No pickle is ever loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from phishguard.config.hyperparameters import ModelConfigError
from phishguard.config.models import (
    ExtraTreesConfig,
    HistGradientBoostingConfig,
    LogisticRegressionConfig,
    ModelConfig,
    RandomForestConfig,
    SoftVotingConfig,
    XGBoostConfig,
)
from phishguard.contract.schema import FEATURES
from phishguard.modeling.features import SIGNAL_COUNTS, with_signal_counts
from phishguard.provenance import IntegrityError, file_sha256


def _xgboost(config: XGBoostConfig, seed: int) -> Any:
    from xgboost import XGBClassifier

    return XGBClassifier(
        **config.hyperparameters(),
        random_state=seed,
        objective="binary:logistic",
        eval_metric="logloss",
        tree_method="hist",
    )


def _random_forest(config: RandomForestConfig, seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(**config.hyperparameters(), random_state=seed)


def _extra_trees(config: ExtraTreesConfig, seed: int) -> Any:
    from sklearn.ensemble import ExtraTreesClassifier

    return ExtraTreesClassifier(**config.hyperparameters(), random_state=seed)


def _hist_gradient_boosting(config: HistGradientBoostingConfig, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(**config.hyperparameters(), random_state=seed)


def _logistic_regression(config: LogisticRegressionConfig, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    # One-hot: the ternary signals are categories, not magnitudes.
    encoder = OneHotEncoder(handle_unknown="ignore", dtype=np.float64)
    return make_pipeline(encoder, LogisticRegression(**config.hyperparameters(), random_state=seed))


def _soft_voting(config: SoftVotingConfig, seed: int) -> Any:
    from sklearn.ensemble import VotingClassifier

    estimators = [(member.name, build_model(member, seed)) for member in config.members]
    return VotingClassifier(estimators, voting="soft", **config.hyperparameters())


BUILDERS: dict[type[ModelConfig], Callable[[Any, int], Any]] = {
    XGBoostConfig: _xgboost,
    RandomForestConfig: _random_forest,
    ExtraTreesConfig: _extra_trees,
    HistGradientBoostingConfig: _hist_gradient_boosting,
    LogisticRegressionConfig: _logistic_regression,
    SoftVotingConfig: _soft_voting,
}

# Types that skops may load from our own files beyond its defaults; anything else is refused.
SKOPS_TRUSTED = [
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    # VotingClassifier keeps its fitted members in a Bunch (a plain dict subclass).
    "sklearn.utils._bunch.Bunch",
    # An XGBoost member of an ensemble: its state is XGBoost's own raw model bytes, not pickle.
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
]


def input_columns(config: ModelConfig) -> list[str]:
    """The model's input columns, in order: the 30 features, then any engineered ones."""
    return [*FEATURES, *SIGNAL_COUNTS] if config.signal_counts else list(FEATURES)


def design_matrix(features: pd.DataFrame, config: ModelConfig) -> np.ndarray:
    """The training input for `config`: `as_matrix`, plus the counts if configured."""
    matrix = as_matrix(features)
    return with_signal_counts(matrix) if config.signal_counts else matrix


def build_model(config: ModelConfig, seed: int) -> Any:
    """An unfitted estimator for the typed model config (`phishguard.config.models`), seeded."""
    return BUILDERS[type(config)](config, seed)


def model_filename(name: str) -> str:
    return "model.ubj" if name == "xgboost" else "model.skops"


def save_model(model: Any, name: str, directory: Path) -> Path:
    """Write the fitted model in its safe format; return the file's path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / model_filename(name)
    if name == "xgboost":
        model.save_model(path)
    else:
        import skops.io

        from phishguard.modeling.skops_bytes import canonical_skops

        # Same model, same bytes: what lets two clones produce identical model files.
        path.write_bytes(canonical_skops(skops.io.dumps(model)))
    return path


def load_model(path: Path, expected_sha256: str) -> Any:
    """Load a model written by `save_model`, after checking its sha256."""
    actual = file_sha256(path)
    if actual != expected_sha256:
        raise IntegrityError(
            f"{path}: sha256 {actual[:12]}… does not match the recorded {expected_sha256[:12]}…; "
            "the model file was altered or belongs to another build — re-run the pipeline"
        )
    if path.suffix == ".ubj":
        from xgboost import XGBClassifier

        model = XGBClassifier()
        model.load_model(path)
        return model
    import skops.io

    return skops.io.load(path, trusted=SKOPS_TRUSTED)


def as_matrix(features: pd.DataFrame) -> np.ndarray:
    """The feature matrix in canonical column order, whatever order the frame has."""
    return features.loc[:, list(FEATURES)].to_numpy(dtype=np.float32)


def model_matrix(model: Any, matrix: np.ndarray) -> np.ndarray:
    """The input a fitted `model` takes, from the 30-feature matrix in canonical order.

    A model fitted with the engineered signal counts has 32 inputs, and gets them computed
    here by the same function as in training; a 30-input model gets the matrix unchanged.
    """
    width = int(model.n_features_in_)
    if width == len(FEATURES):
        return matrix
    if width == len(FEATURES) + len(SIGNAL_COUNTS):
        return with_signal_counts(matrix)
    raise ModelConfigError(f"the model takes {width} inputs; expected {len(FEATURES)} or 32")


def phishing_probability(model: Any, features: pd.DataFrame) -> np.ndarray:
    """P(phishing) for each row (class 1 of the target is phishing)."""
    return model.predict_proba(model_matrix(model, as_matrix(features)))[:, 1]
