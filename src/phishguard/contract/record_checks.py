"""The fast path of the checks for requests: a verdict on a whole batch with numpy.

The service (JSON records, CSV uploads) and the batch CLI check input here. A clean batch (the
common case) is judged with numpy over the whole batch (no object per row), which keeps
1,000-row requests cheap; a batch with any problem is handed to the check engine
(`phishguard.contract.checks`), so every entry point names problems the same way:
`record 2: field 'port' = 5 is not in {-1, 1}`. The tests prove both reach the same verdicts.
"""

from __future__ import annotations

import itertools
import operator
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from phishguard import PhishguardError
from phishguard.contract.checks import judge_records
from phishguard.contract.problems import (
    MAX_REPORTED_PROBLEMS,
    Kind,
    Problem,
    RecordError,
    TooManyRecordsError,
    record_error,
)
from phishguard.contract.schema import DOMAINS, FEATURES

MAX_ROWS_ENV = "PHISHGUARD_MAX_ROWS"
DEFAULT_MAX_ROWS = 10_000
MAX_EXPLAIN_ROWS_ENV = "PHISHGUARD_MAX_EXPLAIN_ROWS"
# Contributions cost ~3 ms a record with 600 trees on one thread: 1,000 take ~3 s, a tenth
# of the service's 30 s timeout, which leaves room for a busy machine.
DEFAULT_MAX_EXPLAIN_ROWS = 1_000

__all__ = [
    "MAX_REPORTED_PROBLEMS",
    "RecordError",
    "TooManyRecordsError",
    "arrow_columns",
    "clean_rows",
    "frame_columns",
    "frame_matrix",
    "records_matrix",
]

_values_of = operator.itemgetter(*FEATURES)
# ALLOWED[j, v + 1] is True when value v ∈ {-1, 0, 1} is in feature j's domain.
_ALLOWED = np.array([[v in DOMAINS[name] for v in (-1, 0, 1)] for name in FEATURES], dtype=bool)
_COLUMN_INDEX = np.arange(len(FEATURES))
_DOMAIN_VALUES = tuple(DOMAINS[name] for name in FEATURES)
# The text of every in-domain value as a CSV cell holds it; anything else takes the slow path.
_SMALL_INTEGERS = {text: value for value in (-1, 0, 1) for text in (str(value), f"{value:+d}")}


def positive_int_from_env(name: str, default: int) -> int:
    """A positive integer setting from environment variable `name`, else `default`."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise PhishguardError(f"{name} must be a positive integer, got {text!r}")
    return int(text)


def max_rows_from_env() -> int:
    """The per-request row limit: `PHISHGUARD_MAX_ROWS`, else 10,000."""
    return positive_int_from_env(MAX_ROWS_ENV, DEFAULT_MAX_ROWS)


def max_explain_rows_from_env() -> int:
    """The per-request row limit of /explain: `PHISHGUARD_MAX_EXPLAIN_ROWS`, else 1,000."""
    return positive_int_from_env(MAX_EXPLAIN_ROWS_ENV, DEFAULT_MAX_EXPLAIN_ROWS)


def records_matrix(records: Sequence[Mapping[str, Any]], max_rows: int) -> np.ndarray:
    """Validate JSON records against the schema as one batch; return a float32 matrix.

    Raises `TooManyRecordsError` over `max_rows`, and `RecordError` naming the record (0-based, in
    request order) and field of every problem: missing, unknown/misspelled, not an integer,
    or outside the feature's domain. Key order within a record does not matter.
    """
    if len(records) > max_rows:
        raise TooManyRecordsError(f"{len(records)} records in one request; the limit is {max_rows}")
    if not records:
        raise record_error([Problem(None, None, Kind.NO_RECORDS)])
    try:
        if any(len(r) != len(FEATURES) for r in records):
            raise KeyError
        # One flat list of values in canonical order: cheaper than a list of row tuples.
        flat = list(itertools.chain.from_iterable(map(_values_of, records)))
    except (KeyError, TypeError):
        raise _judged(records) from None
    # Checked by type, not converted: JSON true/1.0/"1" are not integers here.
    if not set(map(type, flat)) <= {int}:
        raise _judged(records)
    try:
        values = np.fromiter(flat, dtype=np.int64, count=len(flat)).reshape(-1, len(FEATURES))
    except OverflowError:
        raise _judged(records) from None
    if not _in_domain(values):
        raise _judged(records)
    return values.astype(np.float32)


def frame_matrix(features: pd.DataFrame) -> np.ndarray | None:
    """The float32 matrix of a table whose 30 feature columns are all clean, in-domain integers.

    Returns None when any cell is not (text that is not an integer, a float, a bool, a
    missing value, a value out of domain): the caller then runs the pipeline's `quarantine`
    for per-row reasons. Columns must already have been checked.
    """
    matrix, clean = clean_rows(frame_columns(features))
    return matrix if clean.all() else None


def frame_columns(features: pd.DataFrame) -> list[np.ndarray]:
    """The 30 feature columns of a table as numpy arrays `clean_rows` takes, canonical order.

    Integer columns as they are; floats and nullable integers as float64 (NaN where
    missing); text looked up cell by cell (never widened to the longest cell), NaN unless it
    is a plain integer; bools as NaN throughout (a bool is not a number here).
    """
    columns = []
    for name in FEATURES:
        column = features[name]
        if pd.api.types.is_bool_dtype(column.dtype):
            columns.append(np.full(len(column), np.nan))
        elif isinstance(column.dtype, np.dtype) and column.dtype.kind in "iu":
            columns.append(column.to_numpy())
        elif pd.api.types.is_numeric_dtype(column.dtype):
            columns.append(column.to_numpy(dtype=np.float64, na_value=np.nan))
        else:
            looked_up = column.map(_SMALL_INTEGERS)
            columns.append(looked_up.to_numpy(dtype=np.float64, na_value=np.nan))
    return columns


def arrow_columns(batch: pa.RecordBatch | pa.Table) -> list[np.ndarray] | None:
    """The 30 feature columns of typed Arrow data (Parquet) as `clean_rows` takes them, without
    a pass over text: integers as they are (zero-copy), floats and integers with nulls as
    float64 (NaN where null). None when a column holds anything else (text, bools): such a
    batch goes through pandas and `frame_columns`."""
    columns = []
    for name in FEATURES:
        array = batch.column(name)
        if not (pa.types.is_integer(array.type) or pa.types.is_floating(array.type)):
            return None
        if array.null_count or pa.types.is_floating(array.type):
            columns.append(np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64))
        else:
            columns.append(array.to_numpy())
    return columns


def clean_rows(columns: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The float32 matrix (rows x 30, canonical order, C-contiguous) of the feature `columns`
    (`frame_columns`, `arrow_columns`), and a mask of the clean rows: those whose every cell is
    a value of its feature's domain. The other rows' cells mean nothing: ask the check engine
    (`quarantine`) about those rows, and only those."""
    rows = len(columns[0])
    clean = np.ones(rows, dtype=bool)
    for column, domain in zip(columns, _DOMAIN_VALUES, strict=True):
        clean &= _one_of(column, domain)
    with np.errstate(over="ignore", invalid="ignore"):  # out-of-range cells: rows not clean
        matrix = np.vstack(columns).T.astype(np.float32, order="C")
    if any(column.dtype.kind == "f" for column in columns):
        matrix += np.float32(0)  # -0.0 -> 0.0: the same bits as an integer 0
    return matrix, clean


def _one_of(column: np.ndarray, domain: tuple[int, ...]) -> np.ndarray:
    """Cells equal to a value of `domain`: by equality, so no cast can wrap a value around (257
    is not 1) and NaN is never found."""
    found = column == domain[0]
    for value in domain[1:]:
        found |= column == value
    return found


def _in_domain(values: np.ndarray) -> bool:
    inside = (values >= -1) & (values <= 1)
    return bool((inside & _ALLOWED[_COLUMN_INDEX, np.clip(values + 1, 0, 2)]).all())


def _judged(records: Sequence[Any]) -> RecordError:
    """The error naming every problem of `records`, as the check engine finds them."""
    return record_error(*judge_records(records))
