"""One typed dataclass per stage section of params.yaml (the `model` section: `models.py`).

Each stage loads only its own sections with `phishguard.config.params.load_section`; an
unknown or missing key is an error naming it.
"""

from __future__ import annotations

from dataclasses import dataclass

from phishguard.config.params import ParamsError


@dataclass(frozen=True)
class IngestParams:
    """`ingest`: how much smaller than the last ingest a new landed file of the same source
    may be before the stage refuses it (a cut-off download must not retrain the model)."""

    max_row_drop: float

    def __post_init__(self) -> None:
        if not 0 <= self.max_row_drop <= 1:
            raise ParamsError(f"ingest.max_row_drop must be in [0, 1], got {self.max_row_drop}")


@dataclass(frozen=True)
class ValidateParams:
    """`validate`: the largest fraction of input rows that may be quarantined."""

    max_quarantine_fraction: float


@dataclass(frozen=True)
class SplitParams:
    """`split`: the held-out test fraction and the split's seed."""

    test_size: float
    seed: int


@dataclass(frozen=True)
class TrainParams:
    """`train`: the model's seed."""

    seed: int


@dataclass(frozen=True)
class Gate:
    """`evaluate.gate`: the promotion gate on the held-out test split."""

    min_roc_auc: float
    min_accuracy: float
    max_fpr: float


@dataclass(frozen=True)
class EvaluateParams:
    """`evaluate`: grouped CV, the operating point's target FPR, bootstrap intervals, gate."""

    cv_folds: int
    cv_workers: int
    seed: int
    target_fpr: float
    bootstrap_resamples: int
    gate: Gate
