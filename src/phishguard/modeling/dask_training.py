"""XGBoost trained on a Dask cluster (`model: xgboost_dask`), as a scikit-learn estimator.

`DaskXGBoost.fit` trains with `xgboost.dask` on the cluster at `scheduler` (else
$DASK_SCHEDULER_ADDRESS), or on a local cluster of `workers` processes that this process
starts once, shares between fits (the grouped-CV folds included) and closes when it exits.
One cluster at a time: a fit on another address closes the previous client first.
The result is a plain XGBoost `Booster`: the bundle saves it as model.ubj, and evaluate,
package and the service load it exactly as the single-node model; `predict_proba` scores
in-process with it, so no fit or predict needs the cluster twice.

Repeatable for a fixed cluster shape: the rows are cut into `partitions` fixed blocks in
order, and block i is placed on the (i mod n)-th of the n workers, so every run with the same
blocks and worker count trains on the same per-worker data.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from phishguard.dask_cluster import LOCAL, connect, local_cluster, scheduler_address

# XGBClassifier's keyword → XGBoost's native parameter, where the two names differ.
NATIVE_NAMES = {"learning_rate": "eta", "reg_lambda": "lambda", "reg_alpha": "alpha"}
HYPERPARAMETERS = (
    "n_estimators",
    "max_depth",
    "learning_rate",
    "subsample",
    "colsample_bytree",
    "colsample_bylevel",
    "colsample_bynode",
    "min_child_weight",
    "gamma",
    "reg_lambda",
    "reg_alpha",
    "max_bin",
    "scale_pos_weight",
    "n_jobs",
)

log = logging.getLogger(__name__)


class DaskXGBoost(ClassifierMixin, BaseEstimator):
    """Binary XGBoost (`hist`, logloss) fitted on a Dask cluster; the same hyperparameters as
    `xgboost.XGBClassifier` (None = XGBoost's default) plus where and how to train."""

    def __init__(
        self,
        n_estimators: int | None = None,
        max_depth: int | None = None,
        learning_rate: float | None = None,
        subsample: float | None = None,
        colsample_bytree: float | None = None,
        colsample_bylevel: float | None = None,
        colsample_bynode: float | None = None,
        min_child_weight: float | None = None,
        gamma: float | None = None,
        reg_lambda: float | None = None,
        reg_alpha: float | None = None,
        max_bin: int | None = None,
        scale_pos_weight: float | None = None,
        n_jobs: int | None = None,
        scheduler: str | None = None,
        workers: int = 2,
        partitions: int = 4,
        random_state: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.colsample_bylevel = colsample_bylevel
        self.colsample_bynode = colsample_bynode
        self.min_child_weight = min_child_weight
        self.gamma = gamma
        self.reg_lambda = reg_lambda
        self.reg_alpha = reg_alpha
        self.max_bin = max_bin
        self.scale_pos_weight = scale_pos_weight
        self.n_jobs = n_jobs
        self.scheduler = scheduler
        self.workers = workers
        self.partitions = partitions
        self.random_state = random_state

    def native_params(self) -> dict[str, Any]:
        """XGBoost's native training parameters (without the number of rounds)."""
        params: dict[str, Any] = {
            "objective": "binary:logistic",
            "eval_metric": "logloss",
            "tree_method": "hist",
            "seed": self.random_state,
        }
        for name in HYPERPARAMETERS:
            value = getattr(self, name)
            if value is not None and name not in ("n_estimators", "n_jobs"):
                params[NATIVE_NAMES.get(name, name)] = value
        return params

    def fit(self, X: np.ndarray, y: np.ndarray) -> DaskXGBoost:
        """Train on the cluster; keep the trained `Booster` as `booster_`."""
        X, y = np.asarray(X, dtype=np.float32), np.asarray(y)
        # XGBoost's own default number of rounds (XGBClassifier's), when not configured.
        rounds = 100 if self.n_estimators is None else self.n_estimators
        with _FIT_LOCK:  # one training at a time: they would queue for the same workers anyway
            client = cluster_client(self.scheduler, self.workers)
            with client.as_current():
                self.booster_ = train_booster(
                    client, X, y, self.native_params(), rounds, self.partitions
                )
        self.booster_.set_param({"nthread": 1})
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """[P(legitimate), P(phishing)] per row, scored in-process by the trained booster."""
        phishing = self.booster_.inplace_predict(
            np.asarray(X, dtype=np.float32), validate_features=False
        )
        return np.column_stack([1 - phishing, phishing])

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def save_model(self, path: Any) -> None:
        """Write the trained booster in XGBoost's native format (what `bundle.save` calls)."""
        self.booster_.save_model(path)


def train_booster(
    client: Any, X: np.ndarray, y: np.ndarray, params: Mapping[str, Any], rounds: int, blocks: int
) -> Any:
    """A `Booster` trained with `xgboost.dask` on `client`'s workers: the rows cut into
    `blocks` consecutive blocks, block i placed on the (i mod n)-th worker."""
    # Imported here: dask and xgboost cost seconds to import, and only this model needs them.
    import dask.array as da
    import xgboost.dask as dxgb

    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    bounds = np.linspace(0, len(X), min(blocks, len(X)) + 1).astype(int)
    X_blocks, y_blocks = [], []
    for index, (start, stop) in enumerate(itertools.pairwise(bounds)):
        where = [workers[index % len(workers)]]
        x_part, y_part = client.scatter([X[start:stop], y[start:stop]], workers=where)
        X_blocks.append(da.from_delayed(x_part, (stop - start, X.shape[1]), dtype=X.dtype))
        y_blocks.append(da.from_delayed(y_part, (stop - start,), dtype=y.dtype))
    matrix = dxgb.DaskDMatrix(client, da.concatenate(X_blocks), da.concatenate(y_blocks))
    return dxgb.train(client, dict(params), matrix, num_boost_round=rounds)["booster"]


def cluster_client(configured: str | None, workers: int) -> Any:
    """A connected Dask client for `scheduler_address(configured)`, opened once per process
    (per address and local size) and closed at exit; `DaskClusterError` in one line when the
    scheduler cannot be reached or has no worker (`dask_cluster.connect`)."""
    address = scheduler_address(configured) or LOCAL
    key = (address, workers if address == LOCAL else 0)
    if key not in _CLIENTS:
        # One cluster at a time: futures of a second live client in the same process left
        # xgboost.dask waiting forever for its partitions.
        close_clusters()
        _CLIENTS[key] = _local_client(workers) if address == LOCAL else _remote_client(address)
    return _CLIENTS[key]


def close_clusters() -> None:
    """Close every client this process opened, and the local clusters it started."""
    while _CLIENTS:
        _, client = _CLIENTS.popitem()
        cluster = client.cluster
        client.close()
        if cluster is not None:
            cluster.close()


def _local_client(workers: int) -> Any:
    from distributed import Client  # imported here: only this model needs it

    log.info("starting a local Dask cluster of %d worker processes", workers)
    # Dask's INFO lines (every worker and connection) would drown the stage's own.
    logging.getLogger("distributed").setLevel(logging.WARNING)
    return Client(local_cluster(workers, processes=True))


def _remote_client(address: str) -> Any:
    hint = f"start it, or set model.scheduler to '{LOCAL}' to train on a local cluster"
    client = connect(address, hint)
    count = len(client.scheduler_info(n_workers=-1)["workers"])
    log.info("training on the Dask cluster at %s (%d workers)", address, count)
    return client


_CLIENTS: dict[tuple[str, int], Any] = {}
_FIT_LOCK = threading.Lock()
atexit.register(close_clusters)
