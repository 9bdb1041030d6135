"""The group-aware split never lets a feature vector straddle train and test."""

import numpy as np
import pandas as pd

from phishguard.contract.schema import TARGET, feature_vector_ids
from phishguard.data.validate import quarantine
from phishguard.modeling.split import group_aware_split, split_report, with_target


def real_targets(real_table: pd.DataFrame) -> pd.DataFrame:
    return with_target(quarantine(real_table).valid)


def test_no_feature_vector_on_both_sides_of_the_real_split(real_table):
    table = real_targets(real_table)
    train, test = group_aware_split(table, test_size=0.2, seed=42)
    assert len(train) + len(test) == len(table)
    assert not set(feature_vector_ids(train)) & set(feature_vector_ids(test))
    report = split_report(train, test)
    assert report["feature_vector_overlap"] == 0
    assert abs(report["test_fraction"] - 0.2) < 0.01
    # Stratified: class balance within a point of each other.
    assert abs(train[TARGET].mean() - test[TARGET].mean()) < 0.01


def test_a_random_split_would_leak(real_table):
    """Why the split exists: a plain random split shares most test vectors with train."""
    table = real_targets(real_table)
    rng = np.random.default_rng(42)
    is_test = rng.random(len(table)) < 0.2
    ids = feature_vector_ids(table)
    leaked = np.isin(ids[is_test], ids[~is_test]).mean()
    assert leaked > 0.5


def test_split_is_deterministic_and_seed_dependent(real_table):
    table = real_targets(real_table)
    first, _ = group_aware_split(table, 0.2, 42)
    again, _ = group_aware_split(table, 0.2, 42)
    other, _ = group_aware_split(table, 0.2, 7)
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)


def test_label_mapping_is_applied(real_table):
    table = real_targets(real_table)
    assert set(table[TARGET].unique()) == {0, 1}
    assert int(table[TARGET].sum()) == int((real_table["Result"].astype(int) == -1).sum())
