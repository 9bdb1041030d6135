"""JSON numbers too long for the service's parser, found and named by where they are.

pydantic's JSON parser (jiter) refuses a number whose integer part has more than 4,300 digits
(the default of Python's int-string conversion limit) with a generic "Invalid JSON: number out
of range", which names neither the record nor the field. `long_number_problem` reads such a
body again with the standard library, which hands every number over as text (so nothing is
converted and the limit never trips), and names each one:
`record 1: field 'port' = an integer of 5000 digits is far outside {-1, 1}`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from phishguard.contract.problems import Kind, Problem, RecordError, record_message
from phishguard.contract.schema import FEATURES

MAX_DIGITS = 4300  # jiter's limit on a number's integer part (4,300 parse, 4,301 do not)

# Every digit as "0", every other byte as " ": a long number is then a long run of "0".
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_RUN = b"0" * (MAX_DIGITS + 1)
_INTEGER_PART = re.compile(r"-?([0-9]*)")
_FEATURE_SET = frozenset(FEATURES)
# What the parse below leaves of every value but a long number or a container (numbers that
# parse become None): a container holding only these needs no closer look.
_PLAIN = frozenset({type(None), bool, str})


@dataclass(frozen=True)
class _LongNumber:
    kind: str
    digits: int

    def __str__(self) -> str:
        return f"{self.kind} of {self.digits} digits"


def long_number_problem(body: bytes) -> tuple[HTTPStatus, str] | None:
    """The status and message for a JSON body holding numbers too long to parse, else None.

    Inside a record (`{"records": [...]}`) each is a 422 naming the record and the field, as
    for any other out-of-domain value; anywhere else a 400 naming its place. None when no
    number is that long (a run of digits inside a string is fine) or when the body is not
    JSON at all: then the parser's own answer stands.
    """
    if _LONG_RUN not in body.translate(_DIGITS_AS_ZEROS):  # ~1 ms a MB, unlike a regex
        return None
    try:
        document = json.loads(
            body,
            parse_int=lambda text: _long_number("an integer", text),
            parse_float=lambda text: _long_number("a number", text),
            parse_constant=lambda _: None,
        )
    except (ValueError, RecursionError):
        return None
    found = list(_long_numbers(document))
    if not found:
        return None
    problems = [_problem(place, number) for place, number in found]
    in_records = all(_record_field(place) for place, _ in found)
    status = HTTPStatus.UNPROCESSABLE_ENTITY if in_records else HTTPStatus.BAD_REQUEST
    return status, str(RecordError(problems))


def _long_number(kind: str, text: str) -> _LongNumber | None:
    if len(text) <= MAX_DIGITS:  # nearly every number: no need to look closer
        return None
    digits = len(_INTEGER_PART.match(text).group(1))
    return _LongNumber(kind, digits) if digits > MAX_DIGITS else None


def _long_numbers(document: Any) -> Iterator[tuple[tuple[Any, ...], _LongNumber]]:
    """Every long number with its place (keys and indices from the top), in document order."""
    pending: list[tuple[tuple[Any, ...], Any]] = [((), document)]
    while pending:  # a stack, not recursion: the nesting may be as deep as json allows
        place, value = pending.pop()
        if isinstance(value, _LongNumber):
            yield place, value
        elif isinstance(value, dict):
            if not set(map(type, value.values())) <= _PLAIN:
                pending.extend(((*place, k), v) for k, v in reversed(value.items()))
        elif isinstance(value, list) and not set(map(type, value)) <= _PLAIN:
            pending.extend(((*place, i), v) for i, v in reversed(list(enumerate(value))))


def _record_field(place: tuple[Any, ...]) -> bool:
    return len(place) == 3 and place[0] == "records" and isinstance(place[1], int)


def _problem(place: tuple[Any, ...], number: _LongNumber) -> str:
    too_long = f"{number} is longer than the {MAX_DIGITS} digits a JSON number may have"
    if _record_field(place):
        index, name = place[1], place[2]
        if name in _FEATURE_SET:
            return record_message(Problem(index, name, Kind.FAR_OUTSIDE, str(number)))
        return f"record {index}: unknown field {name!r} = {too_long}"
    if len(place) == 1:
        return f"field {place[0]!r} = {too_long}"
    where = "".join(f"[{step!r}]" for step in place) or "the body"
    return f"{where} = {too_long}"
