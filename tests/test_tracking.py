"""MLflow tracking: flattened params, every metric, the model, tags; fallback when unreachable."""

from __future__ import annotations

import logging
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

from phishguard import tracking
from phishguard.schema import LABEL, to_target
from phishguard.training import train_and_save

METRICS = {
    "test": {
        "accuracy": 0.96,
        "confusion_matrix": {"tp": 5, "fn": 1},
        "at_threshold": {"recall": 0.9},
    },
    "cv": {"roc_auc": 0.99, "recall_at_target_fpr": 0.93},
    "threshold": 0.7,
    "target_fpr": 0.02,
}
PARAMS = {"model": {"name": "xgboost", "n_estimators": 5, "max_depth": None}, "train": {"seed": 42}}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _fitted(tmp_path: Path, spec: dict) -> tuple[object, dict, Path]:
    rows = synthetic_rows(200, seed=1)
    table = rows.drop(columns=[LABEL]).assign(is_phishing=to_target(rows[LABEL]))
    model_dir = tmp_path / "model"
    metadata = train_and_save(spec, 42, table, model_dir)
    from phishguard.models import load_model

    model = load_model(model_dir / metadata["model_file"], metadata["model_sha256"])
    return model, metadata, model_dir


def test_flatten_and_numeric_metrics() -> None:
    flat = tracking.flatten({"model": {"name": "x", "depth": {"max": 3}}, "seed": 1})
    assert flat == {"model.name": "x", "model.depth.max": 3, "seed": 1}
    numbers = tracking.numeric_metrics({**METRICS, "note": "text", "flag": True})
    assert numbers["test.confusion_matrix.tp"] == 5.0
    assert numbers["test.at_threshold.recall"] == 0.9
    assert numbers["cv.recall_at_target_fpr"] == 0.93
    assert "note" not in numbers and "flag" not in numbers


def test_default_store_is_sqlite_at_the_dvc_root(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri() == "http://127.0.0.1:5000"


def test_tags_carry_git_data_and_experiment(monkeypatch) -> None:
    monkeypatch.setenv("DVC_EXP_NAME", "brisk-owl")
    tags = tracking.run_tags({"git_revision": "abc", "model_name": "xgboost"}, "d" * 64)
    assert tags["git_revision"] == "abc"
    assert tags["data_sha256"] == "d" * 64
    assert tags["dvc_experiment"] == "brisk-owl"
    monkeypatch.delenv("DVC_EXP_NAME")
    assert tracking.run_tags({}, "x")["dvc_experiment"] == "workspace"


def test_pip_requirements_are_pinned() -> None:
    assert all("==" in r for r in tracking.pip_requirements("random_forest"))
    assert any(r.startswith("xgboost-cpu==") for r in tracking.pip_requirements("xgboost"))
    assert any(r.startswith("skops==") for r in tracking.pip_requirements("extra_trees"))


def test_sklearn_run_logged_to_local_sqlite(monkeypatch, tmp_path: Path) -> None:
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    spec = {"name": "random_forest", "n_estimators": 5, "max_depth": 3}
    model, metadata, model_dir = _fitted(tmp_path, spec)
    tags = tracking.run_tags(metadata, "f" * 64)
    started = time.monotonic()
    recorded = tracking.record_run(PARAMS, METRICS, tags, model, model_dir)
    assert time.monotonic() - started < 60
    assert recorded is not None
    uri, run_id = recorded
    assert uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    run = mlflow.MlflowClient(uri).get_run(run_id)
    assert run.data.params["model.max_depth"] == "null"
    assert run.data.metrics["cv.recall_at_target_fpr"] == pytest.approx(0.93)
    assert run.data.tags["model_sha256"] == metadata["model_sha256"]
    assert run.info.artifact_uri.startswith((tmp_path.resolve() / "mlruns").as_uri())
    loaded = mlflow.sklearn.load_model(f"runs:/{run_id}/model")
    assert type(loaded).__name__ == "RandomForestClassifier"


def test_unreachable_server_falls_back_to_local_store(monkeypatch, tmp_path: Path, caplog) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    model, metadata, model_dir = _fitted(tmp_path, {"name": "xgboost", "n_estimators": 5})
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="phishguard.tracking"):
        recorded = tracking.record_run(
            PARAMS, METRICS, tracking.run_tags(metadata, "a"), model, model_dir
        )
    assert time.monotonic() - started < 60, "an unreachable server must not hang the stage"
    assert "unreachable" in caplog.text and "local fallback" in caplog.text
    assert recorded is not None and recorded[0] == tracking.local_uri()
    assert mlflow.MlflowClient(recorded[0]).get_run(recorded[1]).data.metrics["threshold"] == 0.7
    assert (model_dir / metadata["model_file"]).exists()


def test_no_store_at_all_warns_and_returns_none(monkeypatch, tmp_path: Path, caplog) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the store's folder should be")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.setenv("DVC_ROOT", str(blocked))
    model, metadata, model_dir = _fitted(tmp_path, {"name": "xgboost", "n_estimators": 5})
    with caplog.at_level(logging.WARNING, logger="phishguard.tracking"):
        recorded = tracking.record_run(
            PARAMS, METRICS, tracking.run_tags(metadata, "a"), model, model_dir
        )
    assert recorded is None
    assert "was not recorded" in caplog.text
    assert (model_dir / metadata["model_file"]).exists()


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real `mlflow server` on loopback, stopped after the test."""
    port = _free_port()
    env = tool_env()
    env.update(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [
        str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination", str(tmp_path / "server-artifacts"),
    ]  # fmt: skip
    log_file = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"mlflow server did not start:\n{(tmp_path / 'server.log').read_text()}"
                )
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log_file.close()


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_run_logged_to_a_real_server_and_read_back(
    mlflow_server: str, monkeypatch, tmp_path: Path
) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.setenv("DVC_EXP_NAME", "served-run")
    model, metadata, model_dir = _fitted(tmp_path, {"name": "xgboost", "n_estimators": 5})
    recorded = tracking.record_run(
        PARAMS, METRICS, tracking.run_tags(metadata, "b" * 64), model, model_dir
    )
    assert recorded is not None and recorded[0] == mlflow_server
    assert not (tmp_path / "mlflow.db").exists(), "nothing may fall back while the server is up"
    client = mlflow.MlflowClient(mlflow_server)
    run = client.get_run(recorded[1])
    assert run.data.params["model.n_estimators"] == "5"
    assert run.data.metrics["test.accuracy"] == pytest.approx(0.96)
    assert run.data.tags["dvc_experiment"] == "served-run"
    assert run.data.tags["data_sha256"] == "b" * 64
    assert run.info.run_name == "served-run"
    assert {a.path for a in client.list_artifacts(recorded[1])} >= {"model_files"}
    booster = mlflow.xgboost.load_model(f"runs:/{recorded[1]}/model")
    assert booster.n_estimators == 5 or booster.get_booster().num_boosted_rounds() == 5
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
