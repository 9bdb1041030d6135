"""Batch scoring of tables and files: `phishguard predict INPUT -o OUTPUT`.

Files are read in chunks (`sources.iter_chunks`) and written chunk by chunk, so memory stays
constant however large the input. Rows are judged by the pipeline's own `quarantine`; invalid
rows go to a rejects file with their reasons, and scored + rejected = input rows.
The service's CSV endpoint uses `score_table` too.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from phishguard import PhishguardError
from phishguard.record_checks import frame_matrix
from phishguard.schema import FEATURES, LABEL
from phishguard.scoring import Scorer

log = logging.getLogger(__name__)

ROW = "row"
RESULT_COLUMNS = ("phishing_probability", "is_phishing", "label")
OUTPUT_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class TableScores:
    """Scores of a table's valid rows and the rejected rows with reasons (both keep `row`)."""

    scored: pd.DataFrame
    rejected: pd.DataFrame


def score_table(scorer: Scorer, table: pd.DataFrame, first_row: int = 1) -> TableScores:
    """Validate and score a table of the 30 features (a `Result` column is ignored).

    `row` numbers rows from `first_row` in input order. Raises `SchemaError` when the columns
    themselves are wrong (then no row can be judged).
    """
    from phishguard.validation import REASON, check_columns, quarantine

    features = table.drop(columns=[LABEL], errors="ignore").reset_index(drop=True)
    check_columns(list(map(str, features.columns)), FEATURES)
    matrix = frame_matrix(features)
    if matrix is not None:  # the common case: every row clean, no per-row checks needed
        scored = scorer.decisions(matrix)
        scored.insert(0, ROW, np.arange(first_row, first_row + len(matrix)))
        return TableScores(scored, pd.DataFrame(columns=[ROW, *FEATURES, REASON]))
    checked = quarantine(features, FEATURES)
    rejected_at = checked.quarantined[ROW].to_numpy(dtype=np.int64) - 1
    keep = np.ones(len(features), dtype=bool)
    keep[rejected_at] = False
    scored = scorer.decisions(checked.valid.loc[:, list(FEATURES)].to_numpy(dtype=np.float32))
    scored.insert(0, ROW, np.flatnonzero(keep) + first_row)
    rejected = checked.quarantined.copy()
    rejected[ROW] = rejected_at + first_row
    return TableScores(scored=scored, rejected=rejected.loc[:, [ROW, *FEATURES, REASON]])


@dataclass(frozen=True)
class BatchSummary:
    """Row counts of one batch run: `scored + rejected == rows`."""

    rows: int
    scored: int
    rejected: int


class _ChunkWriter:
    """Append DataFrames to a CSV or Parquet file, one chunk at a time.

    Chunks go to a hidden `.part` file beside `path`, renamed to `path` by `commit`, so a run
    that fails half-way leaves no partial output (and `discard` removes the part).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._part = path.with_name(f".{path.name}.part")
        self._parquet = None
        self._started = False

    def write(self, frame: pd.DataFrame) -> None:
        if self.path.suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self._part, table.schema)
            self._parquet.write_table(table.cast(self._parquet.schema))
        else:
            frame.to_csv(
                self._part,
                mode="a" if self._started else "w",
                header=not self._started,
                index=False,
            )
        self._started = True

    def commit(self, empty: pd.DataFrame) -> None:
        if not self._started:
            self.write(empty)
        if self._parquet is not None:
            self._parquet.close()
        self._part.replace(self.path)

    def discard(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        self._part.unlink(missing_ok=True)


def predict_file(
    scorer: Scorer,
    source: Path,
    output: Path,
    rejects: Path,
    chunk_rows: int = 50_000,
    progress: bool | None = None,
) -> BatchSummary:
    """Score `source` (CSV or Parquet) into `output`, invalid rows into `rejects` (CSV or Parquet).

    Both files appear only when the whole input is scored; a file without rows is an error.

    The progress bar goes to stderr, by default only when stderr is a terminal.
    """
    from tqdm import tqdm

    from phishguard.sources import iter_chunks
    from phishguard.validation import REASON, SchemaError

    if output.suffix not in OUTPUT_SUFFIXES:
        raise PhishguardError(f"{output}: output must end in .csv or .parquet")
    if output.resolve() in (source.resolve(), rejects.resolve()):
        raise PhishguardError(
            f"{output}: the output must differ from the input and the rejects file"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    rejects.parent.mkdir(parents=True, exist_ok=True)
    scored_out, rejected_out = _ChunkWriter(output), _ChunkWriter(rejects)
    rows = scored = rejected = 0
    show = sys.stderr.isatty() if progress is None else progress
    try:
        with tqdm(unit=" rows", disable=not show, file=sys.stderr, desc="scoring") as bar:
            for chunk in iter_chunks(source, chunk_rows):
                try:
                    part = score_table(scorer, chunk, first_row=rows + 1)
                except SchemaError as error:
                    raise SchemaError(f"{source}: {error}") from None
                scored_out.write(part.scored)
                if len(part.rejected):
                    rejected_out.write(part.rejected)
                rows += len(chunk)
                scored += len(part.scored)
                rejected += len(part.rejected)
                bar.update(len(chunk))
        if rows == 0:
            raise PhishguardError(f"{source}: no rows to score (a header but no rows?)")
        if scored + rejected != rows:  # cannot happen unless quarantine lost a row
            raise PhishguardError(f"row counts do not add up: {scored} + {rejected} != {rows}")
    except BaseException:
        scored_out.discard()
        rejected_out.discard()
        raise
    scored_out.commit(pd.DataFrame(columns=[ROW, *RESULT_COLUMNS]))
    rejected_out.commit(pd.DataFrame(columns=[ROW, *FEATURES, REASON]))
    return BatchSummary(rows=rows, scored=scored, rejected=rejected)


def predict_command(
    source: str, output: str, rejects: str | None, model: str | None, chunk_rows: int
) -> BatchSummary:
    """`phishguard predict`: load the packaged model once and score a file."""
    from phishguard.scoring import load_scorer

    if chunk_rows < 1:
        raise PhishguardError(f"--chunk-rows must be positive, got {chunk_rows}")
    out = Path(output)
    rejects_path = Path(rejects) if rejects else out.with_name(out.stem + ".rejects.csv")
    scorer = load_scorer(Path(model) if model else None, nthread=2)
    summary = predict_file(scorer, Path(source), out, rejects_path, chunk_rows)
    log.info(
        "scored %d of %d rows into %s; %d rejected into %s",
        summary.scored,
        summary.rows,
        out,
        summary.rejected,
        rejects_path,
    )
    return summary
