"""Every fixture of the suite, in one module: the real dataset, synthetic rows, small packaged
models, the service in-process and under `bentoml serve`, and one shared pipeline clone."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from phishguard.serving.scoring import Scorer, load_scorer
from tests.support import (
    REPO,
    SHARED_DATA,
    clone_project,
    free_port,
    real_data_path,
    run_pipeline,
    synthetic_rows,
)
from tests.support.api_keys import TestKeys, make_keys, with_bearer
from tests.support.dask_cluster import TcpCluster, tcp_cluster
from tests.support.disk import full_tmpfs
from tests.support.packaged_model import write_package
from tests.support.service import (
    LIMITS,
    asgi_app_without_metrics,
    restore_env,
    serve_package,
    set_service_env,
    stop,
)

# Scoring in tests (`phishguard predict`, the service in-process) logs its predictions: never
# into the checkout's data/predictions/ (the monitor stage's input). A test that checks the log
# names its own folder.
os.environ.setdefault(
    "PHISHGUARD_PREDICTION_LOG", tempfile.mkdtemp(prefix="phishguard-test-predictions-")
)
# Verdicts (`phishguard feedback`, POST /feedback) likewise never go into data/feedback/.
os.environ.setdefault(
    "PHISHGUARD_FEEDBACK_DIR", tempfile.mkdtemp(prefix="phishguard-test-feedback-")
)


@pytest.fixture(autouse=True)
def _no_leaked_tracking_uri() -> Iterator[None]:
    """`mlflow.set_tracking_uri` also exports MLFLOW_TRACKING_URI for subprocesses: a test that
    set it (directly or through `tracking.record_run`) would send every later test's runs, and
    their subprocesses', to its store. Put both back after each test."""
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if "mlflow" in sys.modules:  # only when the test imported it (it costs ~3.5 s)
        sys.modules["mlflow"].set_tracking_uri(saved)
    if saved is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = saved


@pytest.fixture(scope="session")
def dataset_path() -> Path:
    """The real UCI dataset. Skips with the reason outside CI; in CI its absence fails."""
    path = real_data_path()
    if path is None:
        message = f"real data not found: set PHISHING_DATA or place it at {SHARED_DATA}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def real_table(dataset_path: Path) -> pd.DataFrame:
    """The real dataset as text, exactly as the CSV reader hands it to validation."""
    return pd.read_csv(dataset_path, dtype=str)


@pytest.fixture
def make_rows() -> Callable[..., pd.DataFrame]:
    return synthetic_rows


@pytest.fixture(scope="session")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small packaged XGBoost model trained on synthetic rows (`packaged_model`)."""
    return write_package(tmp_path_factory.mktemp("package"))


@pytest.fixture(scope="session")
def scorer(package_dir: Path) -> Scorer:
    """The model of `package_dir`, loaded (and sha256-verified) as the service loads it."""
    return load_scorer(package_dir)


@pytest.fixture(scope="session")
def pipeline_clone(tmp_path_factory: pytest.TempPathFactory, dataset_path: Path) -> Path:
    """A clone in which the whole pipeline has run once on the real data (shared, read-only)."""
    workdir = clone_project(tmp_path_factory.mktemp("pipeline"))
    run_pipeline(workdir, dataset_path)
    return workdir


@contextmanager
def _in_process_client(
    package_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    app_of: Callable[[Any], Any],
    raise_server_exceptions: bool = True,
    **settings: str,
) -> Iterator[object]:
    """A test client of the service's ASGI app (`app_of(Phishguard)`), started with
    `settings` in the environment, which is restored once the app has read it."""
    saved = set_service_env(package_dir, tmp_path_factory, **settings)
    # Imported only now: the service module decides at import whether it declares its model
    # (not when PHISHGUARD_PACKAGE_DIR names a folder), and starlette's client needs httpx.
    from starlette.testclient import TestClient

    from service.service import Phishguard

    try:
        app = app_of(Phishguard)
        with TestClient(app, raise_server_exceptions=raise_server_exceptions) as client:
            restore_env(saved)  # the service read them at start-up; don't leak into other tests
            yield client
    finally:
        restore_env(saved)


@pytest.fixture(scope="session")
def service_client(package_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The BentoML service's ASGI app, in-process, with a 500-row limit."""
    with _in_process_client(
        package_dir, tmp_path_factory, lambda service: service.to_asgi(), PHISHGUARD_MAX_ROWS="500"
    ) as client:
        yield client


@pytest.fixture(scope="session")
def limited_client(package_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The service's ASGI app in-process, 500 rows and 1 MiB per request; server errors become
    responses (as under `bentoml serve`) instead of exceptions in the test."""
    with _in_process_client(
        package_dir, tmp_path_factory, asgi_app_without_metrics, False, **LIMITS
    ) as client:
        yield client


@pytest.fixture(scope="module")
def service_app(package_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A fresh ASGI app of the service (its start-up runs on the first request), with the
    limits of `limited_client` set for as long as the module's tests run."""
    saved = set_service_env(package_dir, tmp_path_factory, **LIMITS)
    from service.service import Phishguard

    try:
        yield asgi_app_without_metrics(Phishguard)
    finally:
        restore_env(saved)


@pytest.fixture(scope="session")
def api_keys(tmp_path_factory: pytest.TempPathFactory) -> TestKeys:
    """A key store made at run time: analyst, scorer and revoked keys, and wrong ones."""
    return make_keys(tmp_path_factory.mktemp("api_keys"))


@pytest.fixture(scope="session")
def keyed_limited_client(
    package_dir: Path, tmp_path_factory: pytest.TempPathFactory, api_keys: TestKeys
) -> Iterator[object]:
    """`limited_client` with every route behind a key (PHISHGUARD_AUTH=all), sending the
    analyst's key with each request."""
    settings = api_keys.environ("all", **LIMITS)
    with _in_process_client(
        package_dir, tmp_path_factory, asgi_app_without_metrics, False, **settings
    ) as client:
        client.headers["Authorization"] = f"Bearer {api_keys.analyst}"
        yield client


@pytest.fixture(scope="session")
def verdict_limited_client(
    package_dir: Path, tmp_path_factory: pytest.TempPathFactory, api_keys: TestKeys
) -> Iterator[object]:
    """As `analyst_client`, with a verdict rate of 5 an hour per key (issue 27)."""
    with _analyst(package_dir, tmp_path_factory, api_keys, PHISHGUARD_VERDICT_RATE="5/hour") as c:
        yield c


@contextmanager
def _analyst(
    package_dir: Path, tmp_path_factory: pytest.TempPathFactory, api_keys: TestKeys, **extra: str
) -> Iterator[object]:
    """The in-process service in auth mode `writes` with `extra` settings, sending the analyst
    `alice`'s key with every request."""
    settings = api_keys.environ("writes", **extra)
    with _in_process_client(
        package_dir, tmp_path_factory, asgi_app_without_metrics, **settings
    ) as client:
        client.headers["Authorization"] = f"Bearer {api_keys.analyst}"
        yield client


@pytest.fixture(scope="session")
def analyst_client(
    package_dir: Path, tmp_path_factory: pytest.TempPathFactory, api_keys: TestKeys
) -> Iterator[object]:
    """The service in-process in the default auth mode (`writes`: /feedback needs an analyst
    key) with a 500-row limit, sending the analyst `alice`'s key with every request."""
    with _analyst(package_dir, tmp_path_factory, api_keys, PHISHGUARD_MAX_ROWS="500") as client:
        yield client


@pytest.fixture(scope="module")
def keyed_service_app(
    package_dir: Path, tmp_path_factory: pytest.TempPathFactory, api_keys: TestKeys
) -> Iterator[object]:
    """`service_app` with every route behind a key (PHISHGUARD_AUTH=all), and the analyst's
    key added to every request that has none."""
    saved = set_service_env(package_dir, tmp_path_factory, **LIMITS)
    from service.service import Phishguard

    keyed = {"PHISHGUARD_AUTH": "all", "PHISHGUARD_KEYS": str(api_keys.store)}
    saved_keyed = {key: os.environ.get(key) for key in keyed}
    os.environ.update(keyed)
    try:
        app = asgi_app_without_metrics(Phishguard)
        # The middlewares read their settings now, not at the first request: the auth ones
        # are not left in the environment, where another app of the module would read them.
        app.middleware_stack = app.build_middleware_stack()
    finally:
        restore_env(saved_keyed)
    try:
        yield with_bearer(app, api_keys.analyst)
    finally:
        restore_env(saved)


@pytest.fixture(scope="module", params=["off", "writes", "all"])
def service_in_auth_mode(
    request: pytest.FixtureRequest,
    package_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    api_keys: TestKeys,
) -> Iterator[tuple[str, object]]:
    """(mode, a client of the service started with PHISHGUARD_AUTH=mode and `api_keys`)."""
    settings = api_keys.environ(request.param)
    with _in_process_client(
        package_dir, tmp_path_factory, asgi_app_without_metrics, False, **settings
    ) as client:
        yield request.param, client


@pytest.fixture(scope="session")
def full_size_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A packaged model of the default config's size (conf/model/xgboost.yaml: 600 trees of
    depth 6), so that the cost of a request is the production one (~3 s for 1,000 records
    explained). Trained on synthetic rows, one thread."""
    spec = {**yaml.safe_load((REPO / "conf" / "model" / "xgboost.yaml").read_text()), "n_jobs": 1}
    return write_package(tmp_path_factory.mktemp("full_size_package"), spec=spec)


@pytest.fixture(scope="module")
def live_service(
    full_size_package: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    """A real `bentoml serve` of the full-size package on 127.0.0.1, default limits; its port."""
    port = free_port()
    server = serve_package(full_size_package, tmp_path_factory.mktemp("live_service"), port)
    try:
        yield port
    finally:
        stop(server)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real file system with no space left (a filled 256 KiB tmpfs, with empty `feedback/`
    and `predictions/` folders); skips where mounting needs root."""
    with full_tmpfs(tmp_path / "full_disk") as folder:
        yield folder


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TcpCluster]:
    """A real `dask scheduler` with two `dask worker` processes on 127.0.0.1 (shared, don't kill
    its workers: a test that kills one starts its own with `tcp_cluster`)."""
    with tcp_cluster(tmp_path_factory.mktemp("dask")) as cluster:
        yield cluster
