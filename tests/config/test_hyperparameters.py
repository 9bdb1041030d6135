"""Model hyperparameters are checked for type and range before any library sees them, in one
line naming the key, the value and what is allowed (issue 15: `max_depth: "six"` or -1 gave a
30-line XGBoost traceback)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from phishguard.config.compose import compose_params
from phishguard.config.hyperparameters import ModelConfigError
from phishguard.config.models import (
    MODELS,
    RULES,
    ExtraTreesConfig,
    SoftVotingConfig,
    XGBoostConfig,
    check_hyperparameters,
    load_model_config,
    model_config,
)
from phishguard.modeling.zoo import build_model
from tests.support import REPO

FLOAT32 = "(a 32-bit float: 0 or ≥ 1.17549e-38)"
CONFIGS = sorted((REPO / "conf" / "model").glob("*.yaml"))
anything = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=6),
    st.lists(st.integers(-2, 2), max_size=3),
)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_config_passes(config: Path) -> None:
    composed = compose_params([f"model={config.stem}"], conf_dir=REPO / "conf")
    spec = yaml.safe_load(composed)["model"]
    build_model(model_config(spec), 42)  # raises on any key or value the rules refuse


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("max_depth", "six", "an integer ≥ 1"),
        ("max_depth", -1, "an integer ≥ 1"),
        ("max_depth", 2.5, "an integer ≥ 1"),
        ("learning_rate", 0, f"a number in (0, 1] {FLOAT32}"),
        ("subsample", 1.5, f"a number in (0, 1] {FLOAT32}"),
        ("n_estimators", True, "an integer ≥ 1"),
        ("reg_lambda", float("nan"), f"a number ≥ 0 {FLOAT32}"),
        ("min_child_weight", 5e-222, f"a number ≥ 0 {FLOAT32}"),
    ],
)
def test_the_issue_cases_are_one_line(key: str, value: object, allowed: str) -> None:
    spec = {**yaml.safe_load((REPO / "conf" / "model" / "xgboost.yaml").read_text()), key: value}
    with pytest.raises(ModelConfigError) as refused:
        model_config(spec)
    assert str(refused.value) == f"model.{key} = {value!r} is not allowed: expected {allowed}"


@settings(max_examples=300, deadline=None)
@given(
    model=st.sampled_from(sorted(RULES)),
    key=st.data(),
    value=anything,
)
def test_any_value_is_accepted_or_refused_naming_it(model: str, key, value: object) -> None:
    name = key.draw(st.sampled_from(sorted(RULES[model])))
    rule = RULES[model][name]
    if rule.accepts(value):
        check_hyperparameters(model, {name: value})
        return
    with pytest.raises(ModelConfigError) as refused:
        check_hyperparameters(model, {name: value})
    assert str(refused.value) == (
        f"model.{name} = {value!r} is not allowed: expected {rule.allowed}"
    )


def test_unknown_keys_and_member_values_are_named() -> None:
    with pytest.raises(ModelConfigError, match=r"model.max_dept is not a hyperparameter of"):
        model_config({"name": "xgboost", "max_dept": 3})
    spec = {"name": "soft_voting", "members": {"extra_trees": {"max_depth": 0}}}
    with pytest.raises(ModelConfigError, match=r"model.members.extra_trees.max_depth = 0"):
        model_config(spec)


@settings(max_examples=25, deadline=None)
@given(
    max_depth=st.integers(1, 8),
    learning_rate=st.floats(1e-3, 1.0),
    subsample=st.floats(0.05, 1.0),
    colsample_bytree=st.floats(0.05, 1.0),
    min_child_weight=st.floats(0, 5) | st.floats(0, 1e-30),
)
def test_what_the_rules_accept_xgboost_fits(**params: object) -> None:
    """The rules are not stricter than needed to be safe: accepted values train."""
    spec = {"name": "xgboost", "n_estimators": 3, "n_jobs": 1, **params}
    try:
        config = model_config(spec)
    except ModelConfigError:
        assume(False)  # refused: the other tests cover that
    rng = np.random.default_rng(0)
    features = rng.choice([-1.0, 1.0], size=(60, 30)).astype(np.float32)
    build_model(config, 0).fit(features, (features[:, 0] > 0).astype(int))


def test_a_misspelled_key_in_params_yaml_is_named_by_the_loader(tmp_path: Path) -> None:
    """What `dvc exp run -S +model.max_dept=4` makes `train` read (the e2e check:
    tests/data/test_stages.py runs the stage; tests/e2e/test_sweep.py the sweep)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["model"]["max_dept"] = 4
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ModelConfigError) as refused:
        load_model_config(tmp_path / "params.yaml")
    # The nearest valid key first (issue 29), then every key the model takes.
    assert str(refused.value).startswith(
        "model.max_dept is not a hyperparameter of xgboost; did you mean 'model.max_depth'? ("
    )


def test_the_loader_types_the_default_model(tmp_path: Path) -> None:
    config = load_model_config(REPO / "params.yaml")
    assert isinstance(config, XGBoostConfig)
    assert (config.max_depth, config.n_estimators, config.signal_counts) == (6, 600, True)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_defaults_are_the_librarys_own(name: str) -> None:
    """A key left out of the config means the library's default, as if it were not passed."""
    cls = MODELS[name]
    members = {"members": {"extra_trees": {}}} if name == "soft_voting" else {}
    config = model_config({"name": name, **members})
    estimator = build_model(config, 0)
    if name == "logistic_regression":
        estimator = estimator[-1]
    unconfigured = type(estimator)(**({"estimators": []} if name == "soft_voting" else {}))
    library = unconfigured.get_params()
    for key, value in config.hyperparameters().items():
        assert library[key] == value, (cls.__name__, key)


def test_soft_voting_members_are_typed_and_take_the_ensembles_inputs() -> None:
    composed = yaml.safe_load(compose_params(["model=soft_voting"], conf_dir=REPO / "conf"))
    config = model_config(composed["model"])
    assert isinstance(config, SoftVotingConfig)
    assert [type(m) for m in config.members] == [XGBoostConfig, ExtraTreesConfig]
    assert all(member.signal_counts for member in config.members)
    spec = {"name": "soft_voting", "members": {"extra_trees": {"signal_counts": True}}}
    with pytest.raises(ModelConfigError, match=r"model.members.extra_trees.signal_counts = True"):
        model_config(spec)
    spec = {"name": "soft_voting", "members": {"extra_trees": {"name": "xgboost"}}}
    with pytest.raises(ModelConfigError, match=r"model.members.extra_trees.name = 'xgboost'"):
        model_config(spec)
