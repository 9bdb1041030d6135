"""The canonical raw table: the landed file (`phishguard.data.landing`) read chunk by chunk and
written as Parquet with a fixed column order and compact dtypes, without judging any row."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from phishguard.contract.checks import column_problems
from phishguard.contract.csv_reader import cut_off_problem
from phishguard.contract.problems import columns_message
from phishguard.contract.schema import COLUMNS, ContentHash
from phishguard.data.sources import DataSourceError, iter_chunks
from phishguard.io import CHUNK_ROWS, ChunkWriter


def canonical_table(table: pd.DataFrame) -> pd.DataFrame:
    """Fixed column order and compact dtypes, without judging or dropping any row.

    Known columns come first in schema order, unknown ones after in their own order (validate
    reports them). A column whose every value is an integer in int8 range becomes int8; any
    other column stays text, so validation can quarantine the odd values with their reasons.
    The result depends only on the rows, not on the file format they came from.
    """
    _check_unique(list(map(str, table.columns)), "the table")
    columns = _ordered(list(table.columns))
    return _canonical_chunk(table, {name: _as_int8(table[name]) is not None for name in columns})


def _check_unique(names: list[str], where: str) -> None:
    if duplicated := column_problems(names, names):
        raise DataSourceError(f"{where}: {columns_message(duplicated)}")


def _ordered(columns: list[str]) -> list[str]:
    return [c for c in COLUMNS if c in columns] + [c for c in columns if c not in COLUMNS]


_INT8_TEXT = [str(i) for i in range(-128, 128)]


def _as_int8(column: pd.Series) -> pd.Series | None:
    """`column` as int8 if every value is an integer in int8 range, else None.

    Booleans are not integers here. Plain integer text takes a fast path; anything else
    ("1.0", " 1", 1.0) is parsed as a number.
    """
    if column.dtype == bool:
        return None
    if column.dtype == object and column.map(lambda v: isinstance(v, bool | np.bool_)).any():
        return None
    text = column.astype("string").str.strip()
    if text.isin(_INT8_TEXT).all():
        return text.astype(np.int8)
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.notna().all() and (numbers % 1 == 0).all() and numbers.between(-128, 127).all():
        return numbers.astype(np.int8)
    return None


def _canonical_chunk(chunk: pd.DataFrame, as_int8: dict[str, bool]) -> pd.DataFrame:
    """`chunk` with the columns of `as_int8`, in its order: int8 where True, else text."""
    result = {}
    for name, integral in as_int8.items():
        if name not in chunk.columns:
            result[name] = pd.Series(pd.NA, index=chunk.index, dtype="string")
        elif integral:
            result[name] = _as_int8(chunk[name])
        else:
            result[name] = chunk[name].astype("string")
    return pd.DataFrame(result).reset_index(drop=True)


@dataclass(frozen=True)
class IngestSummary:
    """What `ingest_file` wrote: row count, columns, and the content hash of the table."""

    rows: int
    columns: list[str]
    content_sha256: str


@dataclass(frozen=True)
class RowDropGuard:
    """The row count of the last ingest, and the largest fraction of it a new file may lose."""

    previous_rows: int
    max_row_drop: float

    def problem(self, rows: int) -> str | None:
        """Why `rows` is too big a drop from `previous_rows`, or None."""
        drop = (self.previous_rows - rows) / self.previous_rows if self.previous_rows else 0.0
        if drop <= self.max_row_drop:
            return None
        return (
            f"{rows} rows, {drop:.1%} fewer than the {self.previous_rows} of the last ingest, "
            f"over ingest.max_row_drop ({self.max_row_drop:.1%}); is the file cut off? If the "
            "smaller data is intended, raise ingest.max_row_drop in conf/config.yaml and params.yaml"
        )


def ingest_file(
    source: Path,
    destination: Path,
    chunk_rows: int = CHUNK_ROWS,
    guard: RowDropGuard | None = None,
) -> IngestSummary:
    """Write `source` to `destination` (Parquet) as the canonical table, chunk by chunk.

    Two passes over the file keep memory bounded by `chunk_rows`: the first settles the
    columns and which ones are int8 (every value of the whole file must fit), the second
    writes. The result is the same as `canonical_table` of the whole file. A CSV whose last
    line is cut off, or a row count that drops past `guard`, stops it before any write.
    """
    as_int8: dict[str, bool] = {}
    rows = 0
    for chunk in iter_chunks(source, chunk_rows):
        names = [str(c) for c in chunk.columns]
        _check_unique(names, str(source))
        for name in as_int8.keys() - set(names):
            as_int8[name] = False  # absent from this chunk: its cells are missing
        for name in names:
            fits = (name in as_int8 or rows == 0) and _as_int8(chunk[name]) is not None
            as_int8[name] = as_int8.get(name, True) and fits
        rows += len(chunk)
    if rows == 0:
        raise DataSourceError(f"{source}: a header but no rows")
    if source.suffix.lower() == ".csv" and (problem := cut_off_problem(source)):
        raise DataSourceError(f"{source}: {problem}")
    if guard is not None and (problem := guard.problem(rows)):
        raise DataSourceError(f"{source}: {problem}")
    as_int8 = {name: as_int8[name] for name in _ordered(list(as_int8))}
    digest = ContentHash(list(as_int8))
    empty = _canonical_chunk(pd.DataFrame(columns=list(as_int8)), as_int8)
    with ChunkWriter(destination, empty) as writer:
        for chunk in iter_chunks(source, chunk_rows):
            canonical = _canonical_chunk(chunk, as_int8)
            digest.update(canonical)
            writer.write(canonical)
    return IngestSummary(rows=rows, columns=list(as_int8), content_sha256=digest.hexdigest())
