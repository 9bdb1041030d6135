"""Feedback-store verdicts as `FeedbackStore.verdicts()` returns them, for tests of the
snapshot and the split (no store needed)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from phishguard.contract.schema import COLUMNS, SCHEMA_VERSION
from phishguard.data.load import content_ids

START = pd.Timestamp("2026-11-01T00:00:00Z")


def verdict_frame(
    rows: pd.DataFrame,
    minutes: Sequence[int] | None = None,
    submitter: str | None = "analyst",
    champion_phishing: Sequence[float | None] | None = None,
    review: Sequence[str | None] | None = None,
) -> pd.DataFrame:
    """`rows` (30 features + Result) as stored verdicts, received `minutes` after START
    (default 0, 1, 2, ...), ordered as the store orders them: by (received_at, verdict_id);
    with the served model's P(phishing) of each and a reviewer's decision (default none)."""
    minutes = list(range(len(rows))) if minutes is None else list(minutes)
    table = rows.loc[:, list(COLUMNS)].astype(np.int8).reset_index(drop=True)
    table["verdict_id"] = content_ids(table)
    table["received_at"] = [
        (START + pd.Timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%SZ") for m in minutes
    ]
    table["source"] = "test"
    table["note"] = None
    table["submitter"] = submitter
    table["prediction_id"] = None
    table["schema_version"] = SCHEMA_VERSION
    table["champion_phishing"] = list(champion_phishing or [None] * len(table))
    table["review"] = list(review or [None] * len(table))
    return table.sort_values(["received_at", "verdict_id"], ignore_index=True)
