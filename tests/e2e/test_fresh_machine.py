"""A newcomer's path on a truly fresh machine, in a fresh clone: no uv anywhere, an empty HOME,
PATH holding only the system Python's bin and /usr/bin:/bin, and that Python externally managed
(PEP 668) as Debian's and Ubuntu's are: /usr/bin/python3 where it is marked, else a marked copy
of it. The README's set-up command, a second make target, then the card's own commands exactly
as typed with the venv active: `bentoml serve`, `bentoml models list`, `bentoml build` and
`dvc exp run -S`."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import clone_project, free_port
from tests.support.python import externally_managed_python, pip_user_install_refused
from tests.support.service import records, spawn, stop, wait_ready

pytestmark = pytest.mark.e2e


def uv_cache() -> Path:
    """The uv package cache of this machine, reused so the fresh set-up stays fast."""
    if os.environ.get("UV_CACHE_DIR"):
        return Path(os.environ["UV_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "uv"


def fresh_env(home: Path, dataset: Path, python: Path) -> dict[str, str]:
    """What `env -i HOME=… PYTHONUSERBASE=… PATH=<system python>:/usr/bin:/bin` leaves."""
    return {
        "HOME": str(home),
        "PYTHONUSERBASE": str(home / ".local"),
        "PATH": f"{python.parent}:/usr/bin:/bin",
        "UV_CACHE_DIR": str(uv_cache()),
        "PHISHING_DATA": str(dataset),
        "LANG": "C.UTF-8",
    }


def sh(script: str, cwd: Path, env: dict[str, str], timeout: float = 900) -> str:
    """Run `script` with bash in `cwd` under exactly `env`; fail with its output."""
    done = subprocess.run(
        ["/bin/bash", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"`{script}` exited {done.returncode}:\n{output[-6000:]}"
    return output


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory, dataset_path: Path) -> tuple[Path, dict]:
    """A fresh clone after `make pipeline` on the simulated fresh machine; `git status` right
    after it is in the env as FRESH_GIT_STATUS."""
    home = tmp_path_factory.mktemp("home")
    python = externally_managed_python(tmp_path_factory.mktemp("python"))
    env = fresh_env(home, dataset_path, python)
    # The machine is the one Debian and Ubuntu users have: PEP 668 refuses `pip --user`.
    assert "externally-managed-environment" in pip_user_install_refused(python, home)
    assert subprocess.run(["/bin/bash", "-c", "command -v uv"], env=env).returncode != 0, (
        "uv is on the simulated fresh PATH; this test would not prove its installation"
    )
    clone = clone_project(tmp_path_factory.mktemp("fresh") / "phishguard")
    sh("make pipeline", clone, env)
    status = sh("git status --porcelain", clone, env)
    return clone, {**env, "FRESH_GIT_STATUS": status}


def test_make_pipeline_installs_uv_and_runs_every_stage(fresh) -> None:
    clone, env = fresh
    # uv in a private venv (PEP 668 allows it), nothing installed for the user
    assert (Path(env["HOME"]) / ".cache" / "phishguard" / "uv" / "bin" / "uv").is_file()
    assert not (Path(env["PYTHONUSERBASE"]) / "bin" / "uv").exists()
    assert json.loads((clone / "reports" / "metrics.json").read_text())["test"]["roc_auc"] > 0.98
    assert "Data and pipelines are up to date" in sh(
        ". .venv/bin/activate && dvc status", clone, env
    )


def test_make_pipeline_leaves_git_status_clean(fresh) -> None:
    """The committed dvc.lock is reproduced: no output hash changes with the commit or the
    machine (issue 29: a git revision in the model folder did)."""
    _, env = fresh
    assert env["FRESH_GIT_STATUS"] == "", env["FRESH_GIT_STATUS"]


def test_a_second_make_target_works_after_the_set_up(fresh) -> None:
    clone, env = fresh
    # Once .venv/bin is first on PATH, `python3` is the venv's (no pip, no uv): make must not
    # depend on it, with or without the venv active.
    sh("make lint", clone, env)
    sh(". .venv/bin/activate && make lint && make help >/dev/null", clone, env)


def test_bentoml_models_list_and_build_as_typed(fresh) -> None:
    clone, env = fresh
    listed = sh(". .venv/bin/activate && bentoml models list", clone, env)
    assert "phishguard" in listed
    built = sh(". .venv/bin/activate && bentoml build", clone, env, timeout=300)
    assert "Successfully built" in built, built[-2000:]


@pytest.fixture
def served(fresh, tmp_path: Path) -> Iterator[str]:
    clone, env = fresh
    port = free_port()
    log = tmp_path / "serve.log"
    serve = f". .venv/bin/activate && exec bentoml serve --host 127.0.0.1 --port {port}"
    server = spawn(["/bin/bash", "-c", serve], clone, env, log)
    wait_ready(server, port, log)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(server)


def test_plain_bentoml_serve_answers_predict(served: str) -> None:
    request = urllib.request.Request(
        f"{served}/predict",
        json.dumps({"records": records(3, seed=1)}).encode(),
        {"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        results = json.loads(response.read())["results"]
    assert len(results) == 3
    assert all(0.0 <= r["phishing_probability"] <= 1.0 for r in results)


def test_an_experiment_reruns_train_onwards_only(fresh) -> None:
    clone, env = fresh
    # `dvc exp` commits experiments to git refs: the README asks a newcomer for a git identity.
    sh(
        "git config --global user.name newcomer && git config --global user.email n@x.invalid",
        clone,
        env,
    )
    output = sh(". .venv/bin/activate && dvc exp run -S model.max_depth=4", clone, env)
    for stage in ("ingest", "validate", "featurize"):
        assert f"Stage '{stage}' didn't change, skipping" in output
        assert f"Running stage '{stage}'" not in output
    for stage in ("train", "evaluate", "package"):
        assert f"Running stage '{stage}'" in output
    shown = sh(". .venv/bin/activate && dvc exp show --no-pager --csv", clone, env)
    rows = list(csv.DictReader(io.StringIO(shown)))
    experiments = [row for row in rows if row["Experiment"]]
    assert [row["model.max_depth"] for row in experiments] == ["4"], shown


def test_served_records_reach_the_log_drift_and_the_monitor_stage(fresh, tmp_path: Path) -> None:
    """`make serve`, traffic, `phishguard drift data/predictions --json`: the log holds each
    scored record, the drift check reads it, and DVC sees the monitor stage (only) as stale."""
    clone, env = fresh
    for earlier in (clone / "data" / "predictions").glob("predictions-*.jsonl"):
        earlier.unlink()  # what other tests served in this clone
    port, log = free_port(), tmp_path / "serve.log"
    serve = f". .venv/bin/activate && exec bentoml serve --host 127.0.0.1 --port {port}"
    server = spawn(["/bin/bash", "-c", serve], clone, env, log)
    try:
        wait_ready(server, port, log)
        for n in (3, 2):
            body = json.dumps({"records": records(n, seed=n)}).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/predict", body, {"content-type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 200
    finally:
        stop(server)  # a graceful stop: the queued records are written
    files = sorted((clone / "data" / "predictions").glob("predictions-*.jsonl"))
    try:
        assert sum(len(f.read_text().splitlines()) for f in files) == 5
        output = sh(". .venv/bin/activate && phishguard drift data/predictions --json", clone, env)
        report = json.loads(next(line for line in output.splitlines() if line.startswith("{")))
        assert report["n_current"] == 5 and report["judged"] is False  # < monitor.min_rows
        status = sh(". .venv/bin/activate && dvc status", clone, env)
        assert "monitor:" in status and "train:" not in status, status
    finally:
        for file in files:
            file.unlink()


def post(port: int, path: str, body: object, key: str | None = None) -> tuple[int, dict]:
    """POST JSON to the local service; (status, parsed answer), 4xx answers included."""
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(), headers
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def served_model(port: int) -> str:
    """The sha256 of the model file the service scores with."""
    return post(port, "/metadata", {})[1]["model_sha256"]


def serve(clone: Path, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, int]:
    """`make serve` on a free port, ready."""
    port = free_port()
    server = spawn(["/bin/bash", "-c", f"exec make serve PORT={port}"], clone, env, log)
    return wait_ready(server, port, log), port


def test_the_learning_loop_serve_verdicts_retrain_then_promote_or_keep(fresh, tmp_path) -> None:
    """Issue 13's loop, as the README shows it, on the fresh clone (the module's last test: it
    retrains): an analyst key; `make serve`; POST /feedback (401 without the key, counted and
    idempotent with it); the key revoked without a restart; `make retrain`; the decision in
    reports/promotion.json; `make serve` again serves the promoted model, or the kept one."""
    clone, env = fresh
    activate = ". .venv/bin/activate && "
    key = sh(activate + "phishguard keys add alice --role analyst 2>/dev/null", clone, env)
    key = key.strip().splitlines()[-1]
    verdicts = [
        {"record": record, "label": "phishing", "note": "new campaign"}
        for record in records(300, seed=1313)
    ]
    server, port = serve(clone, env, tmp_path / "serve-1.log")
    try:
        champion = served_model(port)
        assert post(port, "/feedback", {"feedback": verdicts})[0] == 401
        status, answer = post(port, "/feedback", {"feedback": verdicts}, key)
        assert status == 200, answer
        unique = len({json.dumps(v["record"], sort_keys=True) for v in verdicts})
        assert (answer["accepted"], answer["already_present"]) == (unique, 0)
        again = post(port, "/feedback", {"feedback": verdicts}, key)[1]
        assert (again["accepted"], again["already_present"]) == (0, unique)
        assert post(port, "/predict", {"records": records(2, seed=5)})[0] == 200  # open
        sh(activate + "phishguard keys revoke alice", clone, env)
        deadline = time.monotonic() + 10  # the service re-reads the key store within ~1 s
        while post(port, "/feedback", {"feedback": verdicts[:1]}, key)[0] != 401:
            assert time.monotonic() < deadline, "a revoked key still works after 10 s"
            time.sleep(0.5)
    finally:
        stop(server)

    output = sh("make retrain", clone, env, timeout=1800)
    assert "promotion: " in output, output[-3000:]
    ingest = json.loads((clone / "reports" / "ingest.json").read_text())
    assert ingest["by_source"]["feedback"] == unique
    assert ingest["by_submitter"] == {"alice": unique}
    promotion = json.loads((clone / "reports" / "promotion.json").read_text())
    assert promotion["decision"] in ("promoted", "kept"), promotion
    assert promotion["champion"]["model_sha256"] == champion
    assert (clone / "reports" / "report.md").is_file()

    server, port = serve(clone, env, tmp_path / "serve-2.log")
    try:
        expected = (
            promotion["challenger"]["model_sha256"]
            if promotion["decision"] == "promoted"
            else champion
        )
        assert served_model(port) == expected
    finally:
        stop(server)
