"""`bentoml serve` before the pipeline has packaged a model says what to do (issue 29), instead
of BentoML's "could not be found locally ... No cloud context"."""

from __future__ import annotations

import subprocess

import pytest

from tests.support import REPO, free_port, tool_env
from tests.support.service import spawn, stop


def test_bentoml_serve_without_a_package_says_to_run_make_pipeline(tmp_path) -> None:
    log = tmp_path / "serve.log"
    env = {k: v for k, v in tool_env().items() if not k.startswith("PHISHGUARD_")}
    env["BENTOML_HOME"] = str(tmp_path / "empty-store")  # what a fresh clone has
    command = ["bentoml", "serve", "service.service:Phishguard", "--host", "127.0.0.1"]
    server = spawn([*command, "--port", str(free_port())], REPO, env, log)
    try:
        status = server.wait(timeout=90)
    except subprocess.TimeoutExpired:
        stop(server)
        pytest.fail(f"bentoml serve still running after 90 s:\n{log.read_text()[-3000:]}")
    text = log.read_text()
    assert status != 0, text
    assert "no packaged model phishguard:latest" in text and "run `make pipeline` first" in text
    assert "cloud context" not in text and "Traceback" not in text, text
