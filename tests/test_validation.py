"""Validation quarantines bad rows with reasons, never drops one, and names bad columns."""

import numpy as np
import pandas as pd
import pytest

from phishguard.schema import COLUMNS
from phishguard.validation import SchemaError, duplicate_stats, quarantine
from tests.conftest import synthetic_rows


def test_real_data_is_all_valid_with_the_known_duplicates(real_table):
    result = quarantine(real_table)
    assert len(result.valid) == 11_055
    assert result.quarantined.empty
    assert result.valid.dtypes.eq(np.int8).all()
    assert duplicate_stats(result.valid) == {
        "exact_duplicate_rows": 5_206,
        "unique_rows": 5_849,
        "unique_feature_vectors": 5_785,
        "conflicting_feature_vectors": 64,
        "conflicting_rows": 357,
    }


def test_bad_rows_are_quarantined_with_one_reason_each():
    rows = synthetic_rows(10).astype(object)
    rows.loc[1, "URL_Length"] = 2
    rows.loc[2, "SFH"] = "x"
    rows.loc[3, "Redirect"] = None
    rows.loc[4, "Result"] = 0.5
    rows.loc[5, "port"] = -2
    rows.loc[6, "Favicon"] = True
    rows.loc[7, "Iframe"] = " 1 "  # padded text is a valid number
    result = quarantine(rows)
    reasons = dict(zip(result.quarantined["row"], result.quarantined["reason"], strict=True))
    assert reasons == {
        2: "URL_Length=2 not in {-1, 0, 1}",
        3: "SFH='x' is not a number",
        4: "Redirect is missing",
        5: "Result=0.5 not in {-1, 1}",
        6: "port=-2 not in {-1, 1}",
        7: "Favicon=True is not a number",
    }
    assert len(result.valid) + len(result.quarantined) == len(rows)


def test_several_problems_in_one_row_are_all_reported():
    rows = synthetic_rows(3).astype(object)
    rows.loc[0, "URL_Length"] = 5
    rows.loc[0, "SFH"] = "abc"
    result = quarantine(rows)
    assert set(result.quarantined.loc[0, "reason"].split("; ")) == {
        "SFH='abc' is not a number",
        "URL_Length=5 not in {-1, 0, 1}",
    }
    assert result.reason_counts() == {"SFH is not a number": 1, "URL_Length not in {-1, 0, 1}": 1}


def test_strings_are_coerced():
    rows = synthetic_rows(50).astype(str)
    result = quarantine(rows)
    assert len(result.valid) == 50
    pd.testing.assert_frame_equal(result.valid, synthetic_rows(50)[list(COLUMNS)])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop(columns="SFH"), "missing column SFH"),
        (
            lambda t: t.rename(columns={"Favicon": "favicon"}),
            "missing column Favicon (found 'favicon'",
        ),
        (lambda t: t.rename(columns={"Page_Rank": "Page_Rnak"}), "found 'Page_Rnak' — misspelled?"),
        (lambda t: t.assign(extra=1), "unexpected column(s) 'extra'"),
    ],
)
def test_wrong_columns_are_a_schema_error_naming_them(change, message):
    with pytest.raises(SchemaError) as raised:
        quarantine(change(synthetic_rows(5)))
    assert message in str(raised.value)


def test_empty_table_yields_nothing_and_loses_nothing():
    result = quarantine(synthetic_rows(0))
    assert result.valid.empty and result.quarantined.empty
