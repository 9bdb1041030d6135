"""Fitting a configured model and describing it: the metadata that travels with the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from phishguard.config.models import ModelConfig
from phishguard.contract.schema import (
    FEATURES,
    SCHEMA_VERSION,
    TARGET,
    content_sha256,
    label_mapping,
)
from phishguard.modeling.zoo import build_model, design_matrix, input_columns, save_model
from phishguard.provenance import file_sha256, git_revision, library_versions


def fit_model(config: ModelConfig, seed: int, train: pd.DataFrame) -> Any:
    """Build the estimator `config` describes and fit it on the training table."""
    model = build_model(config, seed)
    model.fit(design_matrix(train, config), train[TARGET].to_numpy())
    return model


def train_and_save(
    config: ModelConfig, seed: int, train: pd.DataFrame, directory: Path
) -> dict[str, Any]:
    """Fit, write the model file, and return its metadata (to be written beside it)."""
    model = fit_model(config, seed, train)
    path = save_model(model, config.name, directory)
    return {
        "model_name": config.name,
        "model_file": path.name,
        "model_sha256": file_sha256(path),
        "hyperparameters": config.as_params(),
        "seed": seed,
        "features": list(FEATURES),
        "input_columns": input_columns(config),
        "target": TARGET,
        "label_mapping": label_mapping(),
        "schema_version": SCHEMA_VERSION,
        "train_rows": len(train),
        "train_data_sha256": content_sha256(train),
        "git_revision": git_revision(),
        "library_versions": library_versions(),
    }
