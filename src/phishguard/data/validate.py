"""Row-level validation against the schema: valid rows go on, invalid rows are quarantined.

`quarantine` never drops a row: every input row ends up in exactly one of the two outputs,
and each quarantined row carries the reasons it failed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa

from phishguard import PhishguardError
from phishguard.contract.schema import (
    COLUMNS,
    DOMAINS,
    MAX_CELL_CHARS,
    ROW_PROBLEM,
    clipped,
    row_ids,
    too_long_problem,
)

REASON = "reason"
ROW = "row"


class SchemaError(PhishguardError, ValueError):
    """The table's columns do not match the schema; no row can be judged."""


def pandera_schema(columns: tuple[str, ...] = COLUMNS) -> pa.DataFrameSchema:
    """The pandera schema: each column numeric, non-null and inside its exact domain."""
    return pa.DataFrameSchema(
        {
            name: pa.Column(
                "float64",
                pa.Check.isin(DOMAINS[name], error=_domain_text(name)),
                nullable=False,
                coerce=True,
            )
            for name in columns
        },
        strict=True,
        ordered=False,
    )


def _domain_text(column: str) -> str:
    return "not in {" + ", ".join(map(str, DOMAINS[column])) + "}"


@dataclass(frozen=True)
class ValidationResult:
    """Valid rows (canonical int8 columns) and quarantined rows (original values + reasons)."""

    valid: pd.DataFrame
    quarantined: pd.DataFrame

    def reason_counts(self) -> dict[str, int]:
        """How many quarantined rows failed each column/check (a row may count under several)."""
        if self.quarantined.empty:
            return {}
        reasons = self.quarantined[REASON].astype("string").str.split("; ").explode()
        kinds = reasons.str.replace(r"=.*? (?=is |not )", " ", regex=True)
        return {str(k): int(v) for k, v in kinds.value_counts().sort_index().items()}


def check_columns(columns: list[str], expected: tuple[str, ...] = COLUMNS) -> None:
    """Raise `SchemaError` naming every missing, unexpected or duplicated column.

    The CSV reader's `ROW_PROBLEM` column is not a data column: it is ignored here.
    """
    columns = [c for c in columns if c != ROW_PROBLEM]
    problems = []
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        problems.append(f"duplicated column(s) {', '.join(duplicated)}")
    missing = [c for c in expected if c not in columns]
    extra = [c for c in columns if c not in expected]
    for name in missing:
        near = _closest(name, extra)
        problems.append(
            f"missing column {name}" + (f" (found {near!r} — misspelled?)" if near else "")
        )
    unmatched = [c for c in extra if not any(_closest(m, [c]) for m in missing)]
    if unmatched:
        problems.append(f"unexpected column(s) {', '.join(map(repr, unmatched))}")
    if problems:
        raise SchemaError("schema error: " + "; ".join(problems))


def _closest(name: str, candidates: list[str]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
    if not matches:
        lowered = {c.strip().lower(): c for c in candidates}
        return lowered.get(name.lower())
    return matches[0]


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


def quarantine(table: pd.DataFrame, columns: tuple[str, ...] = COLUMNS) -> ValidationResult:
    """Split `table` into valid rows and quarantined rows with a reason per row.

    Raises `SchemaError` when the columns themselves are wrong (missing, misspelled,
    unexpected or duplicated), because then no row can be judged.
    """
    check_columns(list(table.columns), columns)
    table = table.reset_index(drop=True)
    numeric = pd.DataFrame(index=table.index)
    reasons: dict[int, list[str]] = {}
    for name in columns:
        numeric[name], not_number, too_long = _numeric(table[name])
        for row in np.flatnonzero(too_long):
            reasons.setdefault(int(row), []).append(
                too_long_problem(repr(name), len(str(table.at[row, name])))
            )
        for row in np.flatnonzero(not_number.to_numpy() & ~too_long):
            reasons.setdefault(int(row), []).append(
                f"{name}={_quoted(table.at[row, name])} is not a number"
            )

    try:
        pandera_schema(columns).validate(numeric, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases.dropna(subset=["index"])
        for case in cases.itertuples(index=False):
            row = int(case.index)
            if (
                table.at[row, case.column] is not None
                and row in reasons
                and any(
                    r.startswith((f"{case.column}=", f"field {case.column!r} has"))
                    for r in reasons[row]
                )
            ):
                continue  # already reported as not a number, or too long
            if case.check == "not_nullable":
                reasons.setdefault(row, []).append(f"{case.column} is missing")
            else:
                value = _plain(table.at[row, case.column])
                reasons.setdefault(row, []).append(
                    f"{case.column}={value} {_domain_text(case.column)}"
                )

    if ROW_PROBLEM in table.columns:  # rows the reader could not split: their reason only
        problems = table[ROW_PROBLEM]
        for row in np.flatnonzero(problems.notna().to_numpy()):
            reasons[int(row)] = [str(problems.iat[row])]
    bad_rows = np.array(sorted(reasons), dtype=np.int64)
    is_bad = np.zeros(len(table), dtype=bool)
    is_bad[bad_rows] = True
    valid = numeric.loc[~is_bad, list(columns)].astype(np.int8).reset_index(drop=True)
    quarantined = table.loc[is_bad, list(columns)].astype("string").copy()
    for name in columns:  # a rejects file holds no cell longer than the cap either
        quarantined[name] = quarantined[name].map(clipped, na_action="ignore").astype("string")
    quarantined.insert(0, ROW, bad_rows + 1)
    quarantined[REASON] = pd.array(["; ".join(reasons[int(r)]) for r in bad_rows], dtype="string")
    return ValidationResult(valid=valid, quarantined=quarantined.reset_index(drop=True))


def _quoted(value: object) -> str:
    """A cell in a reason, as Python writes it ('x', True), clipped to `MAX_CELL_CHARS`."""
    return repr(clipped(value)) if isinstance(value, str) else clipped(repr(value))


def _plain(value: object) -> str:
    """A cell as the user wrote it: text stripped, whole floats without the ``.0``."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class DuplicateCounter:
    """Counts of distinct rows, fed chunk by chunk: memory grows with distinct rows (16 bytes
    each), not with the file.

    Rows are keyed by `row_ids`, an exact integer encoding, so no hash can collide.
    """

    def __init__(self) -> None:
        self.keys = np.empty(0, dtype=np.int64)  # sorted, distinct
        self.counts = np.empty(0, dtype=np.int64)

    def add(self, valid: pd.DataFrame) -> int:
        """Count the rows of `valid`; return how many distinct rows were new."""
        keys, counts = np.unique(row_ids(valid), return_counts=True)
        where = np.searchsorted(self.keys, keys)
        seen = where < len(self.keys)
        seen[seen] = self.keys[where[seen]] == keys[seen]
        np.add.at(self.counts, where[seen], counts[seen])
        self.keys = np.insert(self.keys, where[~seen], keys[~seen])
        self.counts = np.insert(self.counts, where[~seen], counts[~seen])
        return int((~seen).sum())

    def stats(self) -> dict[str, int]:
        """Exact duplicates and feature vectors that carry both labels, over the rows added."""
        # A row id is its feature vector's id * 2 + label bit, and the ids are sorted: a vector
        # with both labels is two neighbouring ids with the same vector id.
        vectors = self.keys >> 1
        both = vectors[1:] == vectors[:-1]
        return {
            "exact_duplicate_rows": int(self.counts.sum()) - len(self.keys),
            "unique_rows": len(self.keys),
            "unique_feature_vectors": len(self.keys) - int(both.sum()),
            "conflicting_feature_vectors": int(both.sum()),
            "conflicting_rows": int(self.counts[:-1][both].sum() + self.counts[1:][both].sum()),
        }


def duplicate_stats(valid: pd.DataFrame) -> dict[str, int]:
    """Exact duplicates and feature vectors that carry both labels, over valid rows."""
    counter = DuplicateCounter()
    counter.add(valid)
    return counter.stats()
