"""The schema module pins the dataset's exact shape; these facts come from the UCI docs."""

import numpy as np
import pandas as pd
import pytest

from phishguard.contract.schema import (
    COLUMNS,
    DOMAINS,
    FEATURES,
    LABEL,
    content_sha256,
    feature_vector_ids,
    to_target,
)
from tests.support import synthetic_rows

TERNARY = {
    "URL_Length",
    "having_Sub_Domain",
    "SSLfinal_State",
    "URL_of_Anchor",
    "Links_in_tags",
    "SFH",
    "web_traffic",
    "Links_pointing_to_page",
}


def test_thirty_features_then_the_label():
    assert len(FEATURES) == 30
    assert len(set(FEATURES)) == 30
    assert COLUMNS[-1] == LABEL == "Result"


def test_domains_are_pinned_exactly():
    assert {c for c, d in DOMAINS.items() if d == (-1, 0, 1)} == TERNARY
    assert DOMAINS["Redirect"] == (0, 1)
    binary = {c for c, d in DOMAINS.items() if d == (-1, 1)}
    assert len(binary) == 22  # 21 features + Result
    assert LABEL in binary


def test_schema_matches_the_real_header(real_table):
    assert tuple(real_table.columns) == COLUMNS


def test_label_mapping_phishing_is_positive():
    result = pd.Series([-1, 1, -1], dtype=np.int8)
    assert to_target(result).tolist() == [1, 0, 1]


def test_label_mapping_rejects_unknown_labels():
    with pytest.raises(ValueError, match="outside"):
        to_target(pd.Series([0, 1]))


def test_feature_vector_ids_equal_exactly_for_equal_vectors():
    rows = synthetic_rows(500, seed=3)
    rows = pd.concat([rows, rows.iloc[:50]], ignore_index=True)
    ids = feature_vector_ids(rows)
    vectors = rows.loc[:, list(FEATURES)].astype(str).agg(",".join, axis=1)
    assert len(set(ids)) == vectors.nunique()
    assert (ids[:50] == ids[500:]).all()


def test_content_hash_ignores_dtype_but_not_values():
    rows = synthetic_rows(20)
    assert content_sha256(rows) == content_sha256(rows.astype(np.int64))
    changed = rows.copy()
    changed.iloc[0, 0] = -changed.iloc[0, 0]
    assert content_sha256(changed) != content_sha256(rows)
