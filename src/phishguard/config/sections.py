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
class TrustParams:
    """`split.trust`: when one key's verdicts are held for confirmation, and its share cap."""

    dispute_probability: float
    """A lone verdict is held when the champion gave the other label at least this P."""
    max_submitter_share: float
    """A submitter's unconfirmed verdicts used in one retrain: at most this fraction of the
    base training rows."""

    def __post_init__(self) -> None:
        if not 0.5 <= self.dispute_probability <= 1:
            raise ParamsError(
                f"split.trust.dispute_probability must be in [0.5, 1], got "
                f"{self.dispute_probability}"
            )
        if not 0 <= self.max_submitter_share <= 1:
            raise ParamsError(
                f"split.trust.max_submitter_share must be in [0, 1], got {self.max_submitter_share}"
            )


@dataclass(frozen=True)
class SplitParams:
    """`split`: the held-out test fraction, the split's seed, the newest fraction of trusted
    feedback feature vectors held out of training, and the feedback trust rules."""

    test_size: float
    seed: int
    feedback_holdout_fraction: float
    trust: TrustParams


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


@dataclass(frozen=True)
class FeatureThresholds:
    alpha: float
    """False-discovery rate of the Benjamini–Hochberg correction over the 30 chi-square tests."""
    min_psi: float
    """A feature drifts only when its PSI is at least this (0.1 is the usual 'moderate shift')."""
    psi_pseudo_count: float
    """Added to every value's count before PSI, so a value absent on one side stays finite."""


@dataclass(frozen=True)
class JointThresholds:
    max_unseen_excess: float
    """Drift when the share of never-seen vectors exceeds the expected share by more than this."""


@dataclass(frozen=True)
class PredictionThresholds:
    bins: int
    """PSI bins of the probabilities: quantiles of the reference scores."""
    max_psi: float
    """Drift when the probabilities' PSI reaches this."""
    max_alert_rate_change: float
    """Drift when the alert rate moves this far (absolute) from the reference scores' rate."""


@dataclass(frozen=True)
class MonitorParams:
    """`monitor`: the thresholds of the drift check (`phishguard drift`, the monitor stage)."""

    min_rows: int
    """Below this many valid rows the batch is too small to judge: no drift is reported."""
    features: FeatureThresholds
    joint: JointThresholds
    prediction: PredictionThresholds


@dataclass(frozen=True)
class PromotionParams:
    """`promotion`: the package stage's champion/challenger gate (`phishguard.modeling.promotion`).

    The newly evaluated model (challenger) replaces the served one (champion) only when it
    loses no more than these margins against it on the base test split, and does at least as
    well on the feedback holdout once that holdout is big enough to judge.
    """

    max_roc_auc_drop: float
    """Largest allowed fall of the test split's ROC-AUC (challenger − champion ≥ −this)."""
    max_recall_drop: float
    """Largest allowed fall of the test split's recall, each model at its own operating
    threshold (the one chosen for the target FPR on its training split's CV)."""
    min_holdout_rows: int
    """The feedback-holdout rule applies only from this many holdout rows."""
    min_holdout_gain: float
    """Smallest required gain of accuracy on the feedback holdout (0: at least as good)."""
    max_flip_ratio: float
    """Behavioural check: on perturbed base test copies, the challenger may flip the champion's
    decisions at most this many times as often as a twin retrained (another seed) without the
    single-key verdicts does..."""
    max_flip_excess: float
    """... plus this share of the copies."""

    def __post_init__(self) -> None:
        for name in ("max_roc_auc_drop", "max_recall_drop"):
            if not 0 <= getattr(self, name) <= 1:
                raise ParamsError(f"promotion.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.min_holdout_rows < 1:
            raise ParamsError(
                f"promotion.min_holdout_rows must be at least 1, got {self.min_holdout_rows}"
            )
        if not -1 <= self.min_holdout_gain <= 1:
            raise ParamsError(
                f"promotion.min_holdout_gain must be in [-1, 1], got {self.min_holdout_gain}"
            )
