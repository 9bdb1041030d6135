"""The model zoo: build an estimator from its config, and the inputs that config asks for.

Saving and loading a fitted model belong to `phishguard.modeling.bundle` (XGBoost's native
UBJSON, or skops against `SKOPS_TRUSTED`; never a pickle).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from phishguard.config.hyperparameters import ModelConfigError, check_hyperparameters
from phishguard.contract.schema import FEATURES
from phishguard.modeling.features import INPUT_COLUMNS


def _xgboost(params: dict[str, Any], seed: int) -> Any:
    from xgboost import XGBClassifier

    return XGBClassifier(
        **params,
        random_state=seed,
        objective="binary:logistic",
        eval_metric="logloss",
        tree_method="hist",
    )


def _random_forest(params: dict[str, Any], seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(**params, random_state=seed)


def _extra_trees(params: dict[str, Any], seed: int) -> Any:
    from sklearn.ensemble import ExtraTreesClassifier

    return ExtraTreesClassifier(**params, random_state=seed)


def _hist_gradient_boosting(params: dict[str, Any], seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(**params, random_state=seed)


def _logistic_regression(params: dict[str, Any], seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    # One-hot: the ternary signals are categories, not magnitudes.
    encoder = OneHotEncoder(handle_unknown="ignore", dtype=np.float64)
    return make_pipeline(encoder, LogisticRegression(**params, random_state=seed))


def _soft_voting(params: dict[str, Any], seed: int) -> Any:
    from sklearn.ensemble import VotingClassifier

    members = params.pop("members", None)
    if not isinstance(members, dict) or not members:
        raise ModelConfigError("soft_voting needs 'members': a mapping of model name → params")
    unknown = sorted(set(members) - set(BUILDERS) | ({"soft_voting"} & set(members)))
    if unknown:
        raise ModelConfigError(f"soft_voting: unknown member model(s) {', '.join(unknown)}")
    for name, member in members.items():
        check_hyperparameters(name, dict(member), f"model.members.{name}")
    estimators = [(name, BUILDERS[name](dict(member), seed)) for name, member in members.items()]
    return VotingClassifier(estimators, voting="soft", **params)


BUILDERS: dict[str, Callable[[dict[str, Any], int], Any]] = {
    "xgboost": _xgboost,
    "random_forest": _random_forest,
    "extra_trees": _extra_trees,
    "hist_gradient_boosting": _hist_gradient_boosting,
    "logistic_regression": _logistic_regression,
    "soft_voting": _soft_voting,
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


def split_spec(spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Separate a `model` params section into its name and its hyperparameters."""
    if "name" not in spec:
        raise ModelConfigError(f"model params need a 'name' (one of {', '.join(BUILDERS)})")
    params = {k: v for k, v in spec.items() if k != "name"}
    return str(spec["name"]), params


def input_columns(spec: dict[str, Any]) -> list[str]:
    """The model's input columns, in order: the 30 features, then the engineered counts when
    the config says `signal_counts: true`. The one place that decides it: train records the
    result in the manifest, and everything after reads it from there."""
    wanted = spec.get("signal_counts", False)
    if not isinstance(wanted, bool):
        raise ModelConfigError(f"model.signal_counts must be true or false, got {wanted!r}")
    return list(INPUT_COLUMNS) if wanted else list(FEATURES)


def build_model(spec: dict[str, Any], seed: int) -> Any:
    """An unfitted estimator for the `model` params section, seeded."""
    name, params = split_spec(spec)
    params.pop("signal_counts", None)  # an input choice (see `input_columns`), not a hyperparameter
    if name not in BUILDERS:
        raise ModelConfigError(f"unknown model '{name}' (choose one of {', '.join(BUILDERS)})")
    check_hyperparameters(name, params)  # before any library sees them: one clear line
    try:
        return BUILDERS[name](params, seed)
    except TypeError as error:
        raise ModelConfigError(f"model '{name}': {error}") from None
