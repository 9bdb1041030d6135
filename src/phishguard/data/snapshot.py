"""The training data as one deterministic snapshot: the base rows, then the analysts' verdicts.

With `data.feedback: true`, `phishguard fetch` lands this table as the one file `ingest`
reads. Its rows: every base row in the source's order, then every feedback verdict once per
submitter who sent it (`FeedbackStore.assertions()`) sorted by (received_at, verdict_id). Its
columns: the base table's columns (the 30 features and `Result`, canonical: int8, or text where
a value is odd, for validate to quarantine with its reason), `origin` ("base" | "feedback"),
and `received_at`, `submitter`, `verdict_id`, `champion_phishing`, `review` (null on base rows;
`phishguard.feedback.trust` weighs them in featurize).

The bytes depend only on those rows: the Parquet write options are pinned here and no
timestamp or pandas metadata is written, so fetching again, or re-sending verdicts the store
already holds, leaves the file byte for byte as it was and DVC sees no change. (The footer
names the pyarrow version, so a pyarrow upgrade rewrites the file once.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from phishguard.contract.schema import content_sha256
from phishguard.data.ingest import canonical_table
from phishguard.data.origin import (
    BASE,
    FEEDBACK,
    FEEDBACK_COLUMNS,
    ORIGIN,
    PROVENANCE_COLUMNS,
    RECEIVED_AT,
    SUBMITTER,
    VERDICT_ID,
)
from phishguard.data.sources import iter_chunks
from phishguard.io import atomic_path

# Pinned so the same rows always give the same bytes, whatever pyarrow's defaults become.
WRITE_OPTIONS = {
    "version": "2.6",
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": False,
    "write_statistics": False,
    "data_page_version": "1.0",
    "row_group_size": 1 << 20,
}
NO_SUBMITTER = "(none)"
# The Parquet footer key naming the kind of base source ("mongodb", or the landed file's name),
# so ingest tells a new source from a cut-off version of the same one.
BASE_SOURCE_KEY = b"phishguard.base_source"


@dataclass(frozen=True)
class SnapshotSummary:
    """Rows of the landed snapshot, by origin."""

    base_rows: int
    feedback_rows: int


def snapshot_table(base: pd.DataFrame, verdicts: pd.DataFrame) -> pd.DataFrame:
    """The snapshot of `base` (any source's rows, unjudged) and the store's `verdicts`.

    `verdicts` has the feedback store's columns (at least the 30 features, `Result`,
    `received_at`, `submitter`, `verdict_id`). Feedback rows get the base table's columns: a
    column only the base has is null for them, and the base table's columns decide (validate
    then reports a base column that is missing or unknown, as without feedback).
    """
    base = canonical_table(base)
    if ORIGIN in base.columns:
        raise ValueError(f"the base table already has a column {ORIGIN!r}")
    feedback = verdicts.sort_values([RECEIVED_AT, VERDICT_ID], kind="stable").reset_index(drop=True)
    parts = {}
    for name in base.columns:
        integral = base[name].dtype == np.int8
        if name not in feedback.columns:
            values = pd.Series(pd.NA, index=feedback.index, dtype="string")
        else:
            values = feedback[name].astype(np.int8 if integral else "string")
        parts[name] = pd.concat([base[name], values], ignore_index=True)
        if not integral:
            parts[name] = parts[name].astype("string")
    parts[ORIGIN] = pd.array([BASE] * len(base) + [FEEDBACK] * len(feedback), dtype="string")
    for name in FEEDBACK_COLUMNS:
        given = feedback[name] if name in feedback.columns else pd.Series(pd.NA, feedback.index)
        parts[name] = pd.concat(
            [
                pd.Series(pd.NA, index=base.index, dtype="string"),
                given.astype("string"),
            ],
            ignore_index=True,
        )
    return pd.DataFrame(parts)


def snapshot_bytes(table: pd.DataFrame, base_source: str) -> bytes:
    """`table` as Parquet with the pinned options: int8 columns stay int8, the rest is text;
    the only metadata is `base_source`."""
    schema = pa.schema(
        [
            (name, pa.int8() if table[name].dtype == np.int8 else pa.string())
            for name in table.columns
        ]
    )
    arrow = pa.Table.from_pandas(table, schema=schema, preserve_index=False)
    sink = pa.BufferOutputStream()
    metadata = {BASE_SOURCE_KEY: base_source.encode()}
    pq.write_table(arrow.replace_schema_metadata(metadata), sink, **WRITE_OPTIONS)
    return sink.getvalue().to_pybytes()


def write_snapshot(
    base_file: Path, verdicts: pd.DataFrame, destination: Path, base_source: str
) -> SnapshotSummary:
    """Write the snapshot of the landed `base_file` and `verdicts` to `destination`.

    `base_source` says what kind of source the base came from ("mongodb", or the landed file's
    name); `base_source_of` reads it back. An unchanged snapshot is not rewritten (same bytes, same modification time).
    """
    base = pd.concat(list(iter_chunks(base_file)), ignore_index=True)
    table = snapshot_table(base, verdicts)
    data = snapshot_bytes(table, base_source)
    if not (destination.exists() and destination.read_bytes() == data):
        destination.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(destination) as part:
            part.write_bytes(data)
    return SnapshotSummary(base_rows=len(base), feedback_rows=len(verdicts))


def parts_report(table: pd.DataFrame) -> dict[str, object]:
    """For reports/ingest.json: rows by origin, verdicts by submitter, a hash of each part.

    Each part's hash is `content_sha256` of its rows: the base part without the origin
    columns (so it equals the `content_sha256` the same base data has when landed without
    feedback, and changes only when the base data does), the feedback part with them.
    """
    origin = table[ORIGIN].astype("string")
    base = table.loc[origin == BASE].drop(columns=list(PROVENANCE_COLUMNS))
    feedback = table.loc[origin == FEEDBACK]
    submitters = feedback[SUBMITTER].astype("string").fillna(NO_SUBMITTER).value_counts()
    return {
        "by_source": {BASE: len(base), FEEDBACK: len(feedback)},
        "by_submitter": {str(k): int(v) for k, v in sorted(submitters.items())},
        "part_sha256": {
            BASE: content_sha256(base.reset_index(drop=True)),
            FEEDBACK: content_sha256(feedback.reset_index(drop=True)),
        },
    }


def base_source_of(landed: Path) -> str | None:
    """The `base_source` a snapshot was written with; None for any other landed file."""
    if landed.suffix != ".parquet":
        return None
    metadata = pq.read_schema(landed).metadata or {}
    value = metadata.get(BASE_SOURCE_KEY)
    return None if value is None else value.decode()


def is_snapshot(columns: list[str]) -> bool:
    """Whether a table with `columns` is a snapshot (carries the origin columns)."""
    return all(name in columns for name in PROVENANCE_COLUMNS)
