"""Every path the pipeline reads or writes, in one place (relative to the repository root)."""

from pathlib import Path

ROOT = Path()
PARAMS = ROOT / "params.yaml"

LANDING_DIR = ROOT / "data" / "landing"
RAW_TABLE = ROOT / "data" / "raw" / "phishing.parquet"
VALID_TABLE = ROOT / "data" / "validated" / "phishing.parquet"
QUARANTINE_TABLE = ROOT / "data" / "quarantine" / "quarantine.csv"
TRAIN_TABLE = ROOT / "data" / "processed" / "train.parquet"
TEST_TABLE = ROOT / "data" / "processed" / "test.parquet"

MODEL_DIR = ROOT / "models" / "model"
MODEL_METADATA = MODEL_DIR / "metadata.json"
OPERATING_POINT = ROOT / "models" / "operating_point.json"

REPORTS = ROOT / "reports"
INGEST_REPORT = REPORTS / "ingest.json"
VALIDATION_REPORT = REPORTS / "validation.json"
SPLIT_REPORT = REPORTS / "split.json"
METRICS = REPORTS / "metrics.json"
PLOTS = REPORTS / "plots"

# Serving (issue 5): the package stage's BentoML model store, inside the repository.
BENTOML_HOME = ROOT / "models" / "bentoml"
PACKAGE_NAME = "phishguard"
PACKAGE_STORE = BENTOML_HOME / "models" / PACKAGE_NAME

# Monitoring (issue 12): the prediction log's default directory ($PHISHGUARD_PREDICTION_LOG).
PREDICTION_LOG_DIR = ROOT / "data" / "predictions"
