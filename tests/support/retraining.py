"""Retraining on the real dataset for the champion/challenger tests (issue 13): small XGBoost
models trained and evaluated as the train and evaluate stages do, feedback batches made of
real rows, and the package stage run in a scratch copy of the project.

Nothing here is written into the repository: every table and model goes to a test's tmp_path.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from phishguard import paths
from phishguard.config.models import model_config
from phishguard.config.sections import EvaluateParams, Gate
from phishguard.contract.schema import TARGET, feature_vector_ids
from phishguard.data.validate import quarantine
from phishguard.modeling import bundle
from phishguard.modeling.evaluate import evaluate_model
from phishguard.modeling.features import featurize
from phishguard.modeling.split import group_aware_split, with_target
from phishguard.modeling.train import train_and_save
from phishguard.provenance import file_sha256, write_json
from tests.support import REPO, tool_env

# evaluate's params, lighter (3 folds, 20 bootstrap draws): the metrics the gate compares
# (test ROC-AUC, recall at the operating threshold) do not depend on the draws.
EVALUATE = EvaluateParams(
    cv_folds=3,
    cv_workers=1,
    seed=42,
    target_fpr=0.02,
    bootstrap_resamples=20,
    gate=Gate(min_roc_auc=0.98, min_accuracy=0.93, max_fpr=0.08),
)
XGBOOST = {"name": "xgboost", "signal_counts": True, "max_depth": 6, "n_jobs": 1}


def real_split(real_table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The real dataset featurized and split (train, test) as the featurize stage does it."""
    return group_aware_split(featurize(with_target(quarantine(real_table).valid)), 0.2, 42)


def evaluated(
    folder: Path,
    train: pd.DataFrame,
    test: pd.DataFrame,
    trees: int,
    holdout: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """Train and evaluate an XGBoost model of `trees` trees as the train and evaluate stages
    do; return the package stage's inputs (model folder, operating point, metrics)."""
    config = model_config({**XGBOOST, "n_estimators": trees})
    train_and_save(config, 7, train, folder / "model")
    trained = bundle.load(folder / "model", evaluated=False)
    result = evaluate_model(trained, train, test, config, 7, EVALUATE, holdout)
    write_json(folder / "operating_point.json", result.operating_point)
    write_json(folder / "metrics.json", result.metrics)
    return {
        "model_dir": folder / "model",
        "operating_point": folder / "operating_point.json",
        "metrics": folder / "metrics.json",
    }


def flipped(rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` with every label flipped (a poisoned batch)."""
    return rows.assign(**{TARGET: 1 - rows[TARGET]})


def by_time(
    rows: pd.DataFrame, newest_share: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(older, newest) parts of a feedback batch arriving in a seeded random order; copies of
    one feature vector arrive together, so no vector straddles the two parts."""
    ids = feature_vector_ids(rows)
    order = np.random.default_rng(seed).permutation(pd.unique(ids))
    newest = np.isin(ids, order[: round(len(order) * newest_share)])
    return rows[~newest], rows[newest]


def store_files(home: Path) -> dict[str, str]:
    """Every file of a BentoML home's model store, with its sha256."""
    return {
        str(path.relative_to(home)): file_sha256(path)
        for path in sorted((home / "models").rglob("*"))
        if path.is_file()
    }


def run_package_stage(
    workdir: Path,
    challenger: dict[str, Path],
    test: pd.DataFrame,
    holdout: pd.DataFrame,
    train: pd.DataFrame | None = None,
    split_report: dict | None = None,
) -> subprocess.CompletedProcess:
    """Run stages/package.py in `workdir` (a scratch copy of the project's code and params)
    on the evaluated `challenger` and the splits (`train`: the challenger's rows, which the
    behavioural check retrains a twin on; None: its gate skips that check, as an empty one
    would not); `split_report`: featurize's report (its feedback trust counts); the store is
    `workdir`'s own."""
    for name in ("stages", "src"):
        if not (workdir / name).exists():
            shutil.copytree(
                REPO / name, workdir / name, ignore=shutil.ignore_patterns("__pycache__")
            )
    shutil.copy(REPO / "params.yaml", workdir / "params.yaml")
    shutil.rmtree(workdir / paths.MODEL_DIR, ignore_errors=True)
    shutil.copytree(challenger["model_dir"], workdir / paths.MODEL_DIR)
    shutil.copy(challenger["operating_point"], workdir / paths.OPERATING_POINT)
    (workdir / paths.REPORTS).mkdir(exist_ok=True)
    shutil.copy(challenger["metrics"], workdir / paths.METRICS)
    (workdir / paths.TEST_TABLE).parent.mkdir(parents=True, exist_ok=True)
    test.to_parquet(workdir / paths.TEST_TABLE, index=False)
    holdout.to_parquet(workdir / paths.FEEDBACK_HOLDOUT, index=False)
    if train is not None:
        train.to_parquet(workdir / paths.TRAIN_TABLE, index=False)
    write_json(workdir / paths.SPLIT_REPORT, split_report or {})
    return subprocess.run(
        ["python", "stages/package.py"],
        cwd=workdir,
        env=tool_env(workdir),
        capture_output=True,
        text=True,
        timeout=600,
    )
