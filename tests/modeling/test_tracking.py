"""MLflow tracking: flattened params, every metric, the model, tags; fallback when unreachable."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import scoring_server

from phishguard.contract.schema import FEATURES
from phishguard.modeling import package as packaging
from phishguard.modeling import tracking
from phishguard.modeling.mlflow_pyfunc import RejectedRowsError
from phishguard.provenance import git_revision
from phishguard.serving.scoring import load_scorer
from tests.support import tool_env, wait_until_up
from tests.support.packaged_model import labelled_rows, write_package

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


def _package(tmp_path: Path, spec: dict) -> tuple[Path, dict, pd.DataFrame]:
    """A small package as the package stage writes it, its manifest, and an input example."""
    directory = write_package(tmp_path / "package", spec=spec)
    manifest = json.loads((directory / "package.json").read_text())
    return directory, manifest, labelled_rows(200, seed=3)


def _tags(manifest: dict, data_sha256: str) -> dict[str, str]:
    return {
        **tracking.run_tags(manifest, data_sha256),
        "package_version": packaging.package_version(manifest),
    }


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
    # The revision is the evaluating checkout's, never a manifest's (issue 29: the model
    # folder carries none, or its hash would change with every commit).
    tags = tracking.run_tags({"git_revision": "stale", "model_name": "xgboost"}, "d" * 64)
    assert tags["git_revision"] == git_revision() != "stale"
    assert tags["data_sha256"] == "d" * 64
    assert tags["dvc_experiment"] == "brisk-owl"
    monkeypatch.delenv("DVC_EXP_NAME")
    assert tracking.run_tags({}, "x")["dvc_experiment"] == "workspace"


def test_pip_requirements_are_pinned() -> None:
    assert all("==" in r for r in tracking.pip_requirements("random_forest"))
    assert any(r.startswith("xgboost-cpu==") for r in tracking.pip_requirements("xgboost"))
    assert any(r.startswith("skops==") for r in tracking.pip_requirements("extra_trees"))


def test_pyfunc_logged_registered_and_made_champion_in_local_sqlite(
    monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    spec = {"name": "random_forest", "n_estimators": 5, "max_depth": 3}
    package_dir, manifest, example = _package(tmp_path, spec)
    tags = _tags(manifest, "f" * 64)
    started = time.monotonic()
    recorded = tracking.record_run(PARAMS, METRICS, tags, package_dir, example)
    assert time.monotonic() - started < 90
    assert recorded is not None
    uri, run_id = recorded
    assert uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.data.params["model.max_depth"] == "null"
    assert run.data.metrics["cv.recall_at_target_fpr"] == pytest.approx(0.93)
    assert run.data.tags["model_sha256"] == manifest["model_sha256"]
    assert run.info.artifact_uri.startswith((tmp_path.resolve() / "mlruns").as_uri())
    (version,) = client.search_model_versions("name='phishguard'")
    assert version.tags["package_version"] == tags["package_version"]
    assert version.tags["git_revision"] == tags["git_revision"]
    assert version.tags["data_sha256"] == "f" * 64
    assert tracking.set_champion(tags["package_version"]) == str(version.version)
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/phishguard@champion")
    schema = model.metadata.get_input_schema()
    assert schema.input_names() == list(FEATURES)
    scored = model.predict(example.loc[:, list(FEATURES)])
    expected = load_scorer(package_dir).decisions(
        example.loc[:, list(FEATURES)].to_numpy(np.float32)
    )
    assert list(scored.columns) == ["phishing_probability", "is_phishing", "label"]
    np.testing.assert_array_equal(scored["phishing_probability"], expected["phishing_probability"])
    assert (scored["is_phishing"] == expected["is_phishing"]).all()


def test_pyfunc_refuses_out_of_domain_rows_naming_them(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    package_dir, manifest, example = _package(tmp_path, {"name": "xgboost", "n_estimators": 5})
    uri, run_id = tracking.record_run(PARAMS, METRICS, _tags(manifest, "a"), package_dir, example)
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    bad = example.loc[:, list(FEATURES)].head(3).copy()
    bad.loc[1, "SSLfinal_State"] = 7
    # MLflow loads the model's code as a module of its own: the class is a copy of
    # RejectedRowsError, so it is matched by its base and its name.
    with pytest.raises(
        MlflowException, match=r"row 2: SSLfinal_State=7 not in \{-1, 0, 1\}"
    ) as refused:
        model.predict(bad)
    assert type(refused.value).__name__ == RejectedRowsError.__name__
    # What `mlflow models serve` answers (its request handler, in-process): HTTP 400 whose
    # message starts with the row and the field, not with a dump of the input (issue 29).
    body = json.dumps({"dataframe_split": bad.to_dict(orient="split")})
    with pytest.raises(MlflowException) as answered:
        scoring_server.invocations(
            body, "application/json", model, model.metadata.get_input_schema()
        )
    assert answered.value.get_http_status_code() == 400
    first = answered.value.serialize_as_json()
    assert (
        json.loads(first)["message"]
        .splitlines()[0]
        .startswith("row 2: SSLfinal_State=7 not in {-1, 0, 1}")
    )


def test_no_registered_version_is_one_warning(monkeypatch, tmp_path: Path, caplog) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="phishguard.modeling.tracking"):
        assert tracking.set_champion("0123456789abcdef") is None
    assert "alias champion was not moved" in caplog.text


def test_unreachable_server_falls_back_to_local_store(monkeypatch, tmp_path: Path, caplog) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    package_dir, manifest, example = _package(tmp_path, {"name": "xgboost", "n_estimators": 5})
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="phishguard.modeling.tracking"):
        recorded = tracking.record_run(PARAMS, METRICS, _tags(manifest, "a"), package_dir, example)
    assert time.monotonic() - started < 60, "an unreachable server must not hang the stage"
    assert "unreachable" in caplog.text and "local fallback" in caplog.text
    assert recorded is not None and recorded[0] == tracking.local_uri()
    assert mlflow.MlflowClient(recorded[0]).get_run(recorded[1]).data.metrics["threshold"] == 0.7
    assert (package_dir / manifest["model_file"]).exists()


def test_no_store_at_all_warns_and_returns_none(monkeypatch, tmp_path: Path, caplog) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the store's folder should be")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.setenv("DVC_ROOT", str(blocked))
    package_dir, manifest, example = _package(tmp_path, {"name": "xgboost", "n_estimators": 5})
    with caplog.at_level(logging.WARNING, logger="phishguard.modeling.tracking"):
        recorded = tracking.record_run(PARAMS, METRICS, _tags(manifest, "a"), package_dir, example)
    assert recorded is None
    assert "was not recorded" in caplog.text
    assert (package_dir / manifest["model_file"]).exists()


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
    try:
        wait_until_up(server, f"{url}/health", tmp_path / "server.log", 240)
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
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.setenv("DVC_EXP_NAME", "served-run")
    package_dir, manifest, example = _package(tmp_path, {"name": "xgboost", "n_estimators": 5})
    tags = _tags(manifest, "b" * 64)
    recorded = tracking.record_run(PARAMS, METRICS, tags, package_dir, example)
    assert recorded is not None and recorded[0] == mlflow_server
    assert not (tmp_path / "mlflow.db").exists(), "nothing may fall back while the server is up"
    client = mlflow.MlflowClient(mlflow_server)
    run = client.get_run(recorded[1])
    assert run.data.params["model.n_estimators"] == "5"
    assert run.data.metrics["test.accuracy"] == pytest.approx(0.96)
    assert run.data.tags["dvc_experiment"] == "served-run"
    assert run.data.tags["data_sha256"] == "b" * 64
    assert run.info.run_name == "served-run"
    version = tracking.set_champion(tags["package_version"])
    assert version is not None
    assert str(client.get_model_version_by_alias("phishguard", "champion").version) == version
    assert client.get_model_version("phishguard", version).tags["dvc_experiment"] == "served-run"
    mlflow.set_tracking_uri(mlflow_server)
    model = mlflow.pyfunc.load_model("models:/phishguard@champion")
    rows = example.loc[:, list(FEATURES)]
    expected = load_scorer(package_dir).probability(rows.to_numpy(np.float32))
    np.testing.assert_array_equal(model.predict(rows)["phishing_probability"], expected)
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
