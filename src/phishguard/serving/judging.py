"""The check engine applied to a chunk of rows, for every scoring path (`phishguard predict`,
its Dask partitions, the service's CSV endpoint, the MLflow model): `judge` splits a chunk into
the valid rows' feature matrix and the rejected rows with their reasons.

A chunk is judged with numpy first (`record_checks.clean_rows`): its clean rows are valid as
they are, and only the others go to the pipeline's own `quarantine`, which gives the reasons
(and may accept some, such as `" 1"`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from phishguard.contract.checks import check_columns
from phishguard.contract.record_checks import arrow_columns, clean_rows, frame_columns
from phishguard.contract.schema import FEATURES, LABEL, ROW_PROBLEM
from phishguard.data.validate import REASON, ROW, quarantine


@dataclass(frozen=True)
class Judged:
    """A chunk's rows judged: the valid ones' matrix and positions, the others with reasons."""

    matrix: np.ndarray
    """The valid rows' 30 features (float32, canonical order), in input order."""
    kept: np.ndarray
    """The valid rows' 0-based positions in the chunk."""
    rejected: pd.DataFrame | None
    """`row` (1-based in the chunk), the 30 features and the reason; None if no row was judged
    by the check engine."""

    def rejects(self, first_row: int) -> pd.DataFrame:
        """The rejected rows numbered from `first_row`, as the rejects file holds them."""
        if self.rejected is None:
            return pd.DataFrame(columns=[ROW, *FEATURES, REASON])
        return self.rejected.assign(**{ROW: self.rejected[ROW] + (first_row - 1)})


def _features(table: pd.DataFrame) -> pd.DataFrame:
    """The table without its label, its columns checked (`SchemaError`)."""
    features = table.drop(columns=[LABEL], errors="ignore").reset_index(drop=True)
    check_columns(list(map(str, features.columns)), FEATURES)
    return features


def _judge(matrix: np.ndarray, clean: np.ndarray, table: Callable[[], pd.DataFrame]) -> Judged:
    """The verdict on a chunk from `clean_rows`' matrix and mask: the clean rows are valid as
    they are; only the others go to the pipeline's `quarantine` (on `table()`, the chunk as a
    DataFrame), which names their problems and may still accept some (`" 1"`, `1.0`)."""
    if clean.all():  # the common case: no per-row checks, no pandas
        return Judged(matrix, np.arange(len(clean)), None)
    features = table()
    if ROW_PROBLEM in features.columns:  # a row the CSV reader could not split is never clean
        clean &= features[ROW_PROBLEM].isna().to_numpy(dtype=bool)
    suspects = np.flatnonzero(~clean)
    checked = quarantine(features.iloc[suspects], FEATURES)
    rejected_at = checked.quarantined[ROW].to_numpy(dtype=np.int64) - 1  # among the suspects
    accepted = np.ones(len(suspects), dtype=bool)
    accepted[rejected_at] = False
    matrix[suspects[accepted]] = checked.valid.loc[:, list(FEATURES)].to_numpy(dtype=np.float32)
    keep = clean
    keep[suspects[accepted]] = True
    kept = np.flatnonzero(keep)
    rejected = checked.quarantined.assign(**{ROW: suspects[rejected_at] + 1})
    return Judged(matrix[kept], kept, rejected.loc[:, [ROW, *FEATURES, REASON]])


def judge(chunk: pa.RecordBatch | pd.DataFrame) -> Judged:
    """The verdict on one chunk as a reader gives it. Typed Arrow (Parquet) with integer or
    float columns is judged straight from Arrow; text or bool columns, and DataFrames (CSV),
    through pandas as `score_table` judges a table: the same rows rejected with the same
    reasons. An Arrow chunk's columns are checked already (`check_parquet_columns`)."""
    if isinstance(chunk, pd.DataFrame):
        features = _features(chunk)
        return _judge(*clean_rows(frame_columns(features)), lambda: features)
    chunk = chunk.select(list(FEATURES))
    columns = arrow_columns(chunk)
    if columns is None:  # text or bool columns: judged cell by cell, as CSV is
        frame = chunk.to_pandas()
        return _judge(*clean_rows(frame_columns(frame)), lambda: frame)
    return _judge(*clean_rows(columns), chunk.to_pandas)


def check_parquet_columns(names: list[str]) -> None:
    """A Parquet file's columns, checked as a table's are (`SchemaError`); the label is allowed."""
    check_columns([name for name in names if name != LABEL], FEATURES)
