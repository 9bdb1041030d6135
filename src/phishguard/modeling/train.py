"""Fitting a configured model on the featurized training table, and saving it as a bundle."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from phishguard.contract.schema import (
    FEATURES,
    SCHEMA_VERSION,
    TARGET,
    content_sha256,
    label_mapping,
)
from phishguard.modeling import bundle
from phishguard.modeling.features import table_inputs
from phishguard.modeling.zoo import build_model, input_columns, split_spec
from phishguard.provenance import git_revision, library_versions


@dataclass(frozen=True)
class TrainParams:
    """The `train` section of params.yaml."""

    seed: int


def fit_model(spec: dict[str, Any], seed: int, train: pd.DataFrame) -> Any:
    """Build the estimator named by `spec` and fit it on the featurized training table."""
    model = build_model(spec, seed)
    model.fit(table_inputs(train, input_columns(spec)), train[TARGET].to_numpy())
    return model


def train_and_save(
    spec: dict[str, Any], seed: int, train: pd.DataFrame, directory: Path
) -> dict[str, Any]:
    """Fit on the featurized `train` table, write the bundle into `directory`, and return its
    manifest."""
    name, hyperparameters = split_spec(spec)
    model = fit_model(spec, seed, train)
    return bundle.save(
        model,
        directory,
        {
            "model_name": name,
            "hyperparameters": hyperparameters,
            "seed": seed,
            "features": list(FEATURES),
            "input_columns": input_columns(spec),
            "target": TARGET,
            "label_mapping": label_mapping(),
            "schema_version": SCHEMA_VERSION,
            "train_rows": len(train),
            "train_data_sha256": content_sha256(train),
            "git_revision": git_revision(),
            "library_versions": library_versions(),
        },
    )
