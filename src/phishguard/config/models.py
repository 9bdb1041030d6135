"""One typed config per model of the zoo, built from the `model` section of params.yaml.

Each dataclass lists the hyperparameters its estimator takes, with their type, the rule of
allowed values (`phishguard.config.hyperparameters`) and the library's own default. XGBoost and
scikit-learn check their parameters only when fitting, with a traceback of 30 lines
(`max_depth: "six"`) or, for some values, not at all: `model_config` names the key, the value
and what is allowed, in one line, before any library sees them; an unknown key is an error too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from phishguard.config.hyperparameters import (
    BOOLEAN,
    FRACTION,
    NON_NEGATIVE,
    NULL,
    POSITIVE,
    SCHEDULER,
    THREADS,
    WEIGHTS,
    ModelConfigError,
    Rule,
    float32,
    integer,
    one_of,
)
from phishguard.config.params import did_you_mean, section
from phishguard.paths import PARAMS


def hyperparameter(rule: Rule, default: Any = None) -> Any:
    """A dataclass field for a hyperparameter: its allowed values and the library's default."""
    return field(default=default, metadata={"rule": rule})


@dataclass(frozen=True)
class ModelConfig:
    """What every model config has: its name, and whether the model also takes the engineered
    signal counts (`phishguard.modeling.features`), an input choice, not a hyperparameter."""

    name: ClassVar[str]
    signal_counts: bool = False

    def hyperparameters(self) -> dict[str, Any]:
        """The estimator's keyword arguments."""
        return {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if "rule" in f.metadata
        }

    def as_params(self) -> dict[str, Any]:
        """Everything but the name, as plain data (what a trained model's metadata records)."""
        return {"signal_counts": self.signal_counts, **self.hyperparameters()}


@dataclass(frozen=True)
class XGBoostConfig(ModelConfig):
    """Gradient-boosted trees (`xgboost.XGBClassifier`); null means XGBoost's own default.

    Floats are parsed by XGBoost as 32-bit: 0 or a normal float32, never one that underflows.
    """

    name: ClassVar[str] = "xgboost"
    n_estimators: int | None = hyperparameter(integer(1))
    max_depth: int | None = hyperparameter(integer(1))
    learning_rate: float | None = hyperparameter(float32(FRACTION))
    subsample: float | None = hyperparameter(float32(FRACTION))
    colsample_bytree: float | None = hyperparameter(float32(FRACTION))
    colsample_bylevel: float | None = hyperparameter(float32(FRACTION))
    colsample_bynode: float | None = hyperparameter(float32(FRACTION))
    min_child_weight: float | None = hyperparameter(float32(NON_NEGATIVE))
    gamma: float | None = hyperparameter(float32(NON_NEGATIVE))
    reg_lambda: float | None = hyperparameter(float32(NON_NEGATIVE))
    reg_alpha: float | None = hyperparameter(float32(NON_NEGATIVE))
    max_bin: int | None = hyperparameter(integer(2))
    scale_pos_weight: float | None = hyperparameter(float32(POSITIVE))
    n_jobs: int | None = hyperparameter(THREADS)


@dataclass(frozen=True)
class XGBoostDaskConfig(XGBoostConfig):
    """The same trees trained with `xgboost.dask` (`phishguard.modeling.dask_training`) on the
    cluster at `scheduler` (null: $DASK_SCHEDULER_ADDRESS, else a local cluster; 'local':
    always a local cluster of `workers` processes), the rows cut into `partitions` blocks.
    The same partitions and worker count give the same model bytes."""

    name: ClassVar[str] = "xgboost_dask"
    scheduler: str | None = hyperparameter(SCHEDULER)
    workers: int = hyperparameter(integer(1), 2)
    partitions: int = hyperparameter(integer(1), 4)


@dataclass(frozen=True)
class ForestConfig(ModelConfig):
    """The keys scikit-learn's random forest and extra trees share."""

    n_estimators: int = hyperparameter(integer(1), 100)
    max_depth: int | None = hyperparameter(NULL | integer(1))
    min_samples_leaf: int = hyperparameter(integer(1), 1)
    min_samples_split: int = hyperparameter(integer(2), 2)
    max_features: str | int | float | None = hyperparameter(
        one_of("sqrt", "log2", None) | integer(1) | FRACTION, "sqrt"
    )
    max_samples: float | None = hyperparameter(NULL | FRACTION)
    bootstrap: bool = hyperparameter(BOOLEAN, True)
    class_weight: str | None = hyperparameter(one_of(None, "balanced", "balanced_subsample"))
    n_jobs: int | None = hyperparameter(THREADS)


@dataclass(frozen=True)
class RandomForestConfig(ForestConfig):
    """scikit-learn's `RandomForestClassifier`."""

    name: ClassVar[str] = "random_forest"


@dataclass(frozen=True)
class ExtraTreesConfig(ForestConfig):
    """scikit-learn's `ExtraTreesClassifier` (no bootstrap by default)."""

    name: ClassVar[str] = "extra_trees"
    bootstrap: bool = hyperparameter(BOOLEAN, False)


@dataclass(frozen=True)
class HistGradientBoostingConfig(ModelConfig):
    """scikit-learn's `HistGradientBoostingClassifier`."""

    name: ClassVar[str] = "hist_gradient_boosting"
    max_iter: int = hyperparameter(integer(1), 100)
    learning_rate: float = hyperparameter(POSITIVE, 0.1)
    max_leaf_nodes: int | None = hyperparameter(NULL | integer(2), 31)
    max_depth: int | None = hyperparameter(NULL | integer(1))
    min_samples_leaf: int = hyperparameter(integer(1), 20)
    l2_regularization: float = hyperparameter(NON_NEGATIVE, 0.0)
    max_bins: int = hyperparameter(integer(2, 255), 255)
    early_stopping: bool | str = hyperparameter(BOOLEAN | one_of("auto"), "auto")


@dataclass(frozen=True)
class LogisticRegressionConfig(ModelConfig):
    """One-hot encoded signals into scikit-learn's `LogisticRegression`."""

    name: ClassVar[str] = "logistic_regression"
    C: float = hyperparameter(POSITIVE, 1.0)
    max_iter: int = hyperparameter(integer(1), 100)
    class_weight: str | None = hyperparameter(one_of(None, "balanced"))
    solver: str = hyperparameter(
        one_of("lbfgs", "liblinear", "newton-cg", "newton-cholesky", "sag", "saga"), "lbfgs"
    )


@dataclass(frozen=True)
class SoftVotingConfig(ModelConfig):
    """scikit-learn's `VotingClassifier(voting="soft")` over members that are model configs
    themselves; every member takes the ensemble's inputs (`signal_counts`)."""

    name: ClassVar[str] = "soft_voting"
    members: tuple[ModelConfig, ...] = ()
    weights: Sequence[float] | None = hyperparameter(WEIGHTS)
    n_jobs: int | None = hyperparameter(NULL | THREADS)

    def as_params(self) -> dict[str, Any]:
        members = {member.name: member.as_params() for member in self.members}
        return {**super().as_params(), "members": members}


MODELS: dict[str, type[ModelConfig]] = {
    cls.name: cls
    for cls in (
        XGBoostConfig,
        XGBoostDaskConfig,
        RandomForestConfig,
        ExtraTreesConfig,
        HistGradientBoostingConfig,
        LogisticRegressionConfig,
        SoftVotingConfig,
    )
}
RULES: dict[str, dict[str, Rule]] = {
    name: {f.name: f.metadata["rule"] for f in dataclasses.fields(cls) if "rule" in f.metadata}
    for name, cls in MODELS.items()
}
"""Per model, the rule of each hyperparameter it takes."""


def load_model_config(path: Path = PARAMS) -> ModelConfig:
    """The `model` section of the params file as its model's typed config."""
    return model_config(section("model", path))


def model_config(spec: Mapping[str, Any], where: str = "model") -> ModelConfig:
    """The typed config of a `model` params mapping (`name`, `signal_counts` and the model's
    hyperparameters); `ModelConfigError` names the first key or value it cannot take."""
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ModelConfigError(f"{where} params need a 'name' (one of {', '.join(MODELS)})")
    name = spec["name"]
    if name not in MODELS:
        raise ModelConfigError(f"unknown model '{name}' (choose one of {', '.join(MODELS)})")
    values = {key: value for key, value in spec.items() if key != "name"}
    signal_counts = values.get("signal_counts", False)
    if not isinstance(signal_counts, bool):
        raise ModelConfigError(
            f"{where}.signal_counts must be true or false, got {signal_counts!r}"
        )
    if name == SoftVotingConfig.name:
        values["members"] = _members(values.get("members"), signal_counts, where)
    hyperparameters = {k: v for k, v in values.items() if k not in ("signal_counts", "members")}
    check_hyperparameters(name, hyperparameters, where)
    return MODELS[name](**values)


def check_hyperparameters(model: str, params: Mapping[str, Any], where: str = "model") -> None:
    """Raise `ModelConfigError` naming the first key of `params` that model `model` does
    not take, or whose value is out of its type or range; `where` prefixes the key."""
    rules = RULES[model]
    for key, value in params.items():
        if key not in rules:
            hint = did_you_mean(f"{where}.{key}", [f"{where}.{name}" for name in rules])
            raise ModelConfigError(
                f"{where}.{key} is not a hyperparameter of {model}{hint} "
                f"(it takes {', '.join(sorted(rules))})"
            )
        if not rules[key].accepts(value):
            raise ModelConfigError(
                f"{where}.{key} = {value!r} is not allowed: expected {rules[key].allowed}"
            )


def _members(members: Any, signal_counts: bool, where: str) -> tuple[ModelConfig, ...]:
    """The soft vote's members, each typed by its own model's config."""
    if not isinstance(members, Mapping) or not members:
        raise ModelConfigError("soft_voting needs 'members': a mapping of model name → params")
    unknown = sorted(set(members) - set(MODELS) | ({SoftVotingConfig.name} & set(members)))
    if unknown:
        raise ModelConfigError(f"soft_voting: unknown member model(s) {', '.join(unknown)}")
    configs = []
    for key, member in members.items():
        here = f"{where}.members.{key}"
        if not isinstance(member, Mapping):
            raise ModelConfigError(f"{here}: expected a mapping of hyperparameters, got {member!r}")
        if member.get("name", key) != key:
            raise ModelConfigError(f"{here}.name = {member['name']!r}: must be the member's key")
        config = model_config({"signal_counts": signal_counts, **member, "name": key}, here)
        if config.signal_counts != signal_counts:
            raise ModelConfigError(
                f"{here}.signal_counts = {config.signal_counts}: every member takes the "
                f"ensemble's inputs ({where}.signal_counts = {signal_counts})"
            )
        configs.append(config)
    return tuple(configs)
