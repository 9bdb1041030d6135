"""Faults in dependencies: a model altered after packaging, an S3 endpoint down during push.

MongoDB unreachable or dropping mid-load is tested in tests/test_mongodb.py
(`test_unreachable_server_fails_fast_with_one_line`,
`test_connection_lost_mid_load_then_rerun_completes_without_duplicates`).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from phishguard.modeling.bundle import CHECKSUM_FILE
from phishguard.modeling.bundle import MANIFEST_FILE as PACKAGE_FILE
from phishguard.monitoring.log_reader import logged_features
from phishguard.provenance import file_sha256, read_json, write_json
from tests.support import clone_project, free_port, run_tool
from tests.support.s3 import BUCKET, FAKE_AWS, moto_s3
from tests.support.service import records, serve_package, serve_until_refused


def tampered_copy(package_dir: Path, destination: Path, name: str = "model.ubj") -> Path:
    """A copy of the package with file `name` altered: one flipped byte of the model (same
    size, still loads), or the manifest's threshold set to 1.01 (everything "legitimate")."""
    copy = Path(shutil.copytree(package_dir, destination))
    if name == PACKAGE_FILE:
        manifest = read_json(copy / PACKAGE_FILE)
        manifest["threshold"] = 1.01
        write_json(copy / PACKAGE_FILE, manifest)
        return copy
    model = copy / name
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    return copy


def recorded_sha256(package: Path, name: str) -> str:
    for line in (package / CHECKSUM_FILE).read_text().splitlines():
        digest, listed = line.split("  ")
        if listed == name:
            return digest
    raise AssertionError(f"{name} not in {CHECKSUM_FILE}")


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["model.ubj", PACKAGE_FILE])
def test_bentoml_serve_exits_on_an_altered_package(package_dir: Path, tmp_path: Path, name):
    """The service's deployment hook checks the package before any worker starts (a worker
    whose start-up fails is restarted forever): `bentoml serve` exits non-zero within 60 s
    with one line naming the file and both hashes, and no traceback."""
    copy = tampered_copy(package_dir, tmp_path / "package", name)
    altered = copy / name
    packaged = recorded_sha256(copy, name)
    status, text = serve_until_refused(tmp_path, timeout=60, PHISHGUARD_PACKAGE_DIR=str(copy))
    named = [line for line in text.splitlines() if "does not match the packaged" in line]
    assert status != 0, text
    assert len(named) == 1, text
    assert (
        f"{altered}: sha256 {file_sha256(altered)[:12]}… does not match the packaged " in named[0]
    )
    assert packaged[:12] in named[0] and "refusing to start" in named[0]
    assert "Traceback" not in text and "Starting production" not in text, text


def test_deployment_hook_names_the_mismatch(
    package_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bentoml.exceptions import BentoMLException

    # Named before the import: without it the service declares the store's model, which a
    # clone that has not run the pipeline lacks (the service then refuses to load).
    monkeypatch.setenv("PHISHGUARD_PACKAGE_DIR", str(package_dir))
    from service.service import Phishguard

    copy = tampered_copy(package_dir, tmp_path / "package")
    monkeypatch.setenv("PHISHGUARD_PACKAGE_DIR", str(copy))
    with pytest.raises(BentoMLException) as refused:
        Phishguard.inner.verify_packaged_model()
    assert f"refusing to start: {copy / 'model.ubj'}: sha256" in str(refused.value)
    monkeypatch.setenv("PHISHGUARD_PACKAGE_DIR", str(package_dir))
    Phishguard.inner.verify_packaged_model()  # an intact package passes


def test_in_process_start_up_names_the_mismatch(package_dir: Path, tmp_path: Path) -> None:
    from phishguard.provenance import IntegrityError
    from phishguard.serving.scoring import load_scorer

    copy = tampered_copy(package_dir, tmp_path / "package")
    packaged = read_json(copy / PACKAGE_FILE)["model_sha256"]
    with pytest.raises(IntegrityError) as failed:
        load_scorer(copy)
    assert f"does not match the packaged {packaged[:12]}" in str(failed.value)


@pytest.mark.e2e
def test_push_to_a_down_endpoint_fails_clearly_then_a_later_push_completes(
    tmp_path: Path,
) -> None:
    workdir = clone_project(tmp_path / "clone")
    data = workdir / "data" / "blob.bin"
    data.write_bytes(b"phishguard fault test\n" * 1000)
    run_tool(["dvc", "add", "data/blob.bin"], workdir)
    port = free_port()  # nothing listens here yet: the endpoint is down
    endpoint = f"http://127.0.0.1:{port}"
    run_tool(["dvc", "remote", "modify", "--local", "s3", "url", f"s3://{BUCKET}/store"], workdir)
    run_tool(["dvc", "remote", "modify", "--local", "s3", "endpointurl", endpoint], workdir)

    down = run_tool(["dvc", "push"], workdir, check=False, timeout=300, **FAKE_AWS)
    assert down.returncode != 0
    message = down.stdout + down.stderr
    assert "failed to push" in message.lower() or "could not connect" in message.lower(), message
    assert "Traceback" not in message

    with moto_s3(port) as s3:
        pushed = run_tool(["dvc", "push"], workdir, timeout=300, **FAKE_AWS)
        assert "pushed" in pushed.stdout
        cloud = run_tool(
            ["dvc", "status", "--cloud", "data/blob.bin.dvc"], workdir, **FAKE_AWS
        ).stdout
        assert "in sync" in cloud
        keys = s3.list_objects_v2(Bucket=BUCKET, Prefix="store/")["KeyCount"]
        assert keys >= 1


def _answer_until_stopped(port: int, rows: int, stop_at: float, answered: list[str]) -> None:
    """POST /predict with `rows` records over one keep-alive connection until `stop_at`,
    keeping every prediction id of every response received in full."""
    body = json.dumps({"records": records(rows, seed=rows)}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        while time.monotonic() < stop_at:
            connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            payload = response.read()
            if response.status == 200:
                answered += [r["prediction_id"] for r in json.loads(payload)["results"]]
    except (OSError, http.client.HTTPException):
        pass  # the server was killed under us: that response was never answered
    finally:
        connection.close()


def _process_tree(root: int) -> list[int]:
    """`root` and every process descended from it (from /proc), parents first."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
    tree = [root]
    for pid in tree:
        tree += [child for child, parent in parents.items() if parent == pid]
    return tree


@pytest.mark.e2e
def test_kill_9_loses_no_answered_prediction(package_dir: Path, tmp_path: Path) -> None:
    """A real `bentoml serve` answering 8 concurrent clients is killed with SIGKILL (every
    process of it, no chance to flush) while requests are in flight: every prediction id a
    client received is in the prediction log (issue 27, item 5)."""
    port = free_port()
    server = serve_package(package_dir, tmp_path, port)
    answered: list[str] = []
    stop_at = time.monotonic() + 600  # until killed
    clients = [
        threading.Thread(target=_answer_until_stopped, args=(port, rows, stop_at, answered))
        for rows in (1, 1, 1, 1, 5, 5, 20, 100)
    ]
    # BentoML starts each worker in a session of its own: kill the whole tree, not the group.
    tree = _process_tree(server.pid)
    try:
        for client in clients:
            client.start()
        time.sleep(4)
    finally:
        for pid in reversed(tree):  # the workers first: none gets to flush or shut down
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        server.wait(30)
    for client in clients:
        client.join(30)
    received = set(answered)
    assert len(received) > 1_000, "too few answers to test anything"
    logged = logged_features(tmp_path / "predictions", received)
    assert len(received - logged.keys()) == 0
