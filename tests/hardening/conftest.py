"""Fixtures for the hardening tests: the service in-process with small, known limits, and a
real `bentoml serve` of a full-size model with the default limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import free_port
from packaged_model import write_package
from serving.conftest import REPO, restore_env, set_service_env, start_bentoml, stop

MAX_ROWS = 500
MAX_BODY_BYTES = 1024 * 1024  # 501 records (~430 kB) stay under it, so both limits are reachable
LIMITS = {
    "PHISHGUARD_MAX_ROWS": str(MAX_ROWS),
    "PHISHGUARD_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
}


@pytest.fixture(scope="session")
def limited_client(package_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The service's ASGI app in-process, 500 rows and 1 MiB per request; server errors become
    responses (as under `bentoml serve`) instead of exceptions in the test."""
    saved = set_service_env(package_dir, tmp_path_factory, **LIMITS)
    from starlette.testclient import TestClient

    from service.service import Phishguard

    try:
        with TestClient(
            _asgi_app_without_metrics(Phishguard), raise_server_exceptions=False
        ) as client:
            restore_env(saved)  # read at start-up; don't leak into other tests
            yield client
    finally:
        restore_env(saved)


@pytest.fixture(scope="module")
def service_app(package_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A fresh ASGI app of the service (its start-up runs on the first request), with the
    limits of `limited_client` set for as long as the module's tests run."""
    saved = set_service_env(package_dir, tmp_path_factory, **LIMITS)
    from service.service import Phishguard

    try:
        yield _asgi_app_without_metrics(Phishguard)
    finally:
        restore_env(saved)


def _asgi_app_without_metrics(service: object) -> object:
    """`service.to_asgi()` minus the Prometheus middleware: a second app in one process would
    register the same metrics again (tests/serving's client is the first)."""
    from _bentoml_impl.server.app import ServiceAppFactory

    service.inject_config()
    return ServiceAppFactory(service, is_main=True, enable_metrics=False)()


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
    folder = tmp_path_factory.mktemp("live_service")
    server = start_bentoml(
        REPO,
        port,
        folder / "bentoml.log",
        BENTOML_HOME=str(folder / "home"),
        PHISHGUARD_PACKAGE_DIR=str(full_size_package),
    )
    try:
        yield port
    finally:
        stop(server)
