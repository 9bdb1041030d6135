"""The check engine: every rule about the data, judged once, reported as `Problem`s.

- `column_problems`: the one column check (missing, unknown or misspelled, duplicated), for a
  table's header and for a JSON record's keys alike;
- `judge_table`: the cells, with pandera (the `validate` stage's validator): a table of text or
  numbers (CSV, Parquet, JSON files), or a batch of JSON records (`typed`: a value must be a
  JSON integer, not `1.0`, `"1"` or `true`);
- `judge_records`: a request's JSON records, columns then cells.

`phishguard.contract.record_checks` gives the same verdicts faster with numpy for clean
requests, and asks `judge_records` what is wrong with any other; the tests prove they agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from phishguard.contract.problems import (
    MAX_REPORTED_PROBLEMS,
    Kind,
    Problem,
    SchemaError,
    misspelled,
    schema_message,
)
from phishguard.contract.schema import COLUMNS, DOMAINS, FEATURES, MAX_CELL_CHARS, ROW_PROBLEM

_INT64 = (-(2**63), 2**63)
_FEATURE_SET = frozenset(FEATURES)


def _pandera_schema(columns: Sequence[str] = COLUMNS) -> pa.DataFrameSchema:
    """The pandera schema: each column numeric, non-null and inside its exact domain."""
    return pa.DataFrameSchema(
        {
            name: pa.Column("float64", pa.Check.isin(DOMAINS[name]), nullable=False, coerce=True)
            for name in columns
        },
        strict=True,
        ordered=False,
    )


def column_problems(
    names: Sequence[Any],
    expected: Sequence[str] = COLUMNS,
    row: int | None = None,
) -> list[Problem]:
    """Duplicated, unknown and missing names among `names`, in that order.

    An unknown name probably meant as a missing one (see `misspelled`) is paired with it: the
    UNKNOWN problem's value is the missing name, the MISSING problem's value the unknown name.
    `row` is the record the names are the keys of; None for a table's header.
    """
    present = set(names)
    counts = Counter(names)  # not names.count: a request's record may hold 100,000s of keys
    duplicated = sorted(name for name, count in counts.items() if count > 1)
    missing = [name for name in expected if name not in present]
    expected_set = frozenset(expected)
    unknown: list[tuple[Any, str | None]] = []
    meant: dict[str, Any] = {}
    for name in dict.fromkeys(n for n in names if n not in expected_set):
        near = misspelled(name, [m for m in missing if m not in meant])
        if near:
            meant[near] = name
        unknown.append((name, near))
    return [
        *(Problem(row, name, Kind.DUPLICATED) for name in duplicated),
        *(Problem(row, name, Kind.UNKNOWN, near) for name, near in unknown),
        *(Problem(row, name, Kind.MISSING, meant.get(name)) for name in missing),
    ]


def check_columns(names: Sequence[str], expected: Sequence[str] = COLUMNS) -> None:
    """Raise `SchemaError` naming every missing, unknown or duplicated column.

    The CSV reader's `ROW_PROBLEM` column is not a data column: it is ignored here.
    """
    problems = column_problems([n for n in names if n != ROW_PROBLEM], expected)
    if problems:
        raise SchemaError(schema_message(problems))


def record_shape_problems(records: Sequence[Any]) -> tuple[list[Problem], int]:
    """The records that are not objects, and the missing and unknown keys of the others: the
    first `MAX_REPORTED_PROBLEMS` described, the count of the rest (not guessed at: cheap)."""
    shown: list[Problem] = []
    more = 0
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            if len(shown) < MAX_REPORTED_PROBLEMS:
                shown.append(Problem(index, None, Kind.NOT_A_RECORD))
            else:
                more += 1
            continue
        if len(record) == len(FEATURES) and all(name in record for name in FEATURES):
            continue
        if len(shown) >= MAX_REPORTED_PROBLEMS:
            more += sum(name not in record for name in FEATURES)
            more += sum(name not in _FEATURE_SET for name in record)
            continue
        # A misspelled key is one problem (`unknown field … (misspelled …?)`), not two.
        room = MAX_REPORTED_PROBLEMS - len(shown)
        # Unknown keys past `room` are only counted: a record may hold 100,000s of them.
        unknown = [name for name in record if name not in _FEATURE_SET]
        known = [name for name in record if name in _FEATURE_SET]
        found = [
            p
            for p in column_problems(known + unknown[:room], FEATURES, row=index)
            if p.kind != Kind.MISSING or not p.value
        ]
        shown.extend(found[:room])
        more += len(found[room:]) + len(unknown[room:])
    return shown, more


def judge_records(records: Sequence[Any]) -> tuple[list[Problem], int]:
    """What is wrong with a request's JSON records: `(problems, more not described)`.

    Columns first: while any record is not an object of the 30 features, only that is
    reported. Then the values, in order of kind: not an integer, beyond int64, out of domain.
    """
    shown, more = record_shape_problems(records)
    if shown or more:
        return shown, more
    table = pd.DataFrame(
        {name: pd.Series([r[name] for r in records], dtype=object) for name in FEATURES}
    )
    _, problems = judge_table(table, FEATURES, typed=True)
    return problems, 0


def judge_table(
    table: pd.DataFrame, columns: Sequence[str] = COLUMNS, typed: bool = False
) -> tuple[pd.DataFrame, list[Problem]]:
    """The table's `columns` as float64, and the problems of its cells, row by row.

    Columns must already have been checked. A row the CSV reader could not split has one
    UNREADABLE problem only. `typed` judges JSON values (see `judge_records`).
    """
    table = table.reset_index(drop=True)
    if typed:
        return _judge_typed(table, columns)
    numeric = pd.DataFrame(index=table.index)
    problems: list[Problem] = []
    flagged: set[tuple[int, str]] = set()  # cells already reported: not judged again
    for name in columns:
        numeric[name], not_number, too_long = _numeric(table[name])
        for row in np.flatnonzero(too_long):
            problems.append(Problem(int(row), name, Kind.TOO_LONG, len(str(table.at[row, name]))))
            flagged.add((int(row), name))
        for row in np.flatnonzero(not_number.to_numpy() & ~too_long):
            problems.append(Problem(int(row), name, Kind.NOT_A_NUMBER, table.at[row, name]))
            flagged.add((int(row), name))
    problems.extend(
        p for p in _domain_problems(numeric, table, columns) if (p.row, p.field) not in flagged
    )
    if ROW_PROBLEM in table.columns:  # rows the reader could not split: their reason only
        reasons = table[ROW_PROBLEM]
        unreadable = {int(r) for r in np.flatnonzero(reasons.notna().to_numpy())}
        problems = [p for p in problems if p.row not in unreadable]
        problems.extend(Problem(r, None, Kind.UNREADABLE, str(reasons.iat[r])) for r in unreadable)
    problems.sort(key=lambda p: p.row)  # stable: a row's problems keep their order
    return numeric, problems


def _judge_typed(table: pd.DataFrame, columns: Sequence[str]) -> tuple[pd.DataFrame, list[Problem]]:
    """JSON values: not an integer, else beyond int64, else out of domain; row-major order."""
    order = {name: j for j, name in enumerate(columns)}
    for kind, wrong in ((Kind.NOT_AN_INTEGER, _not_integer), (Kind.FAR_OUTSIDE, _beyond_int64)):
        problems = [
            Problem(int(row), name, kind, table.at[row, name])
            for name in columns
            for row in np.flatnonzero([wrong(v) for v in table[name]])
        ]
        if problems:
            return table, sorted(problems, key=lambda p: (p.row, order[p.field]))
    numeric = table.loc[:, list(columns)].astype(np.int64)
    problems = list(_domain_problems(numeric, numeric, columns))
    return numeric, sorted(problems, key=lambda p: (p.row, order[p.field]))


def _not_integer(value: Any) -> bool:
    return type(value) is not int


def _beyond_int64(value: int) -> bool:
    return not _INT64[0] <= value < _INT64[1]


def _domain_problems(
    numeric: pd.DataFrame, original: pd.DataFrame, columns: Sequence[str]
) -> Iterator[Problem]:
    """MISSING and OUT_OF_DOMAIN cells as pandera finds them, with the original values."""
    try:
        _pandera_schema(columns).validate(numeric, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases.dropna(subset=["index"])
        for case in cases.itertuples(index=False):
            row = int(case.index)
            value = original.at[row, case.column]
            if case.check == "not_nullable":
                yield Problem(row, case.column, Kind.MISSING)
            else:
                yield Problem(row, case.column, Kind.OUT_OF_DOMAIN, value)


def _numeric(column: pd.Series) -> tuple[pd.Series, pd.Series, np.ndarray]:
    """Coerce one column to float; return it, a mask of cells that were present but not
    numbers, and a mask of cells longer than `MAX_CELL_CHARS` (judged without parsing them)."""
    if column.dtype == bool or column.dtype == "boolean":
        return pd.Series(np.nan, index=column.index), column.notna(), np.zeros(len(column), bool)
    too_long = np.zeros(len(column), dtype=bool)
    if not pd.api.types.is_numeric_dtype(column):
        too_long = (column.astype("string").str.len() > MAX_CELL_CHARS).fillna(False).to_numpy(bool)
        if too_long.any():
            column = column.mask(too_long, None)
    is_bool = (
        column.map(lambda v: isinstance(v, bool | np.bool_)) if column.dtype == object else None
    )
    text = (
        column.astype("string").str.strip() if not pd.api.types.is_numeric_dtype(column) else column
    )
    numbers = pd.to_numeric(text, errors="coerce").astype("float64")
    present = column.notna() & (text.astype("string") != "")
    bad = present & numbers.isna()
    if is_bool is not None and is_bool.any():
        numbers = numbers.mask(is_bool)
        bad = bad | is_bool
    return numbers, bad.astype(bool) | too_long, too_long
