"""The service under test: in-process with known limits, or a real `bentoml serve` on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from phishguard.contract.schema import FEATURES
from tests.support import REPO, free_port, synthetic_rows, tool_env, wait_until_up


def records(n: int, seed: int) -> list[dict[str, int]]:
    """`n` valid JSON records of the 30 features."""
    table = synthetic_rows(n, seed).loc[:, list(FEATURES)]
    return [{k: int(v) for k, v in row.items()} for row in table.to_dict(orient="records")]


def set_service_env(
    package_dir: Path, tmp_path_factory: pytest.TempPathFactory, **settings: str
) -> dict[str, str | None]:
    """Point the in-process service at `package_dir` with `settings`; return what to restore."""
    env = {
        "PHISHGUARD_PACKAGE_DIR": str(package_dir),
        "PHISHGUARD_PREDICTION_LOG": str(tmp_path_factory.mktemp("predictions")),
        **settings,
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.setdefault("BENTOML_HOME", str(tmp_path_factory.mktemp("bentoml_home")))
    os.environ.update(env)
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
    # The prediction log beside the server's log, never in the checkout the server runs from.
    environment["PHISHGUARD_PREDICTION_LOG"] = str(log.parent / "predictions")
    environment.update(env)
    command = ["bentoml", "serve", "service.service:Phishguard", "--host", "127.0.0.1"]
    server = spawn([*command, "--port", str(port)], workdir, environment, log)
    return wait_ready(server, port, log)


def serve_package(package_dir: Path, folder: Path, port: int, **env: str) -> subprocess.Popen:
    """`bentoml serve` of the package folder `package_dir` from this checkout, with its log,
    model store and prediction log in `folder`."""
    return start_bentoml(
        REPO,
        port,
        folder / "bentoml.log",
        BENTOML_HOME=str(folder / "home"),
        PHISHGUARD_PACKAGE_DIR=str(package_dir),
        **env,
    )


def spawn(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start a server in its own process group (so `stop` ends all its workers), its output
    in `log`."""
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


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

    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
    except ProcessLookupError:
        pass


MAX_ROWS = 500
MAX_BODY_BYTES = 1024 * 1024  # 501 records (~430 kB) stay under it, so both limits are reachable
LIMITS = {
    "PHISHGUARD_MAX_ROWS": str(MAX_ROWS),
    "PHISHGUARD_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
}


def asgi_app_without_metrics(service: object) -> object:
    """`service.to_asgi()` minus the Prometheus middleware: a second app in one process would
    register the same metrics again (tests/serving's client is the first)."""
    from _bentoml_impl.server.app import ServiceAppFactory

    service.inject_config()
    return ServiceAppFactory(service, is_main=True, enable_metrics=False)()


def serve_until_refused(tmp_path: Path, timeout: float = 90, **env: str) -> tuple[int, str]:
    """`bentoml serve service.service:Phishguard` on loopback from the repository, with no
    PHISHGUARD_* setting but `env` (BENTOML_HOME in `tmp_path` unless given), expected to exit
    at start-up: (exit status, log). Fails if it is still running after `timeout` seconds."""
    log = tmp_path / "serve.log"
    settings = {k: v for k, v in tool_env().items() if not k.startswith("PHISHGUARD_")}
    settings.update({"BENTOML_HOME": str(tmp_path / "home"), **env})
    command = ["bentoml", "serve", "service.service:Phishguard", "--host", "127.0.0.1"]
    server = spawn([*command, "--port", str(free_port())], REPO, settings, log)
    try:
        status = server.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(server)
        pytest.fail(f"bentoml serve still running after {timeout} s:\n{log.read_text()[-3000:]}")
    return status, log.read_text()
