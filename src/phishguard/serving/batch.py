"""Batch scoring of tables and files: `phishguard predict INPUT -o OUTPUT`.

Files are read in chunks (`sources.iter_chunks`) and written chunk by chunk, so memory stays
constant however large the input. Rows are judged by the pipeline's own `quarantine`; invalid
rows go to a rejects file with their reasons, and scored + rejected = input rows.
The service's CSV endpoint uses `score_table` too.
"""

from __future__ import annotations

import logging
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from phishguard import PhishguardError
from phishguard.contract.checks import check_columns
from phishguard.contract.problems import RecordError, SchemaError, rows_error
from phishguard.contract.record_checks import frame_matrix
from phishguard.contract.schema import FEATURES, LABEL
from phishguard.data.sources import iter_chunks
from phishguard.data.validate import REASON, quarantine
from phishguard.io import CHUNK_ROWS, ChunkWriter
from phishguard.monitoring.prediction_log import PredictionLog
from phishguard.serving.scoring import Scorer, load_scorer

log = logging.getLogger(__name__)

ROW = "row"
RESULT_COLUMNS = ("phishing_probability", "is_phishing", "label")
OUTPUT_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class TableScores:
    """Scores of a table's valid rows and the rejected rows with reasons (both keep `row`)."""

    scored: pd.DataFrame
    rejected: pd.DataFrame
    matrix: np.ndarray
    """The scored rows' 30 features (float32, canonical order), in the order of `scored`."""

    def rejects_error(self) -> RecordError | None:
        """The rejected rows as one error (`row N: reason`, 1-based), or None if none were:
        for callers that answer all or nothing (an upload, the MLflow model)."""
        if not len(self.rejected):
            return None
        return rows_error(zip(self.rejected[ROW], self.rejected[REASON], strict=True))


def score_table(
    scorer: Scorer,
    table: pd.DataFrame,
    first_row: int = 1,
    source: str | None = None,
    request_id: str = "",
) -> TableScores:
    """Validate and score a table of the 30 features (a `Result` column is ignored).

    `row` numbers rows from `first_row` in input order. Raises `SchemaError` when the columns
    themselves are wrong (then no row can be judged). With a `source`, the scored rows are
    shown to the scorer's observers (the prediction log), row N as prediction
    `<request_id>-N`.
    """
    features = table.drop(columns=[LABEL], errors="ignore").reset_index(drop=True)
    check_columns(list(map(str, features.columns)), FEATURES)
    matrix = frame_matrix(features)
    if matrix is not None:  # the common case: every row clean, no per-row checks needed
        rows = np.arange(first_row, first_row + len(matrix))
        scored = scorer.decisions(matrix, source, request_id, indexes=rows)
        scored.insert(0, ROW, rows)
        return TableScores(scored, pd.DataFrame(columns=[ROW, *FEATURES, REASON]), matrix)
    checked = quarantine(features, FEATURES)
    rejected_at = checked.quarantined[ROW].to_numpy(dtype=np.int64) - 1
    keep = np.ones(len(features), dtype=bool)
    keep[rejected_at] = False
    matrix = checked.valid.loc[:, list(FEATURES)].to_numpy(dtype=np.float32)
    rows = np.flatnonzero(keep) + first_row
    scored = scorer.decisions(matrix, source, request_id, indexes=rows)
    scored.insert(0, ROW, rows)
    rejected = checked.quarantined.copy()
    rejected[ROW] = rejected_at + first_row
    return TableScores(scored, rejected.loc[:, [ROW, *FEATURES, REASON]], matrix)


@dataclass(frozen=True)
class BatchSummary:
    """Row counts of one batch run: `scored + rejected == rows`."""

    rows: int
    scored: int
    rejected: int


def predict_file(
    scorer: Scorer,
    source: Path,
    output: Path,
    rejects: Path,
    chunk_rows: int = CHUNK_ROWS,
    progress: bool | None = None,
) -> BatchSummary:
    """Score `source` (CSV or Parquet) into `output`, invalid rows into `rejects` (CSV or Parquet).

    Both files appear only when the whole input is scored (`ChunkWriter`); a file without rows
    is an error. The progress bar goes to stderr, by default only when stderr is a terminal.
    """
    if output.suffix not in OUTPUT_SUFFIXES:
        raise PhishguardError(f"{output}: output must end in .csv or .parquet")
    if output.resolve() in (source.resolve(), rejects.resolve()):
        raise PhishguardError(
            f"{output}: the output must differ from the input and the rejects file"
        )
    rows = 0
    batch_id = uuid.uuid4().hex  # the prediction log's id of this run
    show = sys.stderr.isatty() if progress is None else progress
    with (
        ChunkWriter(output, pd.DataFrame(columns=[ROW, *RESULT_COLUMNS])) as scored,
        ChunkWriter(rejects, pd.DataFrame(columns=[ROW, *FEATURES, REASON])) as rejected,
        tqdm(unit=" rows", disable=not show, file=sys.stderr, desc="scoring") as bar,
    ):
        for chunk in iter_chunks(source, chunk_rows):
            try:
                part = score_table(scorer, chunk, rows + 1, "batch", batch_id)
            except SchemaError as error:
                raise SchemaError(f"{source}: {error}") from None
            scored.write(part.scored)
            if len(part.rejected):
                rejected.write(part.rejected)
            rows += len(chunk)
            bar.update(len(chunk))
        if rows == 0:
            raise PhishguardError(f"{source}: no rows to score (a header but no rows?)")
        if scored.rows + rejected.rows != rows:  # cannot happen unless quarantine lost a row
            raise PhishguardError(
                f"row counts do not add up: {scored.rows} + {rejected.rows} != {rows}"
            )
    return BatchSummary(rows=rows, scored=scored.rows, rejected=rejected.rows)


def predict_command(
    source: str, output: str, rejects: str | None, model: str | None, chunk_rows: int
) -> BatchSummary:
    """`phishguard predict`: load the packaged model once and score a file."""

    if chunk_rows < 1:
        raise PhishguardError(f"--chunk-rows must be positive, got {chunk_rows}")
    out = Path(output)
    rejects_path = Path(rejects) if rejects else out.with_name(out.stem + ".rejects.csv")
    prediction_log = PredictionLog.from_env()
    scorer = load_scorer(Path(model) if model else None, nthread=2, observers=(prediction_log,))
    try:
        summary = predict_file(scorer, Path(source), out, rejects_path, chunk_rows)
    finally:
        prediction_log.close()
    log.info(
        "scored %d of %d rows into %s; %d rejected into %s",
        summary.scored,
        summary.rows,
        out,
        summary.rejected,
        rejects_path,
    )
    return summary
