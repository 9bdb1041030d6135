"""The model zoo: every conf/model file builds, fits, saves as a bundle and loads back verified."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from phishguard.config.compose import compose_params
from phishguard.config.hyperparameters import ModelConfigError
from phishguard.config.models import model_config
from phishguard.contract.schema import FEATURES, LABEL, TARGET, to_target
from phishguard.modeling import bundle
from phishguard.modeling.features import featurize
from phishguard.modeling.train import train_and_save
from phishguard.modeling.zoo import XGBOOST_NATIVE
from phishguard.provenance import IntegrityError, file_sha256
from tests.support import REPO, run_tool, synthetic_rows

ZOO = sorted(p.stem for p in (REPO / "conf" / "model").glob("*.yaml"))
REQUIRED = {
    "xgboost",
    "random_forest",
    "extra_trees",
    "hist_gradient_boosting",
    "logistic_regression",
    "soft_voting",
}


def _table(n: int = 300, seed: int = 3):
    rows = synthetic_rows(n, seed)
    # A learnable signal, so the fitted models are not constant.
    rows[LABEL] = np.where(rows["SSLfinal_State"] == 1, 1, -1).astype(np.int8)
    table = rows.loc[:, list(FEATURES)].copy()
    table[TARGET] = to_target(rows[LABEL])
    return featurize(table)


def _small(spec: dict) -> dict:
    """The same config with few trees, so the test stays fast."""
    small = dict(spec)
    if "n_estimators" in small:
        small["n_estimators"] = min(int(small["n_estimators"]), 20)
    if "learning_rate" in small and "max_iter" in small:  # boosting rounds, not a solver limit
        small["max_iter"] = min(int(small["max_iter"]), 20)
    if "members" in small:
        small["members"] = {name: _small(member) for name, member in small["members"].items()}
    return small


def test_the_zoo_has_every_required_model() -> None:
    assert set(ZOO) >= REQUIRED


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_roundtrips_through_its_safe_format(name: str, tmp_path: Path) -> None:
    spec = yaml.safe_load(compose_params([f"model={name}"], REPO / "conf"))["model"]
    assert spec["name"] == name
    table = _table()
    metadata = train_and_save(model_config(_small(spec)), 42, table, tmp_path)
    path = tmp_path / metadata["model_file"]
    assert path.suffix == (".ubj" if name in XGBOOST_NATIVE else ".skops")
    trained = bundle.load(tmp_path, evaluated=False)
    assert trained.manifest == metadata
    proba = trained.predict_proba(table)
    assert proba.shape == (len(table),) and np.all((proba >= 0) & (proba <= 1))
    # The signal is learnt: phishing rows score higher on average.
    assert proba[table[TARGET] == 1].mean() > proba[table[TARGET] == 0].mean() + 0.3
    # Column order does not matter.
    assert np.allclose(trained.predict_proba(table[list(reversed(table.columns))]), proba)


@pytest.mark.parametrize("name", ["random_forest", "soft_voting"])
def test_training_is_byte_for_byte_deterministic(name: str, tmp_path: Path) -> None:
    spec = model_config(
        _small(yaml.safe_load(compose_params([f"model={name}"], REPO / "conf"))["model"])
    )
    first = train_and_save(spec, 42, _table(), tmp_path / "a")
    second = train_and_save(spec, 42, _table(), tmp_path / "b")
    assert first["model_sha256"] == second["model_sha256"]


def test_an_altered_model_file_is_refused(tmp_path: Path) -> None:
    spec = model_config({"name": "extra_trees", "n_estimators": 5})
    metadata = train_and_save(spec, 42, _table(), tmp_path)
    path = tmp_path / metadata["model_file"]
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match="does not match"):
        bundle.load(tmp_path, evaluated=False)


class Smuggled:
    """A type no allow-list names: loading it must be refused."""

    def __init__(self) -> None:
        self.payload = [1, 2, 3]


def test_skops_refuses_types_outside_the_allow_list(tmp_path: Path) -> None:
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    spec = model_config({"name": "extra_trees", "n_estimators": 5})
    metadata = train_and_save(spec, 42, _table(), tmp_path)
    path = tmp_path / metadata["model_file"]
    skops.io.dump(Smuggled(), path)  # resealed: the checksums agree, the type does not
    bundle.seal(tmp_path, {**metadata, "model_sha256": file_sha256(path)})
    with pytest.raises(UntrustedTypesFoundException, match="Smuggled"):
        bundle.load(tmp_path, evaluated=False)


def test_skops_files_are_byte_identical_across_processes(tmp_path: Path) -> None:
    script = (
        "import sys, yaml; from tests.modeling.test_zoo import _table, _small; "
        "from phishguard.config.compose import compose_params; from phishguard.modeling.train import train_and_save; "
        "from phishguard.config.models import model_config; "
        "from pathlib import Path; "
        "spec = model_config(_small(yaml.safe_load(compose_params(['model=soft_voting']))['model'])); "
        "print(train_and_save(spec, 42, _table(), Path(sys.argv[1]))['model_sha256'])"
    )
    digests = {
        run_tool(["python", "-c", script, str(tmp_path / name)], REPO).stdout.strip()
        for name in ("a", "b")
    }
    assert len(digests) == 1


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "soft_voting", "weights": None}, "needs 'members'"),
        ({"name": "soft_voting", "members": {"svm": {}}}, "unknown member"),
        ({"name": "soft_voting", "members": {"soft_voting": {}}}, "unknown member"),
        ({"name": "soft_voting", "members": {"extra_trees": {"depth": 3}}}, "depth"),
        ({"name": "gradient_magic"}, "unknown model"),
    ],
)
def test_bad_ensemble_configs_are_clear_errors(spec: dict, message: str) -> None:
    with pytest.raises(ModelConfigError, match=message):
        model_config(spec)
