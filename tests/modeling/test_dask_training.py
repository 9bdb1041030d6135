"""`model: xgboost_dask` (issue 14, item 2): trained with `xgboost.dask` on a real TCP cluster
and on a local one, it is the same kind of bundle as the single-node model, repeatable for
one cluster shape, as good as single-node XGBoost on the real split, and an unreachable
scheduler is one line."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from phishguard.config.compose import compose_params
from phishguard.config.hyperparameters import ModelConfigError
from phishguard.config.models import XGBoostDaskConfig, model_config
from phishguard.contract.schema import TARGET
from phishguard.dask_cluster import CONNECT_TIMEOUT_S, DaskClusterError
from phishguard.data.validate import quarantine
from phishguard.modeling import bundle, dask_training
from phishguard.modeling.dask_training import DaskXGBoost
from phishguard.modeling.evaluate import grouped_splits, out_of_fold
from phishguard.modeling.features import featurize, table_inputs
from phishguard.modeling.split import group_aware_split, with_target
from phishguard.modeling.train import train_and_save
from phishguard.modeling.zoo import build_model, input_columns
from tests.support import REPO, free_port, run_tool

SMALL = {"n_estimators": 40, "max_depth": 6, "learning_rate": 0.1, "n_jobs": 1}


@pytest.fixture(scope="module")
def real_split(real_table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The pipeline's featurized group-aware split of the real data (seed 42, 20% test)."""
    train, test = group_aware_split(with_target(quarantine(real_table).valid), 0.2, 42)
    return featurize(train), featurize(test)


@pytest.fixture(scope="module", autouse=True)
def _closed_clients() -> Iterator[None]:
    """The clients (and the local cluster) the fits opened live until the module ends."""
    yield
    dask_training.close_clusters()


def _config(scheduler: str, **changes: object) -> XGBoostDaskConfig:
    spec = {"name": "xgboost_dask", "signal_counts": True, **SMALL, "scheduler": scheduler}
    return model_config({**spec, **changes})


def _model_bytes(directory: Path) -> bytes:
    return (directory / "model.ubj").read_bytes()


@pytest.mark.parametrize("where", ["tcp", "local"])
def test_trains_on_a_cluster_into_the_single_node_bundle_repeatably(
    where: str, dask_cluster, real_split, tmp_path: Path
) -> None:
    train, test = real_split
    config = _config(dask_cluster.address if where == "tcp" else "local")
    first = train_and_save(config, 42, train, tmp_path / "a")
    assert first["model_file"] == "model.ubj" and first["model_name"] == "xgboost_dask"
    assert first["hyperparameters"]["partitions"] == 4
    trained = bundle.load(tmp_path / "a", evaluated=False)
    assert trained.is_xgboost  # a plain Booster: scored as today's xgboost model
    proba = trained.predict_proba(test)
    assert roc_auc_score(test[TARGET], proba) > 0.98
    # Same partitions and worker count: the same model, byte for byte.
    second = train_and_save(config, 42, train, tmp_path / "b")
    assert second["model_sha256"] == first["model_sha256"]
    assert _model_bytes(tmp_path / "a") == _model_bytes(tmp_path / "b")


def test_scores_as_well_as_single_node_xgboost_on_the_real_split(dask_cluster, real_split) -> None:
    train, test = real_split
    config = _config(dask_cluster.address)
    columns = input_columns(config)
    X, y = table_inputs(train, columns), train[TARGET].to_numpy()
    single = build_model(model_config({"name": "xgboost", "signal_counts": True, **SMALL}), 42)
    single.fit(X, y)
    dask = build_model(config, 42).fit(X, y)
    X_test, y_test = table_inputs(test, columns), test[TARGET].to_numpy()
    auc_single = roc_auc_score(y_test, single.predict_proba(X_test)[:, 1])
    auc_dask = roc_auc_score(y_test, dask.predict_proba(X_test)[:, 1])
    assert abs(auc_dask - auc_single) < 0.003, (auc_dask, auc_single)


def test_evaluate_fits_its_cv_folds_on_the_one_cluster(dask_cluster, real_split) -> None:
    """evaluate's grouped CV clones and fits it from 2 threads: the fits share one client and
    take turns, and the out-of-fold scores do not depend on the number of threads."""
    train, _ = real_split
    estimator = build_model(_config(dask_cluster.address, n_estimators=15), 42)
    X, y = table_inputs(train, input_columns(_config("local"))), train[TARGET].to_numpy()
    splits = grouped_splits(train, 3, 42)
    parallel = out_of_fold(estimator, X, y, [splits], workers=2)[0]
    serial = out_of_fold(estimator, X, y, [splits], workers=1)[0]
    assert np.array_equal(parallel, serial)
    assert roc_auc_score(y, parallel) > 0.97


def test_an_unreachable_scheduler_is_one_line_within_a_bounded_time() -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    X = np.array([[0.0, 1.0], [1.0, 0.0]] * 4, dtype=np.float32)
    started = time.monotonic()
    with pytest.raises(DaskClusterError) as refused:
        DaskXGBoost(n_estimators=2, scheduler=address).fit(X, np.array([0, 1] * 4))
    assert time.monotonic() - started < CONNECT_TIMEOUT_S + 20
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"cannot reach the Dask scheduler at {address} within ")


def test_the_address_from_the_environment_fails_as_one_line_of_the_stage() -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    script = (
        "import numpy as np\n"
        "from phishguard.entrypoint import run\n"
        "from phishguard.modeling.dask_training import DaskXGBoost\n"
        "X = np.array([[0.0, 1.0], [1.0, 0.0]] * 4, dtype=np.float32)\n"
        "run(lambda: DaskXGBoost(n_estimators=2).fit(X, np.array([0, 1] * 4)), 'train')\n"
    )
    result = run_tool(
        ["python", "-c", script], REPO, check=False, timeout=120, DASK_SCHEDULER_ADDRESS=address
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"train: error: cannot reach the Dask scheduler at {address} ($DASK_SCHEDULER_ADDRESS) "
        f"within {CONNECT_TIMEOUT_S} s (Timed out trying to connect to {address} "
        f"after {CONNECT_TIMEOUT_S} s); start it, or set model.scheduler to "
        "'local' to train on a local cluster"
    ]


def test_dvc_exp_run_s_model_xgboost_dask_composes_a_valid_config() -> None:
    """What `dvc exp run -S model=xgboost_dask` writes into params.yaml, typed by train."""
    spec = yaml.safe_load(compose_params(["model=xgboost_dask"], REPO / "conf"))["model"]
    config = model_config(spec)
    assert isinstance(config, XGBoostDaskConfig)
    assert (config.scheduler, config.workers, config.partitions) == (None, 2, 4)
    single = yaml.safe_load(compose_params(["model=xgboost"], REPO / "conf"))["model"]
    # The single-node model's hyperparameters, every one of them.
    assert {k: spec[k] for k in single if k != "name"} == {
        k: v for k, v in single.items() if k != "name"
    }
    estimator = build_model(config, 42)
    assert isinstance(estimator, DaskXGBoost)
    assert estimator.get_params()["n_estimators"] == 600 and estimator.random_state == 42
    overridden = ["model=xgboost_dask", "model.partitions=8", "model.scheduler=tcp://h:8786"]
    spec = yaml.safe_load(compose_params(overridden, REPO / "conf"))["model"]
    assert (model_config(spec).partitions, model_config(spec).scheduler) == (8, "tcp://h:8786")


@pytest.mark.parametrize(
    ("key", "value"),
    [("scheduler", "nowhere"), ("scheduler", 8786), ("workers", 0), ("partitions", 1.5)],
)
def test_bad_cluster_settings_are_one_line(key: str, value: object) -> None:
    with pytest.raises(ModelConfigError, match=rf"^model\.{key} = .* is not allowed: expected"):
        model_config({"name": "xgboost_dask", key: value})
