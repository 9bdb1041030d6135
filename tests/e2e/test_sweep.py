"""A queued DVC sweep of 6 configurations in a temporary clone: all succeed, all show up in
`dvc exp show`, and each one is an MLflow run in the clone's store."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import REPO, clone_project, run_tool, tool_env

SWEEPS = [
    # Three zoo models by Hydra group choice...
    ["-S", "model=random_forest,extra_trees,logistic_regression"],
    # ...and three XGBoost depths (a sweep needs --queue; small trees keep the test short).
    ["-S", "model=xgboost", "-S", "model.max_depth=4,6,8", "-S", "model.n_estimators=100"],
]


def compare_command() -> str:
    """The command `make compare` runs (the Makefile's COMPARE)."""
    makefile = (REPO / "Makefile").read_text()
    return re.search(r"^COMPARE := (.+)$", makefile, re.MULTILINE).group(1)


def _queue_done(workdir: Path) -> bool:
    status = run_tool(["dvc", "queue", "status"], workdir).stdout
    return not any(word in status for word in ("Queued", "Running"))


@pytest.mark.e2e
@pytest.mark.timeout(3600)
def test_queued_sweep_runs_six_configurations(tmp_path: Path, dataset_path: Path) -> None:
    workdir = clone_project(tmp_path / "clone")
    run_tool(["phishguard", "fetch", str(dataset_path)], workdir)
    # Queued runs see only git-tracked files: the landed data is copied in with -C.
    for overrides in SWEEPS:
        run_tool(["dvc", "exp", "run", "--queue", "-C", "data/landing", *overrides], workdir)
    queued = run_tool(["dvc", "queue", "status"], workdir).stdout
    assert queued.count("Queued") == 6, queued

    # The workers it spawns inherit stdout: pipes would block until they exit, so use a file.
    with (tmp_path / "queue-start.log").open("w") as log:
        subprocess.run(
            ["dvc", "queue", "start", "-j", "2"],
            cwd=workdir,
            env=tool_env(workdir),
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=120,
        )
    deadline = time.monotonic() + 3000
    try:
        while not _queue_done(workdir):
            assert time.monotonic() < deadline, "the sweep did not finish in time"
            time.sleep(10)
    finally:
        run_tool(["dvc", "queue", "stop"], workdir, check=False)

    status = run_tool(["dvc", "queue", "status"], workdir).stdout
    assert "Failed" not in status, status
    assert status.count("Success") == 6, status

    shown = json.loads(run_tool(["dvc", "exp", "show", "--json"], workdir).stdout)
    experiments = [exp for baseline in shown for exp in (baseline.get("experiments") or [])]
    assert len(experiments) == 6
    models, depths, names = [], [], set()
    for experiment in experiments:
        (revision,) = experiment["revs"]
        data = revision["data"]
        names.add(revision["name"])
        params = data["params"]["params.yaml"]["data"]
        # The headline is the only DVC metrics file (issue 29); the detail is a plain output.
        assert set(data["metrics"]) == {"reports/headline.json"}
        headline = data["metrics"]["reports/headline.json"]["data"]["uci"]
        models.append(params["model"]["name"])
        if params["model"]["name"] == "xgboost":
            depths.append(params["model"]["max_depth"])
        assert headline["roc_auc"] > 0.95 and 0 < headline["threshold"] < 1
    assert sorted(models) == sorted(
        ["random_forest", "extra_trees", "logistic_regression", *["xgboost"] * 3]
    )
    assert sorted(depths) == [4, 6, 8]

    # `make compare` (the README's comparison) fits a 160-column terminal, headline readable.
    compare = run_tool(["bash", "-c", compare_command()], workdir, COLUMNS="160").stdout
    lines = compare.splitlines()
    assert max(len(line) for line in lines) <= 160, compare
    header = next(line for line in lines if "Experiment" in line)
    for column in ("uci.accuracy", "uci.recall_at_fpr", "uci.roc_auc", "uci.threshold"):
        assert column in header, compare
    assert sum("[" in line for line in lines) == 6, compare  # one row per experiment

    # Every experiment logged one MLflow run into the clone's own store, named after it.
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "phishguard"]
    runs = client.search_runs([experiment.experiment_id])
    assert {run.data.tags["dvc_experiment"] for run in runs} >= names
    assert all("cv.recall_at_target_fpr" in run.data.metrics for run in runs)
