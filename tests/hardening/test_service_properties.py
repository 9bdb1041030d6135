"""Property tests of the service's validation + scoring path (`records_matrix` + `Scorer`):
any record drawn from the schema's domains scores, and any single value outside them is
rejected naming the record and field. (`tests/test_properties.py` covers the file path.)"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phishguard.record_checks import RecordError, records_matrix
from phishguard.schema import DOMAINS, FEATURES

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
