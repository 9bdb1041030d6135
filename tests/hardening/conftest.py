"""Fixtures for the hardening tests: the service in-process with small, known limits."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from serving.conftest import REPO

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
    saved = _set_service_env(package_dir, tmp_path_factory)
    from starlette.testclient import TestClient

    from service.service import Phishguard

    try:
        with TestClient(
            _asgi_app_without_metrics(Phishguard), raise_server_exceptions=False
        ) as client:
            _restore(saved)  # read at start-up; don't leak into other tests
            yield client
    finally:
        _restore(saved)


@pytest.fixture(scope="module")
def service_app(package_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A fresh ASGI app of the service (its start-up runs on the first request), with the
    limits of `limited_client` set for as long as the module's tests run."""
    saved = _set_service_env(package_dir, tmp_path_factory)
    from service.service import Phishguard

    try:
        yield _asgi_app_without_metrics(Phishguard)
    finally:
        _restore(saved)


def _set_service_env(package_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Point the service at `package_dir` with `LIMITS`; return what to restore afterwards."""
    env = {"PHISHGUARD_PACKAGE_DIR": str(package_dir), **LIMITS}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.setdefault("BENTOML_HOME", str(tmp_path_factory.mktemp("bentoml_home")))
    os.environ.update(env)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return saved


def _asgi_app_without_metrics(service: object) -> object:
    """`service.to_asgi()` minus the Prometheus middleware: a second app in one process would
    register the same metrics again (tests/serving's client is the first)."""
    from _bentoml_impl.server.app import ServiceAppFactory

    service.inject_config()
    return ServiceAppFactory(service, is_main=True, enable_metrics=False)()


def _restore(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
