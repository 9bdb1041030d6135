"""Where a row of the training snapshot came from: the column names, shared by fetch (which
writes them), ingest and validate (which carry them) and featurize (which splits by them).

A landed file without these columns (a plain CSV, ARFF, ...) is all base rows.
"""

ORIGIN = "origin"
BASE = "base"
FEEDBACK = "feedback"

RECEIVED_AT = "received_at"
SUBMITTER = "submitter"
VERDICT_ID = "verdict_id"
# Null on base rows.
FEEDBACK_COLUMNS = (RECEIVED_AT, SUBMITTER, VERDICT_ID)
PROVENANCE_COLUMNS = (ORIGIN, *FEEDBACK_COLUMNS)
