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
# The served model's P(phishing) of the verdict's record when it arrived (null: none served).
CHAMPION_PHISHING = "champion_phishing"
# A reviewer's decision on the verdict: "approved", "rejected", or null (not reviewed).
REVIEW = "review"
# Null on base rows. A feedback row is one submitter's verdict: `received_at` is the last time
# that submitter sent it (phishguard.feedback.trust weighs them).
FEEDBACK_COLUMNS = (RECEIVED_AT, SUBMITTER, VERDICT_ID, CHAMPION_PHISHING, REVIEW)
PROVENANCE_COLUMNS = (ORIGIN, *FEEDBACK_COLUMNS)
