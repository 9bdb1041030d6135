"""params.yaml is the Hydra composition of conf/; stages read their section strictly."""

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from dvc.utils.hydra import compose_and_dump

from phishguard import entrypoint
from phishguard.config import compose
from phishguard.config.compose import compose_params
from phishguard.config.models import load_model_config
from phishguard.config.params import ParamsError, build, load_section
from phishguard.config.sections import EvaluateParams
from tests.support import REPO


def test_committed_params_equal_the_hydra_composition():
    assert (REPO / "params.yaml").read_text() == compose_params(conf_dir=REPO / "conf")


def test_every_model_config_composes(tmp_path):
    for option in sorted((REPO / "conf" / "model").glob("*.yaml")):
        composed = yaml.safe_load(compose_params([f"model={option.stem}"], conf_dir=REPO / "conf"))
        assert composed["model"]["name"] == option.stem


def test_overrides_reach_the_composition():
    composed = yaml.safe_load(compose_params(["model.max_depth=4"], conf_dir=REPO / "conf"))
    assert composed["model"]["max_depth"] == 4


@dataclass(frozen=True)
class Inner:
    limit: float


@dataclass(frozen=True)
class Outer:
    seed: int
    inner: Inner
    name: str | None = None


def test_build_reads_nested_typed_values():
    params = build(Outer, {"seed": 1, "inner": {"limit": 2}}, "x")
    assert params == Outer(seed=1, inner=Inner(limit=2.0), name=None)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"seed": 1, "inner": {"limit": 1}, "sede": 2}, "unknown key(s) sede"),
        ({"inner": {"limit": 1}}, "missing key(s) seed"),
        ({"seed": "1", "inner": {"limit": 1}}, "'x.seed': expected int"),
        ({"seed": True, "inner": {"limit": 1}}, "'x.seed': expected int"),
        ({"seed": 1, "inner": {"limt": 1}}, "'x.inner': unknown key(s) limt"),
    ],
)
def test_bad_params_are_named(values, message):
    with pytest.raises(ParamsError) as raised:
        build(Outer, values, "x")
    assert message in str(raised.value)


def test_missing_section_and_file(tmp_path: Path):
    (tmp_path / "params.yaml").write_text("other: {}\n")
    with pytest.raises(ParamsError, match="missing section 'train'"):
        load_section("train", Outer, tmp_path / "params.yaml")
    with pytest.raises(ParamsError, match="not found"):
        load_section("train", Outer, tmp_path / "absent.yaml")


def test_soft_voting_members_are_their_own_configs():
    """conf/model/soft_voting.yaml composes its members from conf/model/, so a change to a
    model's config reaches the ensemble; only what the ensemble sets differs."""
    conf = REPO / "conf"
    ensemble = yaml.safe_load(compose_params(["model=soft_voting"], conf_dir=conf))["model"]
    assert list(ensemble["members"]) == ["xgboost", "extra_trees"]
    for name, member in ensemble["members"].items():
        own = yaml.safe_load(compose_params([f"model={name}"], conf_dir=conf))["model"]
        changed = {k for k in own.keys() | member.keys() if own.get(k) != member.get(k)}
        assert changed <= {"signal_counts", "n_jobs"}, (name, changed)
        assert member["signal_counts"] is ensemble["signal_counts"]
    overridden = ["model=soft_voting", "model.members.xgboost.max_depth=4"]
    composed = yaml.safe_load(compose_params(overridden, conf_dir=conf))["model"]
    assert composed["members"]["xgboost"]["max_depth"] == 4


def test_dvc_composes_soft_voting_as_we_do(tmp_path):
    """`dvc exp run -S model=soft_voting` writes params.yaml with DVC's own Hydra call: the
    same text, and a config `train` types member by member."""
    overrides = ["model=soft_voting"]
    out = tmp_path / "params.yaml"
    compose_and_dump(out, str(REPO / "conf"), None, "config", tmp_path, overrides)
    assert out.read_text() == compose_params(overrides, conf_dir=REPO / "conf")
    config = load_model_config(out)
    assert [member.name for member in config.members] == ["xgboost", "extra_trees"]


@pytest.mark.parametrize(
    ("override", "nearest"),
    [
        ("model.max_dept=4", "model.max_depth"),
        ("evaluate.target_fp=0.01", "evaluate.target_fpr"),
        ("modle.max_depth=4", "model.max_depth"),
    ],
)
def test_an_override_of_a_misspelt_key_names_the_nearest_valid_one(override, nearest):
    """`-S model.max_dept=4` (no `+`): Hydra's advice is to append the key; for a typo the
    nearest valid key is the help (issue 29). `phishguard params` composes as DVC does."""
    with pytest.raises(ParamsError) as refused:
        compose_params([override])
    message = str(refused.value)
    assert f"did you mean '{nearest}'?" in message
    assert "\n" not in message and "To append" not in message


def test_an_override_after_a_group_choice_is_matched_against_that_group():
    with pytest.raises(ParamsError, match=r"did you mean 'model\.n_estimators'"):
        compose_params(["model=random_forest", "model.n_estimatros=3"])


def test_a_misspelt_key_in_a_section_is_named_with_the_nearest(tmp_path: Path):
    (tmp_path / "params.yaml").write_text("evaluate:\n  cv_fold: 5\n")
    with pytest.raises(ParamsError, match=r"unknown key\(s\) cv_fold; did you mean 'cv_folds'"):
        load_section("evaluate", EvaluateParams, tmp_path / "params.yaml")


def test_a_failed_experiment_puts_params_yaml_back(tmp_path: Path, monkeypatch):
    """A stage failing inside `dvc exp run` (DVC_EXP_NAME set) restores params.yaml to conf/'s
    composition; outside an experiment, params.yaml is left alone."""
    committed = compose_params()
    (tmp_path / "conf").symlink_to(REPO / "conf")
    monkeypatch.chdir(tmp_path)  # a checkout: conf/ and params.yaml, relative as stages see them
    params = tmp_path / "params.yaml"
    broken = committed.replace("  max_depth: 6\n", "  max_depth: 6\n  max_dept: 4\n")
    assert broken != committed
    params.write_text(broken)

    def failing_stage() -> None:
        raise ParamsError("model.max_dept is not a hyperparameter")

    monkeypatch.delenv(compose.EXPERIMENT_ENV, raising=False)
    with pytest.raises(SystemExit):
        entrypoint.run(failing_stage, "train")
    assert params.read_text() == broken  # `dvc repro`: the user's file, untouched
    monkeypatch.setenv(compose.EXPERIMENT_ENV, "typo-exp")
    with pytest.raises(SystemExit):
        entrypoint.run(failing_stage, "train")
    assert params.read_text() == committed
