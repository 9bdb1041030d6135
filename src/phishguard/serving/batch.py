"""Batch scoring of tables and files: `phishguard predict INPUT -o OUTPUT`.

Files are read in chunks (`sources.iter_chunks`; typed Parquet as Arrow batches,
`sources.iter_parquet_batches`) and written chunk by chunk, so memory stays constant however
large the input. Each chunk is judged by the check engine (`judging.judge`): its valid rows are
scored, and invalid rows go to a rejects file with their reasons; scored + rejected = input
rows. The model scores on one thread, and the output is built as an Arrow table (no pandas)
for Parquet. The service's CSV endpoint uses `score_table` too.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from phishguard import PhishguardError
from phishguard.contract.problems import RecordError, SchemaError, rows_error
from phishguard.contract.schema import CLASS_NAMES, FEATURES
from phishguard.data.sources import iter_chunks, iter_parquet_batches, parquet_columns
from phishguard.data.validate import REASON, ROW
from phishguard.io import CHUNK_ROWS, ChunkWriter
from phishguard.monitoring.prediction_log import PredictionLog
from phishguard.serving.judging import check_parquet_columns, judge
from phishguard.serving.scoring import Scorer, load_scorer

log = logging.getLogger(__name__)

RESULT_COLUMNS = ("phishing_probability", "is_phishing", "label")
OUTPUT_SUFFIXES = (".csv", ".parquet")
_LABELS = pa.array([CLASS_NAMES[0], CLASS_NAMES[1]], pa.large_string())  # by is_phishing


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
    judged = judge(table)
    rows = judged.kept + first_row
    scored = scorer.decisions(judged.matrix, source, request_id, indexes=rows)
    scored.insert(0, ROW, rows)
    return TableScores(scored, judged.rejects(first_row), judged.matrix)


@dataclass(frozen=True)
class ScoredChunk:
    """One chunk scored: the output's rows (`scores_table`), the rejected rows with reasons
    (None when there are none) and how many rows the chunk had."""

    scores: pa.Table
    rejects: pd.DataFrame | None
    rows: int


def score_chunks(
    scorer: Scorer,
    chunks: Iterable[pa.RecordBatch | pd.DataFrame],
    first_row: int = 1,
    source: str | None = None,
    request_id: str = "",
) -> Iterator[ScoredChunk]:
    """Judge and score a reader's chunks in order, rows numbered from `first_row`: the one
    path of single-process `phishguard predict` and of each Dask partition. With a `source`,
    row N is shown to the observers as prediction `<request_id>-N`."""
    at = first_row
    for chunk in chunks:
        judged = judge(chunk)
        numbers = judged.kept + at
        probabilities = scorer.probability(judged.matrix, source, request_id, indexes=numbers)
        rejects = judged.rejects(at) if judged.rejected is not None else None
        yield ScoredChunk(
            scores_table(numbers, probabilities, scorer.threshold),
            rejects if rejects is not None and len(rejects) else None,
            len(chunk),
        )
        at += len(chunk)


def _chunks(source: Path, chunk_rows: int) -> Iterator[pa.RecordBatch | pd.DataFrame]:
    """A local file's rows as its reader gives them: typed Arrow batches for Parquet (only the
    feature columns decoded), DataFrames for the other formats."""
    if source.suffix.lower() == ".parquet":
        check_parquet_columns(parquet_columns(source))
        yield from iter_parquet_batches(source, chunk_rows, FEATURES)
        return
    yield from iter_chunks(source, chunk_rows)


def scores_schema(scorer: Scorer) -> pa.Schema:
    """The output's Arrow schema for this model (its probabilities' float type)."""
    empty = scorer.bundle.probability(np.empty((0, len(FEATURES)), dtype=np.float32))
    return scores_table(np.empty(0, dtype=np.int64), empty, scorer.threshold).schema


def scores_table(rows: np.ndarray, probabilities: np.ndarray, threshold: float) -> pa.Table:
    """The output's columns (`row` and `RESULT_COLUMNS`) as an Arrow table, built without
    pandas: the label is taken from the two class names, not formatted per row."""
    flagged = probabilities >= threshold
    return pa.table(
        {
            ROW: pa.array(rows, pa.int64()),
            "phishing_probability": pa.array(probabilities),
            "is_phishing": pa.array(flagged),
            "label": _LABELS.take(pa.array(flagged.view(np.int8))),
        }
    )


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
        try:
            # row N is prediction `<batch_id>-N` in the log
            for chunk in score_chunks(scorer, _chunks(source, chunk_rows), 1, "batch", batch_id):
                scored.write(chunk.scores)
                if chunk.rejects is not None:
                    rejected.write(chunk.rejects)
                rows += chunk.rows
                bar.update(chunk.rows)
        except SchemaError as error:
            raise SchemaError(f"{source}: {error}") from None
        if rows == 0:
            raise PhishguardError(f"{source}: no rows to score (a header but no rows?)")
        if scored.rows + rejected.rows != rows:  # cannot happen unless quarantine lost a row
            raise PhishguardError(
                f"row counts do not add up: {scored.rows} + {rejected.rows} != {rows}"
            )
    return BatchSummary(rows=rows, scored=scored.rows, rejected=rejected.rows)


class WaitingLog:
    """The prediction log as a batch run's observer: it waits for room in the log's queue
    instead of letting a batch be dropped, and hands over a chunk in pieces of at most half
    the queue. A batch job has no request latency to protect, and the log holds every scored
    row; a reader that outran the writer (which formats ~1 µs a row, against the model's ~7)
    for a moment would otherwise drop rows."""

    POLL_SECONDS = 0.005

    def __init__(self, log: PredictionLog) -> None:
        self.log = log
        self._sent = 0

    def record(
        self,
        features: np.ndarray,
        probabilities: np.ndarray,
        threshold: float,
        *,
        indexes: np.ndarray | None = None,
        **fields: Any,
    ) -> bool:
        if not self.log.enabled:
            return False
        if indexes is None:
            indexes = np.arange(len(probabilities))
        step = max(1, self.log.max_pending_rows // 2)
        queued = True
        for start in range(0, len(probabilities), step):
            piece = slice(start, start + step)
            rows = len(probabilities[piece])
            while self._pending() + rows > self.log.max_pending_rows:
                time.sleep(self.POLL_SECONDS)
            queued &= self.log.record(
                features[piece], probabilities[piece], threshold, indexes=indexes[piece], **fields
            )
            self._sent += rows
        return queued

    def _pending(self) -> int:
        """Rows handed to the log and neither written nor dropped yet."""
        return self._sent - self.log.written - sum(self.log.dropped.values())


def predict_command(
    source: str, output: str, rejects: str | None, model: str | None, chunk_rows: int
) -> BatchSummary:
    """`phishguard predict`: load the packaged model once and score a file."""

    if chunk_rows < 1:
        raise PhishguardError(f"--chunk-rows must be positive, got {chunk_rows}")
    out = Path(output)
    rejects_path = Path(rejects) if rejects else out.with_name(out.stem + ".rejects.csv")
    prediction_log = PredictionLog.from_env(format="parquet")  # a run's log: one Parquet file
    # One predict thread: one core per process; more cores mean more processes (or workers).
    scorer = load_scorer(
        Path(model) if model else None, nthread=1, observers=(WaitingLog(prediction_log),)
    )
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
