"""Fixtures for the serving tests: the service's ASGI app in-process, and a real `bentoml serve`
subprocess on loopback. The small packaged model (`package_dir`, `scorer`) is in
`tests/conftest.py`, shared with the hardening tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import synthetic_rows, tool_env, wait_until_up

from phishguard.schema import FEATURES

REPO = Path(__file__).resolve().parents[2]


def records(n: int, seed: int) -> list[dict[str, int]]:
    """`n` valid JSON records of the 30 features."""
    table = synthetic_rows(n, seed).loc[:, list(FEATURES)]
    return [{k: int(v) for k, v in row.items()} for row in table.to_dict(orient="records")]


@pytest.fixture(scope="session")
def service_client(package_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The BentoML service's ASGI app, in-process, with a 500-row limit."""
    saved = set_service_env(package_dir, tmp_path_factory, PHISHGUARD_MAX_ROWS="500")
    from starlette.testclient import TestClient

    from service.service import Phishguard

    try:
        with TestClient(Phishguard.to_asgi()) as client:
            restore_env(saved)  # the service read them at start-up; don't leak into other tests
            yield client
    finally:
        restore_env(saved)


def set_service_env(
    package_dir: Path, tmp_path_factory: pytest.TempPathFactory, **settings: str
) -> dict[str, str | None]:
    """Point the in-process service at `package_dir` with `settings`; return what to restore."""
    env = {"PHISHGUARD_PACKAGE_DIR": str(package_dir), **settings}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.setdefault("BENTOML_HOME", str(tmp_path_factory.mktemp("bentoml_home")))
    os.environ.update(env)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return saved


def restore_env(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def start_bentoml(workdir: Path, port: int, log: Path, **env: str) -> subprocess.Popen:
    """`bentoml serve` from `workdir` on 127.0.0.1:`port`; waits for /readyz (≤ 90 s)."""
    environment = {k: v for k, v in tool_env().items() if not k.startswith("PHISHGUARD_")}
    environment["BENTOML_HOME"] = str(workdir / "models" / "bentoml")
    environment.update(env)
    server = subprocess.Popen(
        [
            "bentoml",
            "serve",
            "service.service:Phishguard",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=workdir,
        env=environment,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return wait_ready(server, port, log)


def wait_ready(server: subprocess.Popen, port: int, log: Path) -> subprocess.Popen:
    """Wait (≤ 90 s) until the server started as `server` answers /readyz on `port`."""
    try:
        wait_until_up(server, f"http://127.0.0.1:{port}/readyz", log, 90)
    except AssertionError:
        stop(server)
        raise
    return server


def stop(server: subprocess.Popen) -> None:
    """Stop a server started by `start_bentoml` (its own process group)."""
    import signal

    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
    except ProcessLookupError:
        pass
