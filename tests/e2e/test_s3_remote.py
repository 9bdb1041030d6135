"""The S3 remote: committed configuration, and a push/pull round trip against moto on loopback."""

from __future__ import annotations

import configparser
import hashlib
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support import REPO, clone_project, free_port, run_pipeline, run_tool
from tests.support.s3 import BUCKET, FAKE_AWS, moto_s3, s3_client


def test_default_remote_is_s3_without_credentials() -> None:
    config = configparser.ConfigParser()
    config.read(REPO / ".dvc" / "config")
    remote = config["core"]["remote"]
    section = config[f"'remote \"{remote}\"'"]
    assert section["url"].startswith("s3://")
    secrets = {"access_key_id", "secret_access_key", "session_token", "credentialpath"}
    assert not secrets & set(section), "credentials belong in the environment or config.local"
    ignored = run_tool(["git", "check-ignore", ".dvc/config.local"], REPO, check=False)
    assert ignored.returncode == 0, ".dvc/config.local must be git-ignored"


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, with an empty bucket."""
    with moto_s3() as client:
        yield client.meta.endpoint_url


def cached_outputs(workdir: Path) -> list[Path]:
    """Every output in dvc.yaml that DVC caches (and so pushes and pulls)."""
    stages = yaml.safe_load((workdir / "dvc.yaml").read_text())["stages"]
    paths = []
    for stage in stages.values():
        for out in stage.get("outs", []):
            name, options = (out, {}) if isinstance(out, str) else next(iter(out.items()))
            if (options or {}).get("cache", True):
                paths.append(workdir / name)
    return paths


def file_hashes(paths: list[Path]) -> dict[str, str]:
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*")))]
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}


@pytest.mark.e2e
def test_push_delete_pull_restores_identical_outputs(
    tmp_path: Path, dataset_path: Path, s3_endpoint: str
) -> None:
    workdir = clone_project(tmp_path / "clone")
    # The committed default remote, redirected for this clone only (git-ignored config.local).
    run_tool(["dvc", "remote", "modify", "--local", "s3", "url", f"s3://{BUCKET}/store"], workdir)
    run_tool(["dvc", "remote", "modify", "--local", "s3", "endpointurl", s3_endpoint], workdir)
    run_pipeline(workdir, dataset_path)
    outputs = cached_outputs(workdir)
    before = file_hashes(outputs)
    assert len(before) >= len(outputs) >= 6

    started = time.monotonic()
    run_tool(["dvc", "push"], workdir, **FAKE_AWS)
    objects = s3_client(s3_endpoint).list_objects_v2(Bucket=BUCKET, Prefix="store/")
    assert objects["KeyCount"] >= len(before)

    shutil.rmtree(workdir / ".dvc" / "cache")
    for path in outputs:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert not any(p.exists() for p in outputs)
    missing = run_tool(["dvc", "status"], workdir, **FAKE_AWS).stdout
    assert "deleted" in missing

    run_tool(["dvc", "pull"], workdir, **FAKE_AWS)
    round_trip_s = time.monotonic() - started

    assert file_hashes(outputs) == before
    status = run_tool(["dvc", "status"], workdir, **FAKE_AWS).stdout
    assert "Data and pipelines are up to date" in status
    cloud = run_tool(["dvc", "status", "--cloud"], workdir, **FAKE_AWS).stdout
    assert "in sync" in cloud
    print(f"S3 push + pull round trip: {round_trip_s:.1f} s, {len(before)} files")


@pytest.mark.e2e
def test_s3_local_starts_configures_and_stops(tmp_path: Path) -> None:
    workdir = clone_project(tmp_path / "clone")
    port = str(free_port())

    started = run_tool(
        ["python", "-m", "phishguard.data.local_s3", "start", "--port", port], workdir
    )
    try:
        assert f"http://127.0.0.1:{port}" in started.stdout
        remotes = run_tool(["dvc", "remote", "list"], workdir).stdout
        assert "local-s3" in remotes and "s3://phishguard-local/store" in remotes
        local = (workdir / ".dvc" / "config.local").read_text()
        assert f"endpointurl = http://127.0.0.1:{port}" in local
        run_tool(["git", "diff", "--exit-code", "--", ".dvc/config"], workdir)
        with socket.create_connection(("127.0.0.1", int(port)), timeout=5):
            pass
    finally:
        stopped = run_tool(["python", "-m", "phishguard.data.local_s3", "stop"], workdir)
    assert "stopped" in stopped.stdout
    assert "local-s3" not in run_tool(["dvc", "remote", "list"], workdir).stdout
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", int(port)), timeout=2):
        pass
