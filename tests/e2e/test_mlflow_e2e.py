"""The MLflow model of a real pipeline run: `models:/phishguard@champion` as a pyfunc and under
`mlflow models serve` gives exactly the probabilities of `bentoml serve`, on every row."""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from phishguard.contract.schema import FEATURES
from tests.support import free_port, tool_env, wait_until_up
from tests.support.service import spawn, start_bentoml, stop

pytestmark = pytest.mark.e2e


def post(url: str, body: object) -> object:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def features(dataset_path: Path) -> pd.DataFrame:
    return pd.read_csv(dataset_path).loc[:, list(FEATURES)]


@pytest.fixture(scope="module")
def served_probabilities(
    pipeline_clone: Path, features: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> np.ndarray:
    """What `bentoml serve` answers for every row of the dataset."""
    port = free_port()
    server = start_bentoml(pipeline_clone, port, tmp_path_factory.mktemp("bento") / "serve.log")
    try:
        found = []
        for start in range(0, len(features), 5000):
            chunk = features.iloc[start : start + 5000].to_dict("records")
            answer = post(f"http://127.0.0.1:{port}/predict", {"records": chunk})
            found += [r["phishing_probability"] for r in answer["results"]]
    finally:
        stop(server)
    return np.array(found)


def test_champion_pyfunc_predicts_as_the_service(
    pipeline_clone: Path, features: pd.DataFrame, served_probabilities: np.ndarray
) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{pipeline_clone / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias("phishguard", "champion")
    served = (pipeline_clone / "models/bentoml/models/phishguard/latest").read_text().strip()
    assert champion.tags["package_version"] == served
    model = mlflow.pyfunc.load_model("models:/phishguard@champion")
    assert model.metadata.get_input_schema().input_names() == list(FEATURES)
    assert model.metadata.get_output_schema().input_names() == [
        "phishing_probability",
        "is_phishing",
        "label",
    ]
    scored = model.predict(features)
    assert len(scored) == len(features) == 11_055
    np.testing.assert_array_equal(scored["phishing_probability"].to_numpy(), served_probabilities)


@pytest.fixture(scope="module")
def mlflow_serving(pipeline_clone: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = tool_env(pipeline_clone)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{pipeline_clone / 'mlflow.db'}"
    log = tmp_path_factory.mktemp("mlflow-serve") / "serve.log"
    command = ["mlflow", "models", "serve", "-m", "models:/phishguard@champion"]
    command += ["--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)]
    server = spawn(command, pipeline_clone, env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(server, f"{url}/ping", log, 180)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_mlflow_models_serve_answers_as_the_service(
    mlflow_serving: str, features: pd.DataFrame, served_probabilities: np.ndarray
) -> None:
    body = {"dataframe_split": {"columns": list(FEATURES), "data": features.values.tolist()}}
    predictions = post(f"{mlflow_serving}/invocations", body)["predictions"]
    found = np.array([p["phishing_probability"] for p in predictions])
    np.testing.assert_array_equal(found, served_probabilities)
    assert {p["label"] for p in predictions} == {"phishing", "legitimate"}
