"""Fitting a configured model on the featurized training table, and saving it as a bundle."""

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
from phishguard.modeling import bundle
from phishguard.modeling.features import table_inputs, value_shares
from phishguard.modeling.zoo import build_model, input_columns
from phishguard.provenance import library_versions


def fit_model(config: ModelConfig, seed: int, train: pd.DataFrame) -> Any:
    """Build the estimator `config` describes and fit it on the featurized training table."""
    model = build_model(config, seed)
    model.fit(table_inputs(train, input_columns(config)), train[TARGET].to_numpy())
    return model


def train_and_save(
    config: ModelConfig, seed: int, train: pd.DataFrame, directory: Path
) -> dict[str, Any]:
    """Fit on the featurized `train` table, write the bundle into `directory`, and return its
    manifest."""
    model = fit_model(config, seed, train)
    return bundle.save(
        model,
        directory,
        {
            "model_name": config.name,
            "hyperparameters": config.as_params(),
            "seed": seed,
            "features": list(FEATURES),
            "input_columns": input_columns(config),
            "target": TARGET,
            "label_mapping": label_mapping(),
            "schema_version": SCHEMA_VERSION,
            "train_rows": len(train),
            "train_data_sha256": content_sha256(train),
            # what the service's live drift gauge compares the scored records with
            "reference_shares": value_shares(train),
            # No git revision: it changes with every commit, so the model folder's hash would
            # too, and no clone could reproduce dvc.lock. dvc.lock binds this output to its
            # commit; the MLflow tags, /metadata and `make bento` read the revision at run time.
            "library_versions": library_versions(),
        },
    )
