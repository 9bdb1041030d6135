"""The whole DVC pipeline on the real data, in fresh clones: outputs, no-ops, reruns, exps."""

import json
import re
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from phishguard.contract.schema import FEATURES
from phishguard.modeling.features import SIGNAL_COUNTS
from phishguard.provenance import file_sha256
from tests.support import clone_project, run_pipeline, run_tool

pytestmark = pytest.mark.e2e

COMPARED = [
    "data/raw/phishing.parquet",
    "data/validated/phishing.parquet",
    "data/processed/train.parquet",
    "data/processed/test.parquet",
    "models/operating_point.json",
    "reports/metrics.json",
    "reports/validation.json",
    "reports/split.json",
]


def ran_stages(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


@pytest.fixture
def pipeline_copy(pipeline_clone: Path, tmp_path: Path) -> Path:
    """A private copy of the finished pipeline clone, free to modify."""
    return Path(shutil.copytree(pipeline_clone, tmp_path / "copy", symlinks=True))


def test_every_stage_wrote_its_outputs(pipeline_clone):
    read = lambda name: json.loads((pipeline_clone / name).read_text())  # noqa: E731
    ingest = read("reports/ingest.json")
    # data.feedback (the default): the landed file is the snapshot of base + verdicts (none here)
    assert ingest["rows"] == 11_055 and ingest["source"] == "phishing_websites.parquet"
    assert ingest["by_source"] == {"base": 11_055, "feedback": 0}
    validation = read("reports/validation.json")
    assert (
        validation["input_rows"]
        == validation["valid_rows"] + validation["quarantined_rows"]
        == 11_055
    )
    assert validation["exact_duplicate_rows"] == 5_206
    assert validation["conflicting_feature_vectors"] == 64
    split = read("reports/split.json")
    assert split["feature_vector_overlap"] == 0
    assert split["train"]["rows"] + split["test"]["rows"] == 11_055
    metrics = read("reports/metrics.json")
    for key in (
        "accuracy",
        "roc_auc",
        "fpr",
        "recall",
        "precision",
        "f1",
        "pr_auc",
        "log_loss",
        "brier",
    ):
        assert 0 <= metrics["test"][key] <= 1
    assert metrics["test"]["roc_auc"] > 0.98 and metrics["cv"]["roc_auc"] > 0.98
    assert metrics["test"]["accuracy"] > 0.93 and metrics["cv"]["accuracy"] > 0.93
    assert 0 < metrics["threshold"] < 1
    metadata = read("models/model/package.json")
    assert metadata["model_sha256"] == file_sha256(
        pipeline_clone / "models/model" / metadata["model_file"]
    )
    assert metadata["features"][0] == "having_IP_Address" and len(metadata["features"]) == 30
    assert metadata["label_mapping"]["phishing"] == -1
    assert "git_revision" not in metadata  # the folder's hash must not change with each commit
    assert metadata["input_columns"] == [*FEATURES, *SIGNAL_COUNTS]  # the default uses them
    train = pd.read_parquet(pipeline_clone / "data/processed/train.parquet")
    assert list(train.columns) == [*FEATURES, "is_phishing", *SIGNAL_COUNTS]
    drift = read("reports/drift.json")  # no prediction log in a fresh clone: it says so
    assert drift["judged"] is False and drift["note"].startswith("no prediction log")


def test_second_repro_is_a_fast_noop(pipeline_copy):
    started = time.perf_counter()
    result = run_tool(["dvc", "repro"], pipeline_copy)
    elapsed = time.perf_counter() - started
    assert ran_stages(result.stdout) == []
    assert "up to date" in run_tool(["dvc", "status"], pipeline_copy).stdout
    assert elapsed < 10  # measured ~1.6 s; generous for a loaded CI machine


def test_outputs_hash_the_same_on_another_commit(pipeline_copy):
    """Train and evaluate re-run on a later commit write the same bytes: dvc.lock, committed
    after the first run, stays unchanged (issue 29: a git revision in the model folder changed
    its hash with every commit, so no clone could reproduce the committed dvc.lock)."""
    run_tool(["git", "add", "dvc.lock"], pipeline_copy)
    run_tool(["git", "commit", "-q", "--allow-empty", "-m", "the pipeline's lock"], pipeline_copy)
    run_tool(["git", "commit", "-q", "--allow-empty", "-m", "a later commit"], pipeline_copy)
    result = run_tool(
        ["dvc", "repro", "--force", "--single-item", "train", "evaluate", "package"], pipeline_copy
    )
    assert {"train", "evaluate", "package"} <= set(ran_stages(result.stdout))
    status = run_tool(["git", "status", "--porcelain"], pipeline_copy).stdout
    assert status == "", status


def test_a_failed_experiment_leaves_params_yaml_and_the_documented_recovery_works(
    pipeline_copy,
):
    """`dvc exp run -S +model.max_dept=4` (a typo) fails naming the nearest key and puts
    params.yaml back; the README's recovery, `git checkout . && dvc checkout`, then brings back
    what DVC removed before the failed stage, and nothing is left changed (issue 29)."""
    run_tool(["git", "add", "dvc.lock"], pipeline_copy)
    run_tool(["git", "commit", "-q", "--allow-empty", "-m", "the pipeline's lock"], pipeline_copy)
    failed = run_tool(["dvc", "exp", "run", "-S", "+model.max_dept=4"], pipeline_copy, check=False)
    assert failed.returncode != 0
    assert "did you mean 'model.max_depth'?" in failed.stderr + failed.stdout
    status = run_tool(["git", "status", "--porcelain"], pipeline_copy).stdout
    assert status == "", status  # params.yaml (and dvc.lock) as committed
    run_tool(["bash", "-c", "git checkout . && dvc checkout"], pipeline_copy)
    assert "up to date" in run_tool(["dvc", "status"], pipeline_copy).stdout
    assert run_tool(["git", "status", "--porcelain"], pipeline_copy).stdout == ""


def test_dvc_plots_render(pipeline_copy):
    run_tool(["dvc", "plots", "show", "-o", "plots_out"], pipeline_copy)
    html = (pipeline_copy / "plots_out" / "index.html").read_text()
    for title in ("ROC", "Precision-recall", "Confusion", "Calibration", "Feature value shares"):
        assert title in html


def test_changing_a_model_param_reruns_only_train_evaluate_and_package(pipeline_copy):
    params = yaml.safe_load((pipeline_copy / "params.yaml").read_text())
    params["model"]["max_depth"] = 4
    (pipeline_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run_tool(["dvc", "repro"], pipeline_copy)
    # evaluate's new out-of-fold scores are the monitor stage's reference: it re-runs too
    ran = ran_stages(result.stdout)
    assert ran[:2] == ["train", "evaluate"] and sorted(ran[2:]) == ["monitor", "package"]


def test_same_rows_in_another_format_rerun_only_ingest(pipeline_copy, real_table):
    parquet = pipeline_copy.parent / "same.parquet"
    real_table.astype("int64").to_parquet(parquet, index=False)
    run_tool(["phishguard", "fetch", str(parquet)], pipeline_copy)
    result = run_tool(["dvc", "repro"], pipeline_copy)
    assert ran_stages(result.stdout) == ["ingest"]


def test_changed_data_reruns_everything(pipeline_copy, real_table):
    changed = pipeline_copy.parent / "fewer.csv"
    real_table.iloc[:-100].to_csv(changed, index=False)
    run_tool(["phishguard", "fetch", str(changed)], pipeline_copy)
    result = run_tool(["dvc", "repro"], pipeline_copy)
    ran = ran_stages(result.stdout)
    assert ran[:5] == ["ingest", "validate", "featurize", "train", "evaluate"]
    assert sorted(ran[5:]) == ["monitor", "package"]


def test_gate_failure_names_the_metric_and_the_gap(pipeline_copy):
    params = yaml.safe_load((pipeline_copy / "params.yaml").read_text())
    params["evaluate"]["gate"]["min_roc_auc"] = 0.9999
    (pipeline_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run_tool(["dvc", "repro"], pipeline_copy, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert re.search(
        r"promotion gate failed .*roc_auc 0\.\d{4} < minimum 0\.9999 \(short by 0\.\d{4}\)", output
    )
    assert "Traceback" not in output


def test_experiments_with_hydra_overrides(pipeline_copy):
    run_tool(["dvc", "exp", "run", "-n", "depth4", "-S", "model.max_depth=4"], pipeline_copy)
    assert yaml.safe_load((pipeline_copy / "params.yaml").read_text())["model"]["max_depth"] == 4
    run_tool(
        ["dvc", "exp", "run", "-n", "logreg", "-S", "model=logistic_regression"], pipeline_copy
    )
    metadata = json.loads((pipeline_copy / "models/model/package.json").read_text())
    assert metadata["model_name"] == "logistic_regression"
    assert metadata["model_file"] == "model.skops"
    shown = json.loads(run_tool(["dvc", "exp", "show", "--json"], pipeline_copy).stdout)
    names = {
        exp.get("name")
        for rev in shown
        for exp in rev.get("experiments") or []
        for exp in exp.get("revs", [])
    }
    assert {"depth4", "logreg"} <= names


def test_two_fresh_clones_produce_byte_identical_results(pipeline_clone, tmp_path, dataset_path):
    second = clone_project(tmp_path / "second")
    run_pipeline(second, dataset_path)
    for name in COMPARED:
        assert (pipeline_clone / name).read_bytes() == (second / name).read_bytes(), name
    first_meta = json.loads((pipeline_clone / "models/model/package.json").read_text())
    second_meta = json.loads((second / "models/model/package.json").read_text())
    assert first_meta["model_sha256"] == second_meta["model_sha256"]
    assert (pipeline_clone / "models/model/model.ubj").read_bytes() == (
        second / "models/model/model.ubj"
    ).read_bytes()
