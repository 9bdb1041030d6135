"""The group-aware split never lets a feature vector straddle train and test."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phishguard import PhishguardError
from phishguard.contract.schema import (
    COLUMNS,
    FEATURES,
    LABEL,
    RESULT_PHISHING,
    TARGET,
    feature_vector_ids,
)
from phishguard.data.origin import BASE, FEEDBACK, FEEDBACK_COLUMNS, ORIGIN, RECEIVED_AT
from phishguard.data.validate import quarantine
from phishguard.modeling import split as split_module
from phishguard.modeling.features import featurize
from phishguard.modeling.split import (
    base_and_feedback,
    feedback_split,
    feedback_table,
    group_aware_split,
    holdout_overlaps,
    split_for_training,
    split_report,
    with_target,
)
from tests.support import synthetic_rows
from tests.support.verdicts import verdict_frame


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


# Feedback (issue 13): the base rows split as above, feedback by the rule in modeling.split.


def base_split(real_table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    split = split_for_training(quarantine(real_table).valid, 0.2, 42, 0.2)
    return split.train, split.test


def as_feedback(rows: pd.DataFrame, **kwargs) -> pd.DataFrame:
    """Model-column rows (with TARGET) as validated feedback rows (Result + provenance)."""
    table = rows.loc[:, list(FEATURES)].copy()
    table[LABEL] = np.where(rows[TARGET] == 1, RESULT_PHISHING, -RESULT_PHISHING)
    return feedback_table(verdict_frame(table, **kwargs))


def synthetic_feedback(n: int, seed: int, **kwargs) -> pd.DataFrame:
    return feedback_table(verdict_frame(synthetic_rows(n, seed=seed), **kwargs))


def test_an_empty_store_leaves_the_base_split_exactly_as_today(real_table):
    table = real_targets(real_table)
    today_train, today_test = group_aware_split(featurize(table), 0.2, 42)
    valid = quarantine(real_table).valid.assign(origin="base", received_at=None, verdict_id=None)
    base, feedback = base_and_feedback(valid)
    train, test = group_aware_split(featurize(with_target(base)), 0.2, 42)
    result = feedback_split(train, test, feedback_table(feedback), 0.2)
    pd.testing.assert_frame_equal(result.train, today_train)
    pd.testing.assert_frame_equal(test, today_test)
    assert result.holdout.empty and list(result.holdout.columns) == list(today_test.columns)
    assert result.report["rows_in"] == result.report["to_train"] == 0


def test_the_newest_verdict_of_a_vector_wins(real_table):
    train, test = base_split(real_table)
    row = synthetic_feedback(1, seed=11)
    flipped = row.assign(**{TARGET: 1 - row[TARGET]})
    feedback = pd.concat(
        [as_feedback(row, minutes=[5]), as_feedback(flipped, minutes=[9])], ignore_index=True
    )
    result = feedback_split(train, test, feedback, holdout_fraction=0.0)
    assert result.report["superseded"] == 1 and result.report["groups"] == 1
    assert result.report["to_train"] == 1
    assert result.train[TARGET].iloc[-1] == flipped[TARGET].iloc[0]


def test_a_vector_of_the_base_test_split_is_never_trained_on(real_table):
    train, test = base_split(real_table)
    feedback = as_feedback(test.iloc[:30])
    result = feedback_split(train, test, feedback, holdout_fraction=0.2)
    assert result.report["in_base_test"] == len(set(feature_vector_ids(test.iloc[:30])))
    assert result.report["to_train"] == result.report["to_holdout"] == 0
    pd.testing.assert_frame_equal(result.train, train)


def test_feedback_overrides_the_label_of_base_train_rows_and_confirms_the_same(real_table):
    train, test = base_split(real_table)
    ids = feature_vector_ids(train)
    single = np.flatnonzero(~pd.Series(ids).duplicated(keep=False).to_numpy())
    flip, same = train.iloc[single[:4]], train.iloc[single[4:7]]
    copies = train.iloc[[i for i in range(len(train)) if ids[i] == ids[0]]]
    if copies[TARGET].nunique() == 1:  # a vector with several base rows: all relabelled
        flip = pd.concat([flip, copies.iloc[:1]])
    flipped = flip.assign(**{TARGET: 1 - flip[TARGET]})
    feedback = as_feedback(pd.concat([flipped, same]))
    result = feedback_split(train, test, feedback, holdout_fraction=0.5)
    report = result.report
    flipped_ids = set(feature_vector_ids(flipped))
    assert report["conflicts_overridden"] == len(flipped_ids)
    assert report["confirmations"] == 3
    assert report["base_rows_relabelled"] == int(np.isin(ids, list(flipped_ids)).sum())
    assert report["to_train"] == len(feedback) and report["to_holdout"] == 0
    relabelled = result.train.iloc[: len(train)]
    changed = relabelled[TARGET].to_numpy() != train[TARGET].to_numpy()
    assert set(ids[changed]) == flipped_ids
    new_label = dict(zip(feature_vector_ids(flipped), flipped[TARGET], strict=True))
    assert all(relabelled[TARGET].iloc[i] == new_label[ids[i]] for i in np.flatnonzero(changed))


def test_the_newest_new_vectors_are_held_out(real_table):
    train, test = base_split(real_table)
    feedback = synthetic_feedback(50, seed=12, minutes=range(100, 0, -2))
    result = feedback_split(train, test, feedback, holdout_fraction=0.2)
    assert result.report["to_holdout"] == 10 and result.report["to_train"] == 40
    newest = feedback.sort_values(RECEIVED_AT).iloc[-10:]
    assert set(feature_vector_ids(result.holdout)) == set(feature_vector_ids(newest))
    assert list(result.holdout.columns) == list(test.columns)
    assert result.report["newest_received_at"] == feedback[RECEIVED_AT].max()
    assert result.report["oldest_received_at"] == feedback[RECEIVED_AT].min()


@settings(max_examples=15, deadline=None)
@given(
    picks=st.lists(st.integers(0, 3), min_size=1, max_size=40),
    minutes=st.lists(st.integers(0, 5), min_size=40, max_size=40),
    fraction=st.sampled_from([0.0, 0.2, 0.5]),
)
def test_no_vector_straddles_train_test_or_holdout(real_table, picks, minutes, fraction):
    """Feedback drawn from base train, base test and new vectors, with repeats and both
    labels: every vector ends on one side, and every row in is accounted for."""
    train, test = _cached_base_split(real_table)
    pools = [train.iloc[:20], test.iloc[:20], synthetic_feedback(20, seed=13)[list(train.columns)]]
    rows = pd.concat([pools[p % 3].iloc[[i % 20]] for i, p in enumerate(picks)], ignore_index=True)
    rows[TARGET] = [(m + p) % 2 for m, p in zip(minutes, picks, strict=False)]
    feedback = as_feedback(rows, minutes=minutes[: len(rows)])
    result = feedback_split(train, test, feedback, fraction)
    report = result.report
    assert holdout_overlaps(result.train, test, result.holdout) == {"train": 0, "test": 0}
    assert not set(feature_vector_ids(result.train)) & set(feature_vector_ids(test))
    assert report["groups"] == report["in_base_test"] + report["to_train"] + report["to_holdout"]
    assert report["rows_in"] == report["groups"] + report["superseded"]
    assert len(result.train) == len(train) + report["to_train"]


_BASE_SPLITS: dict[int, tuple[pd.DataFrame, pd.DataFrame]] = {}


def _cached_base_split(real_table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    if id(real_table) not in _BASE_SPLITS:
        _BASE_SPLITS[id(real_table)] = base_split(real_table)
    return _BASE_SPLITS[id(real_table)]


def test_the_stage_split_accounts_for_every_row_and_reports_it(real_table):
    """`split_for_training`, what the featurize stage runs: base and feedback rows in, train +
    test + holdout + superseded verdicts out, no vector on two sides, the report filled."""
    valid = quarantine(real_table).valid
    verdicts = verdict_frame(synthetic_rows(30, seed=21)).loc[:, [*COLUMNS, *FEEDBACK_COLUMNS]]
    table = pd.concat(
        [valid.assign(**{ORIGIN: BASE}), verdicts.assign(**{ORIGIN: FEEDBACK})], ignore_index=True
    )
    split = split_for_training(table, 0.2, 42, 0.5)
    report = split.report
    rows_out = len(split.train) + len(split.test) + len(split.holdout)
    joined = report["feedback"]
    assert (
        rows_out == len(valid) + joined["rows_in"] - joined["superseded"] - joined["in_base_test"]
    )
    assert report["feature_vector_overlap"] == 0
    assert report["feedback"]["holdout_overlap"] == {"train": 0, "test": 0}
    assert report["feedback"]["to_holdout"] == len(split.holdout) > 0
    _, base_test = group_aware_split(featurize(with_target(valid)), 0.2, 42)
    pd.testing.assert_frame_equal(split.test, base_test)


def test_the_stage_split_refuses_a_straddling_vector(real_table, monkeypatch):
    """A rule that ever let a test vector into train fails the stage instead of training."""
    valid = quarantine(real_table).valid
    joined = split_module.feedback_split

    def leaky(train, test, feedback, fraction, trust):
        result = joined(train, test, feedback, fraction, trust)
        leaked = pd.concat([result.train, test.iloc[:1]], ignore_index=True)
        return split_module.FeedbackSplit(leaked, result.holdout, result.report)

    monkeypatch.setattr(split_module, "feedback_split", leaky)
    with pytest.raises(PhishguardError, match="1 feature vectors straddle the split"):
        split_for_training(valid, 0.2, 42, 0.2)
