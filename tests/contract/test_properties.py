"""Property-based checks of the schema: every in-domain row is valid, anything else is not."""

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from phishguard.contract.schema import COLUMNS, DOMAINS
from phishguard.data.validate import quarantine

in_domain_rows = st.fixed_dictionaries({name: st.sampled_from(DOMAINS[name]) for name in COLUMNS})
odd_values = st.one_of(
    st.integers().filter(lambda v: v not in (-1, 0, 1)),
    st.floats(allow_nan=False).filter(lambda v: v not in (-1.0, 0.0, 1.0)),
    st.text(max_size=8).filter(
        lambda s: s.strip() not in ("-1", "0", "1", "1.0", "-1.0", "0.0", "+1")
    ),
    st.booleans(),
    st.none(),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(in_domain_rows, min_size=1, max_size=20))
def test_rows_drawn_from_the_domains_are_valid(rows):
    result = quarantine(pd.DataFrame(rows, columns=list(COLUMNS)))
    assert len(result.valid) == len(rows)
    assert result.quarantined.empty


@settings(max_examples=150, deadline=None)
@given(in_domain_rows, st.sampled_from(COLUMNS), odd_values)
def test_any_value_outside_a_domain_is_quarantined_with_its_column(row, column, value):
    row = dict(row)
    if value in DOMAINS[column] and not isinstance(value, bool):
        return
    row[column] = value
    table = pd.DataFrame([row], columns=list(COLUMNS)).astype(object)
    result = quarantine(table)
    assert result.valid.empty
    assert len(result.quarantined) == 1
    assert result.quarantined["reason"].iloc[0].startswith(column)
