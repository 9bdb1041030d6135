"""Checking request records against the schema, as one batch, and the per-request limits.

The service (JSON records, CSV uploads) and the batch CLI check input here, so every entry
point names problems the same way: `record 2: field 'port' = 5 is not in {-1, 1}`. The checks
are derived from `phishguard.contract.schema` and run with numpy over the whole batch (no object per
row), which keeps 1,000-row requests cheap.
"""

from __future__ import annotations

import difflib
import itertools
import operator
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from phishguard import PhishguardError
from phishguard.contract.schema import DOMAINS, FEATURES, MAX_CELL_CHARS, clipped

MAX_ROWS_ENV = "PHISHGUARD_MAX_ROWS"
DEFAULT_MAX_ROWS = 10_000
MAX_EXPLAIN_ROWS_ENV = "PHISHGUARD_MAX_EXPLAIN_ROWS"
# Contributions cost ~3 ms a record with 600 trees on one thread: 1,000 take ~3 s, a tenth
# of the service's 30 s timeout, which leaves room for a busy machine.
DEFAULT_MAX_EXPLAIN_ROWS = 1_000
# Problems past this many are counted, not described: describing one (a misspelling guess, a
# long value) can cost more than finding it, and an 8 MiB body can hold 400,000 of them.
MAX_REPORTED_PROBLEMS = 20

_FEATURE_SET = frozenset(FEATURES)
_values_of = operator.itemgetter(*FEATURES)
# ALLOWED[j, v + 1] is True when value v ∈ {-1, 0, 1} is in feature j's domain.
_ALLOWED = np.array([[v in DOMAINS[name] for v in (-1, 0, 1)] for name in FEATURES], dtype=bool)
_COLUMN_INDEX = np.arange(len(FEATURES))
# difflib's ratio is at most 2·min(a, b) / (a + b), so a key over 5/3 of the longest feature
# name's length can never reach the 0.75 cutoff: skip the guess instead of paying for it.
_CUTOFF = 0.75
_LONGEST_GUESSABLE = len(max(FEATURES, key=len)) * 5 // 3 + 1
# The text of every in-domain value as a CSV cell holds it; anything else takes the slow path.
_SMALL_INTEGERS = {text: value for value in (-1, 0, 1) for text in (str(value), f"{value:+d}")}


class RecordError(PhishguardError, ValueError):
    """Some records do not match the schema; `problems` says which record and which field."""

    def __init__(self, problems: list[str], more: int = 0) -> None:
        self.problems = problems[:MAX_REPORTED_PROBLEMS]
        self.more = more + len(problems) - len(self.problems)
        tail = f"; … and {self.more} more" if self.more > 0 else ""
        super().__init__("; ".join(self.problems) + tail)


class _Problems:
    """Problems as they are found: the first `MAX_REPORTED_PROBLEMS` described, the rest
    counted only."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.more = 0

    def wants(self, count: int = 1) -> bool:
        """Whether to describe the next problem; if not, `count` more are counted."""
        if len(self.shown) < MAX_REPORTED_PROBLEMS:
            return True
        self.more += count
        return False

    def error(self) -> RecordError:
        return RecordError(self.shown, self.more)


class TooManyRecordsError(PhishguardError, ValueError):
    """A request holds more records than the configured limit."""


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
        raise RecordError(["no records: send at least one"])
    try:
        if any(len(r) != len(FEATURES) for r in records):
            raise KeyError
        # One flat list of values in canonical order: cheaper than a list of row tuples.
        flat = list(itertools.chain.from_iterable(map(_values_of, records)))
    except (KeyError, TypeError):
        raise _shape_problems(records) from None
    # Checked by type, not converted: JSON true/1.0/"1" are not integers here.
    if not set(map(type, flat)) <= {int}:
        raise _type_problems(records)
    try:
        values = np.fromiter(flat, dtype=np.int64, count=len(flat)).reshape(-1, len(FEATURES))
    except OverflowError:
        raise _overflow_problems(records) from None
    inside = (values >= -1) & (values <= 1)
    allowed = inside & _ALLOWED[_COLUMN_INDEX, np.clip(values + 1, 0, 2)]
    if not allowed.all():
        bad = np.argwhere(~allowed)
        shown = bad[:MAX_REPORTED_PROBLEMS]
        problems = [_domain_problem(int(i), int(j), values[i, j]) for i, j in shown]
        raise RecordError(problems, more=len(bad) - len(shown))
    return values.astype(np.float32)


def frame_matrix(features: pd.DataFrame) -> np.ndarray | None:
    """The float32 matrix of a table whose 30 feature columns are all clean, in-domain integers.

    Returns None when any cell is not (text that is not an integer, a float, a bool, a
    missing value, a value out of domain): the caller then runs the pipeline's `quarantine`
    for per-row reasons. Columns must already have been checked.
    """
    columns = features.loc[:, list(FEATURES)]
    if all(
        pd.api.types.is_integer_dtype(t) and not pd.api.types.is_bool_dtype(t)
        for t in columns.dtypes
    ):
        values = columns.to_numpy(dtype=np.int64)
    else:  # text (CSV): looked up cell by cell, never widened to the longest cell
        values = np.empty(columns.shape, dtype=np.int64)
        for j, name in enumerate(FEATURES):
            column = columns[name]
            if pd.api.types.is_integer_dtype(column.dtype) and not pd.api.types.is_bool_dtype(
                column.dtype
            ):
                values[:, j] = column.to_numpy(dtype=np.int64)
                continue
            looked_up = column.map(_SMALL_INTEGERS).to_numpy(dtype=np.float64, na_value=np.nan)
            if np.isnan(looked_up).any():  # not plain integer text: the caller judges each row
                return None
            values[:, j] = looked_up
    inside = (values >= -1) & (values <= 1)
    if not (inside & _ALLOWED[_COLUMN_INDEX, np.clip(values + 1, 0, 2)]).all():
        return None
    return values.astype(np.float32)


def _shape_problems(records: Sequence[Any]) -> RecordError:
    found = _Problems()
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            if found.wants():
                found.shown.append(f"record {index}: expected an object of the 30 features")
            continue
        missing = [f for f in FEATURES if f not in record]
        extra = [k for k in record if k not in _FEATURE_SET]
        if not found.wants(len(extra) + len(missing)):
            continue
        for name in extra:
            if not found.wants():
                continue
            near = _misspelled(name, missing)
            if near:
                missing.remove(near)
                found.shown.append(
                    f"record {index}: unknown field {_shown(name)} (misspelled {near!r}?)"
                )
            else:
                found.shown.append(f"record {index}: unknown field {_shown(name)}")
        for name in missing:
            if found.wants():
                found.shown.append(f"record {index}: missing field {name!r}")
    return found.error()


def _misspelled(key: Any, missing: list[str]) -> str | None:
    """The missing feature `key` is probably a misspelling of, if any (bounded cost)."""
    if not isinstance(key, str) or len(key) > _LONGEST_GUESSABLE or not missing:
        return None
    near = difflib.get_close_matches(key, missing, n=1, cutoff=_CUTOFF)
    return near[0] if near else None


def _type_problems(records: Sequence[Mapping[str, Any]]) -> RecordError:
    found = _Problems()
    for i, row in enumerate(map(_values_of, records)):
        for j, value in enumerate(row):
            if type(value) is not int and found.wants():
                found.shown.append(
                    f"record {i}: field {FEATURES[j]!r} must be an integer, got {_shown(value)}"
                )
    return found.error()


def _domain_problem(index: int, column: int, value: int) -> str:
    name = FEATURES[column]
    domain = ", ".join(map(str, DOMAINS[name]))
    return f"record {index}: field {name!r} = {value} is not in {{{domain}}}"


def _overflow_problems(records: Sequence[Mapping[str, Any]]) -> RecordError:
    """The values beyond int64, named by record and field (too large to print in full)."""
    found = _Problems()
    for i, row in enumerate(map(_values_of, records)):
        for j, value in enumerate(row):
            if value.bit_length() >= 64 and found.wants():
                shown = (
                    str(value)
                    if value.bit_length() < 128
                    else f"an integer of {value.bit_length()} bits"
                )
                found.shown.append(far_outside_problem(i, FEATURES[j], shown))
    return found.error()


def far_outside_problem(index: int, name: str, shown: str) -> str:
    """The problem of a value far beyond feature `name`'s domain, `shown` as text: for values
    past int64 here, and for numbers too long to parse (`phishguard.contract.json_numbers`)."""
    domain = ", ".join(map(str, DOMAINS[name]))
    return f"record {index}: field {name!r} = {shown} is far outside {{{domain}}}"


def _shown(value: Any) -> str:
    """A JSON value in a message: a string or container over `MAX_CELL_CHARS` is clipped, so
    a huge value costs a short message, not a copy of itself."""
    if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
        # Cut the repr too: escapes (\ud7fc) can make it six times the characters it shows.
        shown = repr(value[:MAX_CELL_CHARS])[:MAX_CELL_CHARS]
        return f"{shown}… (a string of {len(value)} characters)"
    if isinstance(value, list | dict) and len(value) > MAX_CELL_CHARS:
        return f"a {type(value).__name__} of {len(value)} items"
    return clipped(repr(value))
