"""The check engine: structured problems, their two renderings, and the numpy fast path
reaching the same verdicts and messages as the pandera judge on generated batches."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phishguard.contract.checks import column_problems, judge_records, judge_table
from phishguard.contract.problems import (
    Kind,
    Problem,
    RecordError,
    misspelled,
    reason,
    record_error,
    record_message,
    schema_message,
)
from phishguard.contract.record_checks import (
    arrow_columns,
    clean_rows,
    frame_matrix,
    records_matrix,
)
from phishguard.contract.schema import COLUMNS, DOMAINS, FEATURES

valid_record = st.fixed_dictionaries({name: st.sampled_from(DOMAINS[name]) for name in FEATURES})
odd_value = st.one_of(
    st.integers(-3, 3),
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**70),
    st.integers(min_value=-(2**70), max_value=-(2**63) + 2),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1.0, -1.0, 0.0, math.nan]),
    st.text(max_size=4),
    st.sampled_from(["1", "-1", " 0", "+1"]),
    st.booleans(),
    st.none(),
    st.lists(st.integers(-1, 1), max_size=2),
)


@st.composite
def record_batches(draw):
    """Records drawn from the domains, then spoiled: values replaced by any JSON value, keys
    dropped, renamed (some close to a feature) or added, records replaced by non-objects."""
    batch = draw(st.lists(valid_record, min_size=1, max_size=8))
    for _ in range(draw(st.integers(0, 4))):
        index = draw(st.integers(0, len(batch) - 1))
        record = dict(batch[index]) if isinstance(batch[index], dict) else {}
        action = draw(st.sampled_from(["value", "value", "drop", "rename", "add", "not a record"]))
        name = draw(st.sampled_from(FEATURES))
        if action == "value":
            record[name] = draw(odd_value)
        elif action == "drop":
            record.pop(name, None)
        elif action == "rename" and name in record:
            record[draw(st.sampled_from([name.lower(), name[:-1], f"{name}_x", "zzz"]))] = (
                record.pop(name)
            )
        elif action == "add":
            record[draw(st.sampled_from(["Result", "extra", name.upper()]))] = 1
        batch[index] = record if action != "not a record" else draw(st.sampled_from([[1], "x"]))
    return batch


def _by_the_judge(records):
    """The pandera judge's verdict on `records`: the matrix, or the error it would raise."""
    problems, more = judge_records(records)
    if problems or more:
        return record_error(problems, more)
    table = pd.DataFrame([[r[f] for f in FEATURES] for r in records], columns=list(FEATURES))
    return table.to_numpy(dtype=np.float32)


@settings(max_examples=150, deadline=None)
@given(batch=record_batches())
def test_numpy_and_pandera_reach_the_same_verdicts_and_messages_on_records(batch):
    expected = _by_the_judge(batch)
    try:
        matrix = records_matrix(batch, 100)
    except RecordError as error:
        assert isinstance(expected, RecordError), f"numpy rejected what pandera accepts: {error}"
        assert str(error) == str(expected)
        assert error.problems == expected.problems
        return
    assert not isinstance(expected, RecordError), f"numpy accepted: {expected}"
    np.testing.assert_array_equal(matrix, expected)


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(valid_record, min_size=1, max_size=8),
    spoil=st.lists(
        st.tuples(
            st.integers(0, 7),
            st.sampled_from(FEATURES),
            st.one_of(odd_value, st.sampled_from(["1", " -1 ", "+1", "1.0", "", None])),
        ),
        max_size=3,
    ),
)
def test_numpy_never_accepts_a_table_the_judge_rejects(rows, spoil):
    table = pd.DataFrame(rows, columns=list(FEATURES)).astype(object)
    for row, name, value in spoil:
        if row < len(table) and not isinstance(value, list):
            table.at[row, name] = value
    as_text = table.map(lambda v: v if v is None or isinstance(v, str) else str(v))
    for candidate in (table, as_text):
        fast = frame_matrix(candidate)
        numeric, problems = judge_table(candidate, FEATURES)
        # numpy may leave a table it cannot read fast (`1.0`, ` 1 `) to the judge, but never
        # accepts one the judge would reject, and never reads a value differently.
        if problems:
            assert fast is None, problems
        elif fast is not None:
            np.testing.assert_array_equal(fast, numeric.to_numpy(dtype=np.float32))


arrow_type = st.sampled_from([pa.int8(), pa.int16(), pa.int64(), pa.uint8(), pa.float64()])


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(valid_record, min_size=1, max_size=8),
    spoil=st.lists(
        st.tuples(
            st.integers(0, 7),
            st.sampled_from(FEATURES),
            st.one_of(st.none(), st.integers(-300, 300), st.floats(allow_nan=True), st.just(-0.0)),
        ),
        max_size=4,
    ),
    types=st.dictionaries(st.sampled_from(FEATURES), arrow_type, max_size=4),
)
def test_typed_arrow_rows_are_clean_only_where_the_judge_accepts_them(rows, spoil, types):
    """Parquet's typed columns (any integer width, floats, nulls) read without pandas: a row is
    clean only if the judge accepts it as the same values; the rest go to the judge."""
    table = pd.DataFrame(rows, columns=list(FEATURES)).astype(object)
    for row, name, value in spoil:
        if row < len(table):
            table.at[row, name] = value
    columns = {}
    for name in FEATURES:
        kind = types.get(name, pa.int8())
        values = table[name].tolist()
        if pa.types.is_integer(kind):  # a value the type cannot hold becomes a null
            info = np.iinfo(kind.to_pandas_dtype())
            values = [
                int(v)
                if v is not None and float(v).is_integer() and info.min <= v <= info.max
                else None
                for v in values
            ]
        else:
            values = [None if v is None else float(v) for v in values]
        columns[name] = pa.array(values, kind)
    batch = pa.table(columns)
    matrix, clean = clean_rows(arrow_columns(batch))
    numeric, problems = judge_table(batch.to_pandas(), FEATURES)
    rejected = {p.row for p in problems}
    assert not rejected & set(np.flatnonzero(clean).tolist()), problems
    accepted = np.flatnonzero(clean)
    # Bit for bit as the validated int8 rows (-0.0 read from a float column is 0).
    expected = numeric.iloc[accepted].to_numpy().astype(np.int8).astype(np.float32)
    np.testing.assert_array_equal(matrix[accepted].view(np.uint32), expected.view(np.uint32))


def test_the_judge_reports_structured_problems_row_by_row():
    table = pd.DataFrame([dict.fromkeys(COLUMNS, 1)] * 4).astype(object)
    table.loc[:, "Redirect"] = 0
    table.at[0, "port"] = 5
    table.at[1, "SFH"] = "x"
    table.at[2, "Favicon"] = None
    table.at[3, "Iframe"] = "y" * 70
    _, problems = judge_table(table)
    assert problems == [
        Problem(0, "port", Kind.OUT_OF_DOMAIN, 5),
        Problem(1, "SFH", Kind.NOT_A_NUMBER, "x"),
        Problem(2, "Favicon", Kind.MISSING),
        Problem(3, "Iframe", Kind.TOO_LONG, 70),
    ]
    assert [reason([p]) for p in problems] == [
        "port=5 not in {-1, 1}",
        "SFH='x' is not a number",
        "Favicon is missing",
        "field 'Iframe' has 70 characters; the limit is 64",
    ]


@pytest.mark.parametrize(
    ("problem", "quarantine_reason", "api_message"),
    [
        (
            Problem(2, "port", Kind.OUT_OF_DOMAIN, 5),
            "port=5 not in {-1, 1}",
            "record 2: field 'port' = 5 is not in {-1, 1}",
        ),
        (Problem(0, "SFH", Kind.MISSING), "SFH is missing", "record 0: missing field 'SFH'"),
    ],
)
def test_one_problem_has_two_renderings(problem, quarantine_reason, api_message):
    assert reason([problem]) == quarantine_reason
    assert record_message(problem) == api_message


def test_record_messages_of_each_kind():
    assert [
        record_message(p)
        for p in (
            Problem(1, "port", Kind.NOT_AN_INTEGER, "1"),
            Problem(1, "port", Kind.FAR_OUTSIDE, 2**64),
            Problem(1, "prot", Kind.UNKNOWN, "port"),
            Problem(1, "zz", Kind.UNKNOWN),
            Problem(4, None, Kind.NOT_A_RECORD),
        )
    ] == [
        "record 1: field 'port' must be an integer, got '1'",
        "record 1: field 'port' = 18446744073709551616 is far outside {-1, 1}",
        "record 1: unknown field 'prot' (misspelled 'port'?)",
        "record 1: unknown field 'zz'",
        "record 4: expected an object of the 30 features",
    ]


def test_one_column_check_for_headers_and_record_keys():
    header = [c for c in COLUMNS if c not in ("Page_Rank", "SFH")] + ["Page_Rnak", "extra"]
    problems = column_problems(header)
    assert problems == [
        Problem(None, "Page_Rnak", Kind.UNKNOWN, "Page_Rank"),
        Problem(None, "extra", Kind.UNKNOWN),
        Problem(None, "SFH", Kind.MISSING),
        Problem(None, "Page_Rank", Kind.MISSING, "Page_Rnak"),
    ]
    assert schema_message(problems) == (
        "schema error: missing column SFH; "
        "missing column Page_Rank (found 'Page_Rnak' — misspelled?); unexpected column(s) 'extra'"
    )
    record = {name: 1 for name in header if name != "Result"}
    with pytest.raises(RecordError) as caught:
        records_matrix([{**record, "Redirect": 0}], 10)
    assert str(caught.value) == (
        "record 0: unknown field 'Page_Rnak' (misspelled 'Page_Rank'?); "
        "record 0: unknown field 'extra'; record 0: missing field 'SFH'"
    )


def test_the_misspelling_guess_is_one_function():
    assert misspelled("Favicn", FEATURES) == "Favicon"
    assert misspelled("sfh", FEATURES) == "SFH"  # the same name in another case
    assert misspelled("x" * 10_000, FEATURES) is None
    assert misspelled(3, FEATURES) is None
