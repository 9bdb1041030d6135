"""Every path the pipeline reads or writes, in one place (relative to the repository root).

`STAGES` says which of them each stage reads and writes; tests/config/test_paths.py proves
that dvc.yaml declares exactly these as the stage's data deps and outs, and that each stage
script touches no other.
"""

from dataclasses import dataclass
from pathlib import Path

ROOT = Path()
PARAMS = ROOT / "params.yaml"

LANDING_DIR = ROOT / "data" / "landing"
RAW_TABLE = ROOT / "data" / "raw" / "phishing.parquet"
VALID_TABLE = ROOT / "data" / "validated" / "phishing.parquet"
QUARANTINE_TABLE = ROOT / "data" / "quarantine" / "quarantine.csv"
TRAIN_TABLE = ROOT / "data" / "processed" / "train.parquet"
TEST_TABLE = ROOT / "data" / "processed" / "test.parquet"
# Learning from analysts (issue 13): the newest feedback rows, held out of training.
FEEDBACK_HOLDOUT = ROOT / "data" / "processed" / "feedback_holdout.parquet"

MODEL_DIR = ROOT / "models" / "model"
OPERATING_POINT = ROOT / "models" / "operating_point.json"
# Out-of-fold P(phishing) of the training split: the reference of prediction drift.
REFERENCE_SCORES = ROOT / "models" / "reference_scores.parquet"

REPORTS = ROOT / "reports"
INGEST_REPORT = REPORTS / "ingest.json"
VALIDATION_REPORT = REPORTS / "validation.json"
SPLIT_REPORT = REPORTS / "split.json"
METRICS = REPORTS / "metrics.json"
# the DVC metrics: the few numbers `dvc exp show` compares (phishguard.modeling.headline)
HEADLINE = REPORTS / "headline.json"
PLOTS = REPORTS / "plots"
PLOT_FILES = tuple(
    PLOTS / name
    for name in ("roc.json", "precision_recall.json", "calibration.json", "confusion.csv")
)

# Serving (issue 5): the package stage's BentoML model store, inside the repository.
BENTOML_HOME = ROOT / "models" / "bentoml"
PACKAGE_NAME = "phishguard"
PACKAGE_STORE = BENTOML_HOME / "models" / PACKAGE_NAME
# The manifest of the package the pipeline offers the gate (the package stage's DVC output):
# content-derived, so every clone hashes it the same, and a clone without it re-runs the stage,
# which builds the BentoML store above.
PACKAGE_CANDIDATE = ROOT / "models" / "candidate.json"

# Monitoring (issue 12): the prediction log's default directory ($PHISHGUARD_PREDICTION_LOG).
PREDICTION_LOG_DIR = ROOT / "data" / "predictions"
DRIFT_REPORT = REPORTS / "drift.json"
# Per-feature value shares, one file a side, drawn as one bar chart by `dvc plots show`.
DRIFT_PLOT_FILES = (PLOTS / "drift_reference.csv", PLOTS / "drift_current.csv")

# Feedback (issue 13): analysts' verdicts, the embedded store's folder (git-ignored), and the
# champion/challenger decision of the package stage.
FEEDBACK_DIR = ROOT / "data" / "feedback"
PROMOTION_REPORT = REPORTS / "promotion.json"

# API keys (issue 18): the default key store, git-ignored ($PHISHGUARD_KEYS names another).
KEYS_FILE = ROOT / ".phishguard" / "api_keys.json"


@dataclass(frozen=True)
class StageIO:
    """The data a pipeline stage reads, the outputs it writes (DVC's outs), and what it writes
    that DVC does not hash (`unhashed`: state no clone could reproduce, see dvc.yaml)."""

    reads: tuple[Path, ...]
    writes: tuple[Path, ...]
    unhashed: tuple[Path, ...] = ()


STAGES: dict[str, StageIO] = {
    "ingest": StageIO(reads=(LANDING_DIR,), writes=(RAW_TABLE, INGEST_REPORT)),
    "validate": StageIO(
        reads=(RAW_TABLE,), writes=(VALID_TABLE, QUARANTINE_TABLE, VALIDATION_REPORT)
    ),
    "featurize": StageIO(
        reads=(VALID_TABLE,), writes=(TRAIN_TABLE, TEST_TABLE, FEEDBACK_HOLDOUT, SPLIT_REPORT)
    ),
    "train": StageIO(reads=(TRAIN_TABLE,), writes=(MODEL_DIR,)),
    "evaluate": StageIO(
        reads=(TRAIN_TABLE, TEST_TABLE, FEEDBACK_HOLDOUT, MODEL_DIR),
        writes=(OPERATING_POINT, REFERENCE_SCORES, *PLOT_FILES, METRICS, HEADLINE),
    ),
    # The champion/challenger gate scores the served package on the same splits as evaluate.
    "package": StageIO(
        reads=(
            MODEL_DIR,
            OPERATING_POINT,
            METRICS,
            TRAIN_TABLE,
            TEST_TABLE,
            FEEDBACK_HOLDOUT,
            SPLIT_REPORT,
        ),
        writes=(PACKAGE_CANDIDATE,),
        unhashed=(PACKAGE_STORE, PROMOTION_REPORT),
    ),
    "monitor": StageIO(
        reads=(PREDICTION_LOG_DIR, TRAIN_TABLE, REFERENCE_SCORES),
        writes=(DRIFT_REPORT, *DRIFT_PLOT_FILES),
    ),
}
