"""The model zoo: build an estimator from its config, and the inputs that config asks for.

Saving and loading a fitted model belong to `phishguard.modeling.bundle` (XGBoost's native
UBJSON, or skops against `SKOPS_TRUSTED`; never a pickle).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from phishguard.config.models import (
    ExtraTreesConfig,
    HistGradientBoostingConfig,
    LogisticRegressionConfig,
    ModelConfig,
    RandomForestConfig,
    SoftVotingConfig,
    XGBoostConfig,
    XGBoostDaskConfig,
)
from phishguard.contract.schema import FEATURES
from phishguard.modeling.features import INPUT_COLUMNS


def _xgboost(config: XGBoostConfig, seed: int) -> Any:
    from xgboost import XGBClassifier

    return XGBClassifier(
        **config.hyperparameters(),
        random_state=seed,
        objective="binary:logistic",
        eval_metric="logloss",
        tree_method="hist",
    )


def _xgboost_dask(config: XGBoostDaskConfig, seed: int) -> Any:
    # Imported here: it imports scikit-learn, which the service (bundle → zoo) does not need.
    from phishguard.modeling.dask_training import DaskXGBoost

    # Trained on a Dask cluster, scored in-process: evaluate's grouped CV fits it like any
    # scikit-learn estimator, and its booster is saved as the single-node model's model.ubj.
    return DaskXGBoost(**config.hyperparameters(), random_state=seed)


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
    XGBoostDaskConfig: _xgboost_dask,
    RandomForestConfig: _random_forest,
    ExtraTreesConfig: _extra_trees,
    HistGradientBoostingConfig: _hist_gradient_boosting,
    LogisticRegressionConfig: _logistic_regression,
    SoftVotingConfig: _soft_voting,
}

# Models saved in XGBoost's native UBJSON (model.ubj) and loaded as a plain `Booster`.
XGBOOST_NATIVE = frozenset({XGBoostConfig.name, XGBoostDaskConfig.name})

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
    """The model's input columns, in order: the 30 features, then the engineered counts when
    the config says `signal_counts: true`. The one place that decides it: train records the
    result in the manifest, and everything after reads it from there."""
    return list(INPUT_COLUMNS) if config.signal_counts else list(FEATURES)


def build_model(config: ModelConfig, seed: int) -> Any:
    """An unfitted estimator for the typed model config (`phishguard.config.models`), seeded."""
    return BUILDERS[type(config)](config, seed)
