"""Fitting a configured model and describing it: the metadata that travels with the file."""

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
from phishguard.modeling.zoo import (
    build_model,
    design_matrix,
    input_columns,
    save_model,
    split_spec,
)
from phishguard.provenance import file_sha256, git_revision, library_versions


@dataclass(frozen=True)
class TrainParams:
    """The `train` section of params.yaml."""

    seed: int


def fit_model(spec: dict[str, Any], seed: int, train: pd.DataFrame) -> Any:
    """Build the estimator named by `spec` and fit it on the training table."""
    model = build_model(spec, seed)
    model.fit(design_matrix(train, spec), train[TARGET].to_numpy())
    return model


def train_and_save(
    spec: dict[str, Any], seed: int, train: pd.DataFrame, directory: Path
) -> dict[str, Any]:
    """Fit, write the model file, and return its metadata (to be written beside it)."""
    name, hyperparameters = split_spec(spec)
    model = fit_model(spec, seed, train)
    path = save_model(model, name, directory)
    return {
        "model_name": name,
        "model_file": path.name,
        "model_sha256": file_sha256(path),
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
    }
