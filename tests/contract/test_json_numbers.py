"""`phishguard.contract.json_numbers`: numbers too long for the JSON parser, named by where they are."""

from __future__ import annotations

from http import HTTPStatus

import pydantic_core
import pytest

from phishguard.contract.json_numbers import MAX_DIGITS, long_number_problem
from phishguard.contract.problems import MAX_REPORTED_PROBLEMS

LONG = b"9" * (MAX_DIGITS + 1)


def test_the_limit_is_the_parsers() -> None:
    pydantic_core.from_json(b"[" + b"9" * MAX_DIGITS + b"]")
    with pytest.raises(ValueError, match="number out of range"):
        pydantic_core.from_json(b"[" + LONG + b"]")


@pytest.mark.parametrize(
    "body",
    [
        b'{"records": [{"port": ' + b"9" * MAX_DIGITS + b"}]}",  # parses: not ours to answer
        b'{"records": [{"port": "' + LONG + b'"}]}',  # digits in a string
        b'{"records": [{"port": 0.' + LONG + b"}]}",  # a long fraction parses
        b'{"records": [{"port": ' + LONG + b"}]",  # not JSON: the parser's answer stands
        b"[" * 100_000 + LONG + b"]" * 100_000,  # deeper than the standard library reads
    ],
    ids=["4300 digits", "in a string", "long fraction", "invalid JSON", "too deep"],
)
def test_nothing_to_explain(body: bytes) -> None:
    assert long_number_problem(body) is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"-" + LONG, "the body = an integer of 4301 digits is longer than the 4300"),
        (b'{"top": ' + LONG + b"}", "field 'top' = an integer of 4301 digits"),
        (b'{"records": {"SFH": ' + LONG + b"}}", "['records']['SFH'] = an integer of 4301"),
        (b'[1, {"a": [' + LONG + b"e5]}]", "[1]['a'][0] = a number of 4301 digits"),
    ],
)
def test_outside_a_record_is_400_naming_the_place(body: bytes, message: str) -> None:
    status, text = long_number_problem(body)
    assert (status, message in text) == (HTTPStatus.BAD_REQUEST, True), text


def test_many_are_reported_like_other_record_errors() -> None:
    records = b",".join(b'{"SFH": ' + LONG + b"}" for _ in range(MAX_REPORTED_PROBLEMS + 2))
    status, text = long_number_problem(b'{"records": [' + records + b"]}")
    assert status == HTTPStatus.UNPROCESSABLE_ENTITY
    assert text.startswith("record 0: field 'SFH' = an integer of 4301 digits is far outside")
    last = MAX_REPORTED_PROBLEMS - 1
    assert f"record {last}: field 'SFH'" in text and text.endswith("; … and 2 more")
