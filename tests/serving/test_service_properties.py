"""Property tests of the service's validation + scoring path (`records_matrix` + `Scorer`):
any record drawn from the schema's domains scores, and any single value outside them is
rejected naming the record and field. (`tests/test_properties.py` covers the file path.)"""

from __future__ import annotations

import difflib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phishguard.contract.record_checks import MAX_REPORTED_PROBLEMS, RecordError, records_matrix
from phishguard.contract.schema import DOMAINS, FEATURES

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
valid_record = st.fixed_dictionaries({name: st.sampled_from(DOMAINS[name]) for name in FEATURES})


@st.composite
def one_bad_value(draw):
    """(records, index, field): valid records with one value outside its field's domain."""
    batch = draw(st.lists(valid_record, min_size=1, max_size=5))
    index = draw(st.integers(0, len(batch) - 1))
    field = draw(st.sampled_from(FEATURES))
    value = draw(
        st.one_of(
            st.integers().filter(lambda v: v not in DOMAINS[field]),
            st.floats(allow_nan=True),
            st.booleans(),
            st.none(),
            st.text(max_size=5),
            st.lists(st.integers(-1, 1), max_size=2),
        )
    )
    batch[index] = {**batch[index], field: value}
    return batch, index, field


@SETTINGS
@given(batch=st.lists(valid_record, min_size=1, max_size=20))
def test_records_from_the_domains_always_score(scorer, batch) -> None:
    matrix = records_matrix(batch, 100)
    results = scorer.results(matrix)
    assert len(results) == len(batch)
    proba = np.array([r["phishing_probability"] for r in results])
    assert np.all((proba >= 0) & (proba <= 1))
    assert all(r["label"] in ("phishing", "legitimate") for r in results)


@SETTINGS
@given(case=one_bad_value())
def test_any_value_outside_its_domain_is_rejected_by_record_and_field(case) -> None:
    batch, index, field = case
    with pytest.raises(RecordError) as caught:
        records_matrix(batch, 100)
    assert f"record {index}: field {field!r}" in str(caught.value)


@SETTINGS
@given(batch=st.lists(valid_record, min_size=1, max_size=3), key=st.text(min_size=1))
def test_any_unknown_field_is_rejected(batch, key) -> None:
    if key in FEATURES:
        return
    batch[-1] = {**batch[-1], key: 1}
    with pytest.raises(RecordError, match=f"record {len(batch) - 1}: unknown field"):
        records_matrix(batch, 100)


@st.composite
def many_problems(draw):
    """(records, problems): records with fields renamed, missing or mistyped (one kind per
    batch: shape problems are reported before type problems), and how many problems."""
    batch = draw(st.lists(valid_record, min_size=1, max_size=40))
    kind = draw(st.sampled_from(["unknown", "missing", "text"]))
    problems = 0
    for index, record in enumerate(batch):
        fields = draw(st.lists(st.sampled_from(FEATURES), min_size=1, max_size=30, unique=True))
        for name in fields:
            value = record.pop(name)
            if kind == "unknown":  # unknown + missing: far from any name, so never paired
                record[f"zz{len(name)}_{name.upper()}"] = value
                problems += 2
            elif kind == "text":
                record[name] = str(value)
                problems += 1
            else:
                problems += 1
        batch[index] = record
    return batch, problems


@SETTINGS
@given(case=many_problems())
def test_error_messages_are_bounded_and_count_the_rest(case, monkeypatch) -> None:
    """At most MAX_REPORTED_PROBLEMS problems are described (and misspellings guessed), the
    rest counted: a body full of bad keys cannot make the message, or its cost, grow."""
    batch, total = case
    guesses = []
    real_guess = difflib.get_close_matches
    monkeypatch.setattr(
        difflib, "get_close_matches", lambda *a, **k: guesses.append(a) or real_guess(*a, **k)
    )
    with pytest.raises(RecordError) as caught:
        records_matrix(batch, 100)
    error = caught.value
    assert len(error.problems) == min(total, MAX_REPORTED_PROBLEMS)
    assert len(guesses) <= MAX_REPORTED_PROBLEMS
    if total > MAX_REPORTED_PROBLEMS:
        assert str(error).endswith(f"; … and {total - MAX_REPORTED_PROBLEMS} more")
    else:
        assert "more" not in str(error)


@SETTINGS
@given(key=st.text(min_size=1).map(lambda k: k * 1000), value=st.text(min_size=1000))
def test_long_keys_and_values_are_quoted_briefly_and_never_guessed(key, value, monkeypatch):
    monkeypatch.setattr(difflib, "get_close_matches", lambda *a, **k: pytest.fail("guessed"))
    record = {**dict(zip(FEATURES[1:], [1] * 29, strict=True)), FEATURES[0]: value, key: 1}
    with pytest.raises(RecordError) as caught:
        records_matrix([record], 100)
    assert "record 0: unknown field" in str(caught.value)
    assert len(str(caught.value)) < 400
