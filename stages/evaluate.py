"""evaluate: held-out test metrics, grouped CV on the training split, metrics on the feedback
holdout, plots, the quality gate, and the MLflow run of this model (params, every metric, the
model, provenance tags)."""

import tempfile
from pathlib import Path

import pandas as pd

from phishguard import PhishguardError, paths
from phishguard.config.models import load_model_config
from phishguard.config.params import load_section, section
from phishguard.config.sections import EvaluateParams, TrainParams
from phishguard.contract.schema import content_sha256
from phishguard.entrypoint import run
from phishguard.io import write_table
from phishguard.modeling import bundle
from phishguard.modeling.bundle import package_version
from phishguard.modeling.evaluate import EvaluationResult, evaluate_model, gate_failures
from phishguard.modeling.headline import UCI, headline_entry
from phishguard.modeling.plot_data import write_plots
from phishguard.provenance import write_json


def main() -> None:
    params = load_section("evaluate", EvaluateParams)
    train_seed = load_section("train", TrainParams).seed
    config = load_model_config()
    trained = bundle.load(paths.MODEL_DIR, evaluated=False)
    train, test = pd.read_parquet(paths.TRAIN_TABLE), pd.read_parquet(paths.TEST_TABLE)
    holdout = pd.read_parquet(paths.FEEDBACK_HOLDOUT)  # the newest feedback (maybe 0 rows)

    result = evaluate_model(trained, train, test, config, train_seed, params, holdout)
    write_json(paths.METRICS, result.metrics)
    write_json(paths.HEADLINE, {UCI: headline_entry(result.metrics)})
    write_json(paths.OPERATING_POINT, result.operating_point)
    reference_scores = pd.DataFrame({"phishing_probability": result.oof_proba})
    write_table(paths.REFERENCE_SCORES, reference_scores)
    write_plots(result.y_test, result.test_proba, result.metrics["threshold"], paths.PLOTS)

    _track(trained.manifest, result, train, test)
    failures = gate_failures(
        result.metrics["test"],
        minimums={"roc_auc": params.gate.min_roc_auc, "accuracy": params.gate.min_accuracy},
        maximums={"fpr": params.gate.max_fpr},
    )
    if failures:
        raise PhishguardError("promotion gate failed on the test split: " + "; ".join(failures))


def _track(
    metadata: dict, result: EvaluationResult, train: pd.DataFrame, test: pd.DataFrame
) -> None:
    # Imported here: MLflow costs ~3.5 s to import, and evaluate may fail its checks first.
    from phishguard.modeling.tracking import record_run, run_tags

    params = {name: section(name) for name in ("model", "train", "split", "evaluate")}
    manifest = bundle.evaluated_manifest(metadata, result.operating_point, result.metrics)
    tags = run_tags(metadata, content_sha256(pd.concat([train, test], ignore_index=True)))
    tags["package_version"] = package_version(manifest)
    # The run's model is the package as the package stage will write it (same manifest).
    with tempfile.TemporaryDirectory(prefix="phishguard-package-") as staging:
        bundle.write_evaluated(paths.MODEL_DIR, Path(staging), manifest)
        record_run(params, result.metrics, tags, Path(staging), example=test.head(5))


if __name__ == "__main__":
    run(main, "evaluate")
