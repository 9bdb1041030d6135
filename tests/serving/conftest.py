"""Fixtures for the serving tests: the service's ASGI app in-process, and a real `bentoml serve`
subprocess on loopback. The small packaged model (`package_dir`, `scorer`) is in
`tests/conftest.py`, shared with the hardening tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import synthetic_rows, tool_env

from phishguard.schema import FEATURES

REPO = Path(__file__).resolve().parents[2]


def records(n: int, seed: int) -> list[dict[str, int]]:
    """`n` valid JSON records of the 30 features."""
    table = synthetic_rows(n, seed).loc[:, list(FEATURES)]
    return [{k: int(v) for k, v in row.items()} for row in table.to_dict(orient="records")]


@pytest.fixture(scope="session")
def service_client(package_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The BentoML service's ASGI app, in-process, with a 500-row limit."""
    saved = {k: os.environ.get(k) for k in ("PHISHGUARD_PACKAGE_DIR", "PHISHGUARD_MAX_ROWS")}
    os.environ.setdefault("BENTOML_HOME", str(tmp_path_factory.mktemp("bentoml_home")))
    os.environ["PHISHGUARD_PACKAGE_DIR"] = str(package_dir)
    os.environ["PHISHGUARD_MAX_ROWS"] = "500"
    sys.path.insert(0, str(REPO))
    from starlette.testclient import TestClient

    from service.service import Phishguard

    try:
        with TestClient(Phishguard.to_asgi()) as client:
            _restore(saved)  # the service read them at start-up; don't leak into other tests
            yield client
    finally:
        _restore(saved)


def _restore(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_bentoml(workdir: Path, port: int, log: Path, **env: str) -> subprocess.Popen:
    """`bentoml serve` from `workdir` on 127.0.0.1:`port`; waits for /readyz (≤ 90 s)."""
    environment = {k: v for k, v in tool_env().items() if not k.startswith("PHISHGUARD_")}
    environment.update(BENTOML_HOME=str(workdir / "models" / "bentoml"), **env)
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
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"bentoml serve exited {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return server
        except OSError:
            time.sleep(0.5)
    stop(server)
    raise AssertionError(f"bentoml serve not ready after 90 s:\n{log.read_text()}")


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
