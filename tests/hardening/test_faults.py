"""Faults in dependencies: a model altered after packaging, an S3 endpoint down during push.

MongoDB unreachable or dropping mid-load is tested in tests/test_mongodb.py
(`test_unreachable_server_fails_fast_with_one_line`,
`test_connection_lost_mid_load_then_rerun_completes_without_duplicates`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import clone_project, run_tool
from s3_endpoint import BUCKET, FAKE_AWS, moto_s3
from serving.conftest import REPO, free_port, stop

from phishguard.scoring import PACKAGE_FILE


def tampered_copy(package_dir: Path, destination: Path) -> Path:
    copy = Path(shutil.copytree(package_dir, destination))
    model = copy / "model.ubj"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: same size, still loads as a model
    model.write_bytes(bytes(data))
    return copy


@pytest.mark.e2e
def test_service_refuses_to_start_on_an_altered_model(package_dir: Path, tmp_path: Path) -> None:
    """BentoML keeps restarting a worker whose start-up fails, so `bentoml serve` never
    becomes ready: the log names the file and both hashes, and /readyz never answers 200."""
    import subprocess
    import time
    import urllib.request

    from conftest import tool_env

    copy = tampered_copy(package_dir, tmp_path / "package")
    log = tmp_path / "serve.log"
    port = free_port()
    env = {k: v for k, v in tool_env().items() if not k.startswith("PHISHGUARD_")}
    env.update(BENTOML_HOME=str(tmp_path / "home"), PHISHGUARD_PACKAGE_DIR=str(copy))
    command = ["bentoml", "serve", "service.service:Phishguard", "--host", "127.0.0.1"]
    server = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    ready = False
    try:
        deadline = time.monotonic() + 60
        while "does not match the packaged" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                ready = r.status == 200
        except OSError:
            pass
    finally:
        stop(server)
    text = log.read_text()
    assert f"{copy / 'model.ubj'}: sha256" in text and "does not match the packaged" in text
    assert not ready


def test_in_process_start_up_names_the_mismatch(package_dir: Path, tmp_path: Path) -> None:
    from phishguard.models import IntegrityError
    from phishguard.provenance import read_json
    from phishguard.scoring import load_scorer

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
