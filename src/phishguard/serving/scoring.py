"""Scoring with the packaged model bundle: decisions at its threshold, results, explanations.

The service, the batch CLI, the MLflow model and the benchmarks all score through a `Scorer`
over the one verified bundle load (`phishguard.modeling.bundle.load`); they check their input
with `phishguard.contract.record_checks` first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from phishguard import PhishguardError, paths
from phishguard.contract.schema import CLASS_NAMES
from phishguard.modeling import bundle
from phishguard.modeling.bundle import Bundle, PackageError


def packaged_model_dir() -> Path:
    """The folder of the served package, `phishguard:latest`, through BentoML's public API.

    The store is the one BENTOML_HOME names: this checkout's `models/bentoml/` unless set
    otherwise (`phishguard.bentoml_home`).
    """
    # Imported here: bentoml costs ~1.5 s to import, which `phishguard --help` and a
    # `phishguard predict --model DIR` run should not pay.
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return Path(bentoml.models.get(f"{paths.PACKAGE_NAME}:latest").path)
    except NotFound:
        raise PackageError(
            f"no packaged model in {os.environ.get('BENTOML_HOME', '~/bentoml')}; "
            "run `make pipeline` (package stage)"
        ) from None


class ExplanationUnavailableError(PhishguardError, ValueError):
    """The packaged model is not XGBoost, so it has no per-feature contributions."""


class Observer(Protocol):
    """Sees every scored batch: the prediction log (`monitoring.prediction_log.PredictionLog`)
    and the service's live metrics (`serving.live_metrics.LiveMetrics`)."""

    def record(
        self,
        features: np.ndarray,
        probabilities: np.ndarray,
        threshold: float,
        *,
        source: str,
        request_id: str,
        model_version: str,
        model_sha256: str,
        indexes: np.ndarray | None = None,
        caller: str | None = None,
    ) -> object: ...


@dataclass(frozen=True)
class Scorer:
    """An evaluated model bundle, scored at its operating threshold.

    Every method takes a float32 matrix of the 30 features in canonical order; the bundle
    builds the model's inputs from it as its manifest's `input_columns` say. Scoring with a
    `source` (`api`, `csv`, `batch`) and a request id shows the batch to every observer.
    """

    bundle: Bundle
    observers: tuple[Observer, ...] = ()

    @property
    def threshold(self) -> float:
        return float(self.bundle.manifest["threshold"])

    @property
    def metadata(self) -> dict[str, Any]:
        """The package manifest."""
        return self.bundle.manifest

    def probability(
        self,
        matrix: np.ndarray,
        source: str | None = None,
        request_id: str = "",
        *,
        indexes: np.ndarray | None = None,
        caller: str | None = None,
    ) -> np.ndarray:
        """P(phishing) for each row of a float32 matrix in canonical feature order; with a
        `source`, the batch is shown to the observers (which never raise), each row as
        prediction `<request_id>-<index>` (`indexes`: default its position in the matrix),
        scored for `caller` (an API key's name, or None)."""
        proba = self.bundle.probability(matrix)
        if source is not None:
            self.observe(matrix, proba, source, request_id, indexes=indexes, caller=caller)
        return proba

    def observe(
        self,
        matrix: np.ndarray,
        proba: np.ndarray,
        source: str,
        request_id: str,
        *,
        indexes: np.ndarray | None = None,
        caller: str | None = None,
    ) -> None:
        """Show a scored batch to every observer (for a caller that scored it without a
        `source` and answers only now: an upload is answered all or nothing)."""
        if not len(proba):
            return
        for observer in self.observers:
            observer.record(
                matrix,
                proba,
                self.threshold,
                source=source,
                request_id=request_id,
                model_version=self.bundle.version,
                model_sha256=self.metadata["model_sha256"],
                indexes=indexes,
                caller=caller,
            )

    def decisions(
        self,
        matrix: np.ndarray,
        source: str | None = None,
        request_id: str = "",
        *,
        indexes: np.ndarray | None = None,
    ) -> pd.DataFrame:
        """Columns phishing_probability, is_phishing and label, one row per matrix row."""
        proba = self.probability(matrix, source, request_id, indexes=indexes)
        flagged = proba >= self.threshold
        return pd.DataFrame(
            {
                "phishing_probability": proba,
                "is_phishing": flagged,
                "label": np.where(flagged, CLASS_NAMES[1], CLASS_NAMES[0]),
            }
        )

    def results(
        self,
        matrix: np.ndarray,
        source: str | None = None,
        request_id: str = "",
        *,
        caller: str | None = None,
    ) -> list[dict[str, Any]]:
        """One result per row: probability, decision at the stored threshold, class name, and
        with a `request_id`, the row's `prediction_id` (`<request_id>-<index in the request>`,
        as the prediction log records it, and as `POST /feedback` accepts it)."""
        proba = self.probability(matrix, source, request_id, caller=caller)
        flagged = proba >= self.threshold
        results = [
            {
                "phishing_probability": p,
                "is_phishing": f,
                "label": CLASS_NAMES[1] if f else CLASS_NAMES[0],
            }
            for p, f in zip(proba.tolist(), flagged.tolist(), strict=True)
        ]
        if request_id:
            for index, result in enumerate(results):
                result["prediction_id"] = prediction_id(request_id, index)
        return results

    def results_json(
        self,
        matrix: np.ndarray,
        source: str | None = None,
        request_id: str = "",
        *,
        caller: str | None = None,
    ) -> str:
        """`{"results": [...]}` as `results` gives it, formatted directly (no dicts, no encoder).

        `repr` of a float is the shortest round-tripping text, as `json.dumps` writes it.
        """
        proba = self.probability(matrix, source, request_id, caller=caller)
        flagged = (proba >= self.threshold).tolist()
        names = {
            True: f'true,"label":"{CLASS_NAMES[1]}"',
            False: f'false,"label":"{CLASS_NAMES[0]}"',
        }
        pairs = zip(proba.tolist(), flagged, strict=True)
        if request_id:
            # The request id is a hex uuid: nothing in it needs escaping.
            items = [
                f'{{"phishing_probability":{p!r},"is_phishing":{names[f]},'
                f'"prediction_id":"{request_id}-{i}"}}'
                for i, (p, f) in enumerate(pairs)
            ]
        else:
            items = [f'{{"phishing_probability":{p!r},"is_phishing":{names[f]}}}' for p, f in pairs]
        return '{"results":[' + ",".join(items) + "]}"

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """XGBoost's SHAP contributions (log-odds of phishing), one column per input + bias."""
        if not self.bundle.is_xgboost:
            raise ExplanationUnavailableError(
                f"explanations need an XGBoost model; the packaged model is "
                f"{self.metadata.get('model_name')!r}"
            )
        from xgboost import DMatrix

        names = list(self.bundle.input_columns)
        return self.bundle.model.predict(
            DMatrix(self.bundle.inputs(matrix), feature_names=names), pred_contribs=True
        )

    def explain(self, matrix: np.ndarray, top: int = 5) -> list[list[dict[str, Any]]]:
        """Per row, the `top` inputs that moved the score most (positive = towards phishing).

        Inputs are named as in the manifest's `input_columns`: the 30 features and, for a model
        that takes them, the signal counts.
        """
        names = self.bundle.input_columns
        contribs = self.contributions(matrix)[:, : len(names)]
        inputs = self.bundle.inputs(matrix)
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


def prediction_id(request_id: str, index: int) -> str:
    """The id of the prediction for row `index` of request `request_id`."""
    return f"{request_id}-{index}"


def load_scorer(
    directory: Path | None = None, nthread: int = 1, observers: tuple[Observer, ...] = ()
) -> Scorer:
    """The verified package in `directory` (default: the served one), as a `Scorer`;
    XGBoost with `nthread` predict threads (one for online scoring: `bundle.load`)."""
    loaded = bundle.load(packaged_model_dir() if directory is None else directory, nthread)
    return Scorer(loaded, observers)
