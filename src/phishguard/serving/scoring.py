"""Scoring with the packaged model: load it once (sha256-verified), predict, explain.

The service, the batch CLI and the benchmark all score through this module, so they share one
model loader; they check their input with `phishguard.contract.record_checks` first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from phishguard import PhishguardError, paths
from phishguard.contract.schema import CLASS_NAMES, FEATURES
from phishguard.modeling.features import SIGNAL_COUNTS, with_signal_counts
from phishguard.modeling.package_checks import PackageError, verify_package


def latest_package(store: Path = paths.PACKAGE_STORE) -> Path:
    """The directory of the newest packaged model in a BentoML store (no bentoml import)."""
    pointer = store / "latest"
    if not pointer.is_file():
        raise PackageError(f"no packaged model in {store}; run `make pipeline` (package stage)")
    return store / pointer.read_text().strip()


class ExplanationUnavailableError(PhishguardError, ValueError):
    """The packaged model is not XGBoost, so it has no per-feature contributions."""


@dataclass(frozen=True)
class Scorer:
    """A loaded model with its operating threshold and package metadata.

    `model` is an XGBoost `Booster` (scored with `inplace_predict`, explained with its own
    contributions) or a fitted scikit-learn estimator loaded with skops. `engineered` says
    whether the model takes the two signal counts after the 30 features.
    """

    model: Any
    threshold: float
    metadata: dict[str, Any]
    engineered: bool = False

    @property
    def is_xgboost(self) -> bool:
        return hasattr(self.model, "inplace_predict")

    @property
    def input_names(self) -> tuple[str, ...]:
        return (*FEATURES, *SIGNAL_COUNTS) if self.engineered else FEATURES

    def inputs(self, matrix: np.ndarray) -> np.ndarray:
        """The model's input from a float32 matrix of the 30 features in canonical order."""
        return with_signal_counts(matrix) if self.engineered else matrix

    def probability(self, matrix: np.ndarray) -> np.ndarray:
        """P(phishing) for each row of a float32 matrix in canonical feature order."""
        if len(matrix) == 0:
            return np.empty(0, dtype=np.float32)
        if self.is_xgboost:
            return self.model.inplace_predict(self.inputs(matrix), validate_features=False)
        return self.model.predict_proba(self.inputs(matrix))[:, 1]

    def decisions(self, matrix: np.ndarray) -> pd.DataFrame:
        """Columns phishing_probability, is_phishing and label, one row per matrix row."""
        proba = self.probability(matrix)
        flagged = proba >= self.threshold
        return pd.DataFrame(
            {
                "phishing_probability": proba,
                "is_phishing": flagged,
                "label": np.where(flagged, CLASS_NAMES[1], CLASS_NAMES[0]),
            }
        )

    def results(self, matrix: np.ndarray) -> list[dict[str, Any]]:
        """One result per row: probability, decision at the stored threshold, class name."""
        proba = self.probability(matrix)
        flagged = proba >= self.threshold
        return [
            {
                "phishing_probability": p,
                "is_phishing": f,
                "label": CLASS_NAMES[1] if f else CLASS_NAMES[0],
            }
            for p, f in zip(proba.tolist(), flagged.tolist(), strict=True)
        ]

    def results_json(self, matrix: np.ndarray) -> str:
        """`{"results": [...]}` as `results` gives it, formatted directly (no dicts, no encoder).

        `repr` of a float is the shortest round-tripping text, as `json.dumps` writes it.
        """
        proba = self.probability(matrix)
        flagged = (proba >= self.threshold).tolist()
        names = {
            True: f'true,"label":"{CLASS_NAMES[1]}"}}',
            False: f'false,"label":"{CLASS_NAMES[0]}"}}',
        }
        items = [
            f'{{"phishing_probability":{p!r},"is_phishing":{names[f]}'
            for p, f in zip(proba.tolist(), flagged, strict=True)
        ]
        return '{"results":[' + ",".join(items) + "]}"

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """XGBoost's SHAP contributions (log-odds of phishing), one column per input + bias."""
        if not self.is_xgboost:
            raise ExplanationUnavailableError(
                f"explanations need an XGBoost model; the packaged model is "
                f"{self.metadata.get('model_name')!r}"
            )
        from xgboost import DMatrix

        names = list(self.input_names)
        return self.model.predict(
            DMatrix(self.inputs(matrix), feature_names=names), pred_contribs=True
        )

    def explain(self, matrix: np.ndarray, top: int = 5) -> list[list[dict[str, Any]]]:
        """Per row, the `top` inputs that moved the score most (positive = towards phishing).

        Inputs are the 30 features and, for a model that takes them, the signal counts.
        """
        names = self.input_names
        contribs = self.contributions(matrix)[:, : len(names)]
        inputs = self.inputs(matrix)
        order = np.argsort(-np.abs(contribs), axis=1, kind="stable")[:, :top]
        return [
            [
                {
                    "feature": names[j],
                    "value": int(inputs[i, j]),
                    "contribution": round(float(contribs[i, j]), 6),
                }
                for j in order[i]
            ]
            for i in range(len(matrix))
        ]


def load_scorer(directory: Path | None = None, nthread: int = 1) -> Scorer:
    """Load a packaged model, verifying its sha256; one predict thread by default.

    One thread is right for online scoring: on 2 cores XGBoost's 2-thread single-row predict
    was ~50x slower than one thread (see the brief). XGBoost models are read from their native
    format, scikit-learn models with skops against the allow-list; never a pickle.
    """
    directory = latest_package() if directory is None else directory
    metadata = verify_package(directory)
    model_path = directory / metadata["model_file"]
    if model_path.suffix == ".ubj":
        from xgboost import Booster

        model = Booster(params={"nthread": nthread})
        model.load_model(model_path)
        width = model.num_features()
    else:
        from phishguard.modeling.zoo import load_model

        model = load_model(model_path, metadata["model_sha256"])
        width = int(model.n_features_in_)
    if width not in (len(FEATURES), len(FEATURES) + len(SIGNAL_COUNTS)):
        raise PackageError(f"{model_path}: the model takes {width} inputs; expected 30 or 32")
    return Scorer(
        model=model,
        threshold=float(metadata["threshold"]),
        metadata=metadata,
        engineered=width > len(FEATURES),
    )
