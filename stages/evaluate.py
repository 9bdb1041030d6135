"""evaluate: held-out test metrics, grouped CV on the training split, plots, promotion gate,
and the MLflow run of this model (params, every metric, the model, provenance tags)."""

from dataclasses import dataclass

import pandas as pd

from phishguard import PhishguardError, paths
from phishguard.entrypoint import run
from phishguard.evaluation import evaluate_model, gate_failures
from phishguard.models import load_model
from phishguard.params import load_section, section
from phishguard.plot_data import write_plots
from phishguard.provenance import read_json, write_json
from phishguard.schema import content_sha256
from phishguard.training import TrainParams


@dataclass(frozen=True)
class Gate:
    min_roc_auc: float
    min_accuracy: float
    max_fpr: float


@dataclass(frozen=True)
class EvaluateParams:
    cv_folds: int
    cv_workers: int
    seed: int
    target_fpr: float
    bootstrap_resamples: int
    gate: Gate


def main() -> None:
    params = load_section("evaluate", EvaluateParams)
    train_seed = load_section("train", TrainParams).seed
    spec = section("model")
    metadata = read_json(paths.MODEL_METADATA)
    model = load_model(paths.MODEL_DIR / metadata["model_file"], metadata["model_sha256"])
    train, test = pd.read_parquet(paths.TRAIN_TABLE), pd.read_parquet(paths.TEST_TABLE)

    result = evaluate_model(
        model,
        spec,
        train_seed,
        train,
        test,
        params.cv_folds,
        params.seed,
        params.target_fpr,
        cv_workers=params.cv_workers,
        bootstrap_resamples=params.bootstrap_resamples,
    )
    write_json(paths.METRICS, result.metrics)
    write_json(paths.OPERATING_POINT, result.operating_point)
    write_plots(result.y_test, result.test_proba, result.metrics["threshold"], paths.PLOTS)

    _track(model, metadata, result.metrics, pd.concat([train, test], ignore_index=True))
    failures = gate_failures(
        result.metrics["test"],
        minimums={"roc_auc": params.gate.min_roc_auc, "accuracy": params.gate.min_accuracy},
        maximums={"fpr": params.gate.max_fpr},
    )
    if failures:
        raise PhishguardError("promotion gate failed on the test split: " + "; ".join(failures))


def _track(model: object, metadata: dict, metrics: dict, data: pd.DataFrame) -> None:
    from phishguard.tracking import record_run, run_tags

    params = {name: section(name) for name in ("model", "train", "split", "evaluate")}
    tags = run_tags(metadata, content_sha256(data))
    record_run(params, metrics, tags, model, paths.MODEL_DIR, [paths.OPERATING_POINT])


if __name__ == "__main__":
    run(main, "evaluate")
