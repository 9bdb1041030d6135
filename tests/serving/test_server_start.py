"""A real `bentoml serve`, as the card types it (issue 27 items 6-8, issue 29 item 2): plain
`bentoml serve` from the checkout binds 127.0.0.1 and logs the address it binds; an invalid or
taken port is one line and a failed exit; /metrics stays bounded whatever paths clients send,
and a second server in the same checkout leaves the first one's /metrics alone."""

from __future__ import annotations

import http.client
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO, free_port, tool_env
from tests.support.service import records, spawn, stop, wait_ready

pytestmark = pytest.mark.e2e
LOOPBACK_HEX = "0100007F"  # 127.0.0.1 in /proc/net/tcp


def serve_env(package_dir: Path, home: Path) -> dict[str, str]:
    """The environment of a plain `bentoml serve` of `package_dir` with its store in `home`;
    no host is given anywhere (no --host, no BENTOML_HOST)."""
    env = {k: v for k, v in tool_env().items() if not k.startswith(("PHISHGUARD_", "BENTOML_H"))}
    env.update(
        BENTOML_HOME=str(home),
        PHISHGUARD_PACKAGE_DIR=str(package_dir),
        PHISHGUARD_PREDICTION_LOG=str(home / "predictions"),
    )
    return env


def plain_serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    """`bentoml serve --port PORT` from the checkout's root, as the README has it (the port
    only so that tests do not fight over 3000)."""
    return spawn(["bentoml", "serve", "--port", str(port)], REPO, env, log)


@pytest.fixture(scope="module")
def served(package_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    folder = tmp_path_factory.mktemp("plain_serve")
    env, port, log = serve_env(package_dir, folder / "home"), free_port(), folder / "serve.log"
    server = wait_ready(plain_serve(env, port, log), port, log)
    try:
        yield {"env": env, "port": port, "log": log, "folder": folder}
    finally:
        stop(server)


def listening(port: int) -> set[str]:
    """The local addresses (hex, as /proc/net/tcp gives them) with a socket listening on
    `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.read()


def test_plain_bentoml_serve_binds_loopback_and_logs_that_address(served: dict) -> None:
    assert listening(served["port"]) == {LOOPBACK_HEX}  # not 00000000 (every interface)
    log = served["log"].read_text()
    assert f"listening on http://127.0.0.1:{served['port']}" in log
    assert "localhost" not in log and "0.0.0.0" not in log


def run_refused(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bentoml", "serve", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("port", "expected"),
    [("99999", "port 99999 is not a TCP port: give --port a number 1-65535"), ("0", "port 0")],
)
def test_an_invalid_port_is_one_line_and_a_failed_exit(
    served: dict, tmp_path: Path, port: str, expected: str
) -> None:
    result = run_refused({**served["env"], "BENTOML_HOME": str(tmp_path)}, "--port", port)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode != 0
    assert output.count("\n") == 0 and expected in output, output


def test_a_taken_port_is_one_line_and_a_failed_exit(served: dict, tmp_path: Path) -> None:
    port = str(served["port"])
    result = run_refused({**served["env"], "BENTOML_HOME": str(tmp_path)}, "--port", port)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode != 0
    assert output.count("\n") == 0, output
    assert f"port {port} on 127.0.0.1 is already in use" in output


def test_a_second_server_leaves_the_first_ones_metrics(served: dict) -> None:
    """Both in the same BENTOML_HOME: one refused at start (taken port), one served and
    stopped. Before, each emptied the shared directory: /metrics then answered 0 bytes."""
    port = served["port"]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request(
        "POST",
        "/predict",
        body=__import__("json").dumps({"records": records(3, 5)}),
        headers={"content-type": "application/json"},
    )
    assert connection.getresponse().status == 200
    before = get(port, "/metrics")[1]
    assert b"phishguard_predictions_total" in before
    run_refused(served["env"], "--port", str(port))  # refused: the port is taken
    other_port, other_log = free_port(), served["folder"] / "second.log"
    second = wait_ready(plain_serve(served["env"], other_port, other_log), other_port, other_log)
    stop(second)
    status, after = get(port, "/metrics")
    assert status == 200 and b"phishguard_predictions_total" in after
    assert len(after) >= 0.9 * len(before)


def random_path(rng: random.Random) -> str:
    """A path no route takes, with bytes a label must never carry (NUL, high bytes, quotes)."""
    body = "".join(rng.choice("abcxyz019-_.~") for _ in range(rng.randint(4, 40)))
    odd = rng.choice(["%00", "%ff%fe", '"', "%0A", "\\", "{x}", ""])
    prefix = rng.choice(["/", "/ui/", "/static_content/../", "/predict/", "/metrics/"])
    return f"{prefix}{body}{odd}"


def test_metrics_stay_bounded_whatever_paths_clients_send(served: dict) -> None:
    port = served["port"]
    rng = random.Random(27)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    sent = []
    for index in range(3000):
        path = random_path(rng)
        sent.append(path)
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        connection.getresponse().read()
        if index == 299:
            _, warm = get(port, "/metrics")
    started = time.perf_counter()
    status, after = get(port, "/metrics")
    assert status == 200 and time.perf_counter() - started < 2
    assert len(after) <= len(warm) * 1.05 + 2048  # 2,700 more paths: no new series
    text = after.decode("utf-8")
    assert "\x00" not in text and 'endpoint="unmatched"' in text
    labels = {piece.split('"')[1] for piece in text.split("endpoint=")[1:]}
    assert labels <= {
        "unmatched",
        "/predict",
        "/explain",
        "/feedback",
        "/feedback/review",
        "/metadata",
        "/predict_csv",
        "/static_content/{path}",
        "/ui/",
        "/",
        "/readyz",
    }, labels
