"""Validation quarantines bad rows with reasons, never drops one, and names bad columns."""

import numpy as np
import pandas as pd
import pytest

from phishguard.contract.problems import SchemaError
from phishguard.contract.schema import COLUMNS
from phishguard.data.quarantine_file import quarantine_file
from phishguard.data.validate import DuplicateCounter, quarantine
from tests.support import synthetic_rows


def duplicate_stats(valid: pd.DataFrame) -> dict[str, int]:
    counter = DuplicateCounter()
    counter.add(valid)
    return counter.stats()


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


def test_duplicate_counts_fed_in_chunks_equal_the_whole_table(real_table):
    valid = quarantine(real_table).valid
    counter = DuplicateCounter()
    new = [counter.add(valid.iloc[start : start + 1_000]) for start in range(0, len(valid), 1_000)]
    assert counter.stats() == duplicate_stats(valid)
    assert sum(new) == 5_849  # each distinct row is new exactly once


def test_quarantine_file_in_chunks_numbers_rows_in_the_whole_file(tmp_path):
    rows = synthetic_rows(1_000).astype("string")
    rows.loc[3, "SFH"] = "x"
    rows.loc[702, "port"] = "2"
    rows.loc[999, "Result"] = pd.NA
    raw = tmp_path / "raw.parquet"
    rows.to_parquet(raw, index=False)
    valid_out, bad_out = tmp_path / "valid.parquet", tmp_path / "quarantine.csv"

    counts = quarantine_file(raw, valid_out, bad_out, chunk_rows=128)

    whole = quarantine(rows)
    assert (counts.input_rows, counts.valid_rows, counts.quarantined_rows) == (1_000, 997, 3)
    pd.testing.assert_frame_equal(pd.read_parquet(valid_out), whole.valid)
    bad = pd.read_csv(bad_out, dtype=str, keep_default_na=False)
    assert bad["row"].tolist() == ["4", "703", "1000"]
    assert bad["reason"].tolist() == whole.quarantined["reason"].tolist()
    assert counts.report()["quarantined_by_reason"] == whole.reason_counts()
    assert {k: counts.report()[k] for k in duplicate_stats(whole.valid)} == duplicate_stats(
        whole.valid
    )


def test_quarantine_file_with_wrong_columns_writes_nothing(tmp_path):
    raw = tmp_path / "raw.parquet"
    synthetic_rows(5).drop(columns="SFH").to_parquet(raw, index=False)
    with pytest.raises(SchemaError, match="missing column SFH"):
        quarantine_file(raw, tmp_path / "valid.parquet", tmp_path / "quarantine.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw.parquet"]
