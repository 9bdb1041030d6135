"""params.yaml is the Hydra composition of conf/; stages read their section strictly."""

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from dvc.utils.hydra import compose_and_dump

from phishguard.config.compose import compose_params
from phishguard.config.models import load_model_config
from phishguard.config.params import ParamsError, build, load_section
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
