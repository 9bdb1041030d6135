"""A small packaged model for the serving and hardening tests: XGBoost (or another zoo model)
trained on synthetic rows and written as the package stage writes it, without bentoml.

The `package_dir` and `scorer` fixtures in `tests/conftest.py` build one per session.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from phishguard.config.models import model_config
from phishguard.contract.schema import LABEL, RESULT_LEGITIMATE, RESULT_PHISHING
from phishguard.modeling import bundle
from phishguard.modeling.features import featurize
from phishguard.modeling.split import with_target
from phishguard.modeling.train import train_and_save
from tests.support import synthetic_rows

THRESHOLD = 0.6


def labelled_rows(n: int, seed: int) -> pd.DataFrame:
    """Synthetic rows whose label follows a few strong signals (plus 5% noise)."""
    rows = synthetic_rows(n, seed)
    signal = (rows["SSLfinal_State"] == -1) | (
        (rows["Prefix_Suffix"] == 1) & (rows["web_traffic"] != 1)
    )
    noise = np.random.default_rng(seed + 1).random(n) < 0.05
    rows[LABEL] = np.where(signal ^ noise, RESULT_PHISHING, RESULT_LEGITIMATE).astype(np.int8)
    return rows


def training_table(n: int, seed: int) -> pd.DataFrame:
    """`labelled_rows` as the featurize stage writes them: features, target, signal counts."""
    return featurize(with_target(labelled_rows(n, seed)))


def write_package(directory: Path, n_estimators: int = 60, spec: dict | None = None) -> Path:
    """Train a small model (XGBoost unless `spec` says otherwise) and write it as the package
    stage would (no bentoml)."""
    spec = spec or {"name": "xgboost", "n_estimators": n_estimators, "max_depth": 4, "n_jobs": 1}
    trained = train_and_save(model_config(spec), 7, training_table(3000, 0), directory)
    manifest = bundle.evaluated_manifest(
        trained,
        {"threshold": THRESHOLD, "target_fpr": 0.02},
        {"test": {"roc_auc": 0.97, "accuracy": 0.93}},
    )
    bundle.write_evaluated(directory, directory, manifest)
    return directory
