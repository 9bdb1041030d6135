"""What the checks find, as data, and the two ways of saying it.

Every check of the data (`phishguard.contract.checks`, and its fast numpy twin
`phishguard.contract.record_checks`) reports `Problem`s: which row, which field, what kind of
problem, which value. They are written out in two renderings, each defined once here:

- `reason`: the quarantine reason of a table row, as the `validate` stage, `phishguard load`
  and `phishguard predict`'s rejects file write it: `port=5 not in {-1, 1}`;
- `record_message`: the API's message for a JSON record: `record 2: field 'port' = 5 is not
  in {-1, 1}`.

A table row refused by the API (a CSV upload) is named with its reason (`rows_error`).

The column problems of a whole table render as one `SchemaError` line (`schema_message`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any, NamedTuple

from phishguard import PhishguardError
from phishguard.contract.schema import DOMAINS, MAX_CELL_CHARS, clipped, too_long_problem

# Problems past this many are counted, not described: describing one (a misspelling guess, a
# long value) can cost more than finding it, and an 8 MiB body can hold 400,000 of them.
MAX_REPORTED_PROBLEMS = 20


# The kinds of problem. A cell: MISSING, NOT_A_NUMBER (table text), NOT_AN_INTEGER (a JSON value
# of another type), FAR_OUTSIDE (beyond int64, or too long to parse), OUT_OF_DOMAIN, TOO_LONG
# (over MAX_CELL_CHARS; `value` is the length). A row: UNREADABLE (the CSV reader could not split
# it; `value` is why), NOT_A_RECORD, NO_RECORDS. A field of a record or a column of a table:
# UNKNOWN (`value` is the feature it is probably a misspelling of, or None), DUPLICATED; a
# missing column's MISSING has for `value` the unknown column probably meant for it, or None.
class Kind(StrEnum):
    """What kind of problem a `Problem` is."""

    MISSING = "missing"
    NOT_A_NUMBER = "not a number"
    NOT_AN_INTEGER = "not an integer"
    FAR_OUTSIDE = "far outside"
    OUT_OF_DOMAIN = "out of domain"
    TOO_LONG = "too long"
    UNREADABLE = "unreadable"
    NOT_A_RECORD = "not a record"
    NO_RECORDS = "no records"
    UNKNOWN = "unknown"
    DUPLICATED = "duplicated"


# difflib's ratio is at most 2·min(a, b) / (a + b), so a name over 5/3 of the longest candidate's
# length can never reach the 0.75 cutoff: skip the guess instead of paying for it.
_CUTOFF = 0.75
_LONGEST_GUESSABLE = len(max(DOMAINS, key=len)) * 5 // 3 + 1


class Problem(NamedTuple):
    """One problem: `row` (0-based; None for a whole column), `field`, `kind`, `value`.

    A named tuple, not a dataclass: a request can hold 100,000s of them, made 4x faster.
    """

    row: int | None
    field: str | None
    kind: Kind
    value: Any = None


class SchemaError(PhishguardError, ValueError):
    """The table's columns do not match the schema; no row can be judged."""


class RecordError(PhishguardError, ValueError):
    """Some records do not match the schema; `problems` says which record and which field."""

    def __init__(self, problems: list[str], more: int = 0) -> None:
        self.problems = problems[:MAX_REPORTED_PROBLEMS]
        self.more = more + len(problems) - len(self.problems)
        tail = f"; … and {self.more} more" if self.more > 0 else ""
        super().__init__("; ".join(self.problems) + tail)


class TooManyRecordsError(PhishguardError, ValueError):
    """A request holds more records than the configured limit."""


def record_error(problems: Sequence[Problem], more: int = 0) -> RecordError:
    """The API's error for `problems` (the first `MAX_REPORTED_PROBLEMS` described), plus
    `more` found but not described."""
    shown = [record_message(p) for p in problems[:MAX_REPORTED_PROBLEMS]]
    return RecordError(shown, more + len(problems) - len(shown))


def rows_error(reasons: Iterable[tuple[int, str]]) -> RecordError:
    """The API's error for table rows refused with their quarantine reasons (a CSV upload):
    `row 3: port=5 not in {-1, 1}`, rows numbered from 1 as in the file."""
    return RecordError([f"row {row}: {text}" for row, text in reasons])


def misspelled(name: Any, candidates: Iterable[str]) -> str | None:
    """The candidate `name` is probably a misspelling of (close spelling, or the same name in
    another case), else None. The cost is bounded whatever `name` is."""
    candidates = list(candidates)
    if not isinstance(name, str) or not candidates:
        return None
    if len(name) <= _LONGEST_GUESSABLE:
        near = difflib.get_close_matches(name, candidates, n=1, cutoff=_CUTOFF)
        if near:
            return near[0]
    return {c.strip().lower(): c for c in candidates}.get(name.strip().lower())


def _domain_text(field: str) -> str:
    """`{-1, 0, 1}`: the allowed values of `field`."""
    return "{" + ", ".join(map(str, DOMAINS[field])) + "}"


def _far_outside_text(value: int) -> str:
    """An integer beyond int64 as a message shows it (a very long one by its size only)."""
    return str(value) if value.bit_length() < 128 else f"an integer of {value.bit_length()} bits"


def reason(problems: Iterable[Problem]) -> str:
    """The quarantine reason of one table row: its problems, `; `-joined."""
    return "; ".join(map(_reason_part, problems))


def _reason_part(problem: Problem) -> str:
    field, value = problem.field, problem.value
    match problem.kind:
        case Kind.TOO_LONG:
            return too_long_problem(repr(field), value)
        case Kind.NOT_A_NUMBER:
            shown = repr(clipped(value)) if isinstance(value, str) else clipped(repr(value))
            return f"{field}={shown} is not a number"
        case Kind.MISSING:
            return f"{field} is missing"
        case Kind.OUT_OF_DOMAIN:
            return f"{field}={_plain(value)} not in {_domain_text(field)}"
        case Kind.UNREADABLE:
            return str(value)
    raise ValueError(f"no quarantine reason for a {problem.kind!r} problem")


def record_message(problem: Problem) -> str:
    """The API's message for one problem of a JSON record: `record 2: field 'port' = …`."""
    field, value = problem.field, problem.value
    match problem.kind:
        case Kind.NO_RECORDS:
            return "no records: send at least one"
        case Kind.NOT_A_RECORD:
            text = "expected an object of the 30 features"
        case Kind.UNKNOWN:
            guess = f" (misspelled {value!r}?)" if value else ""
            text = f"unknown field {_shown(field)}{guess}"
        case Kind.MISSING:
            text = f"missing field {field!r}"
        case Kind.NOT_AN_INTEGER:
            text = f"field {field!r} must be an integer, got {_shown(value)}"
        case Kind.OUT_OF_DOMAIN:
            text = f"field {field!r} = {value} is not in {_domain_text(field)}"
        case Kind.FAR_OUTSIDE:
            shown = _far_outside_text(value) if isinstance(value, int) else value
            text = f"field {field!r} = {shown} is far outside {_domain_text(field)}"
        case _:
            raise ValueError(f"no record message for a {problem.kind!r} problem")
    return f"record {problem.row}: {text}"


def schema_message(problems: Sequence[Problem]) -> str:
    """The column problems of a table as one line: `schema error: missing column SFH; …`."""
    return "schema error: " + columns_message(problems)


def columns_message(problems: Sequence[Problem]) -> str:
    """The column problems of a table: `duplicated column(s) SFH; missing column port; …`."""
    parts = []
    duplicated = [p.field for p in problems if p.kind == Kind.DUPLICATED]
    if duplicated:
        parts.append(f"duplicated column(s) {', '.join(duplicated)}")
    for p in problems:
        if p.kind == Kind.MISSING:
            near = f" (found {p.value!r} — misspelled?)" if p.value else ""
            parts.append(f"missing column {p.field}{near}")
    unmatched = [p.field for p in problems if p.kind == Kind.UNKNOWN and not p.value]
    if unmatched:
        parts.append(f"unexpected column(s) {', '.join(map(repr, unmatched))}")
    return "; ".join(parts)


def _plain(value: object) -> str:
    """A cell as the user wrote it: text stripped, whole floats without the ``.0``."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


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
