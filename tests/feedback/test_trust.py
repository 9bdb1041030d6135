"""The feedback trust rules (issue 27): the disputed queue, confirmation by a second submitter
or a reviewer, newest wins within a submitter, cross-submitter conflicts, the share cap, the
trusted-only holdout, and counts that add up per submitter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from phishguard.config.sections import TrustParams
from phishguard.contract.schema import LABEL, RESULT_LEGITIMATE, RESULT_PHISHING, TARGET
from phishguard.feedback import store as store_module
from phishguard.feedback.store import FEEDBACK_DIR_ENV, open_store
from phishguard.feedback.trust import HELD, REFUSED, STATUSES, SUPERSEDED, USED, assess
from phishguard.modeling.split import feedback_split, feedback_table, group_aware_split, with_target
from tests.support import synthetic_rows
from tests.support.verdicts import verdict_frame

TRUST = TrustParams(dispute_probability=0.9, max_submitter_share=0.5)
BASE_ROWS = 1_000  # the cap: 500 single-key rows per submitter


def feedback(rows: pd.DataFrame, **columns) -> pd.DataFrame:
    """`rows` as stored verdicts, featurized as featurize gives them to the rules."""
    return feedback_table(verdict_frame(rows, **columns))


def one_row(label: int, seed: int = 1) -> pd.DataFrame:
    return synthetic_rows(1, seed).assign(**{LABEL: label})


def statuses(table: pd.DataFrame, params: TrustParams = TRUST) -> list[tuple[str, str]]:
    weighed = assess(table, BASE_ROWS, params)
    return list(zip(weighed.status, weighed.reason, strict=True))


def test_a_lone_verdict_against_a_confident_champion_is_held() -> None:
    legit = feedback(one_row(RESULT_LEGITIMATE), champion_phishing=[0.97])
    assert statuses(legit) == [(HELD, "contradicts_champion")]
    # The same verdict where the champion is not that sure is used, on one key's word.
    unsure = feedback(one_row(RESULT_LEGITIMATE), champion_phishing=[0.85])
    assert statuses(unsure) == [(USED, "single_key")]
    phishing = feedback(one_row(RESULT_PHISHING), champion_phishing=[0.05])
    assert statuses(phishing) == [(HELD, "contradicts_champion")]


def test_a_second_submitter_confirms_a_disputed_verdict() -> None:
    row = one_row(RESULT_LEGITIMATE)
    alice = verdict_frame(row, [0], "alice", champion_phishing=[0.97])
    bob = verdict_frame(row, [5], "bob", champion_phishing=[0.97])
    weighed = assess(feedback_table(pd.concat([alice, bob])), BASE_ROWS, TRUST)
    assert list(weighed.status) == [USED, USED] and set(weighed.reason) == {"confirmed"}
    assert len(weighed.used) == 1 and bool(weighed.used["trusted"].iloc[0])


def test_a_reviewer_approves_or_rejects_a_disputed_verdict() -> None:
    approved = feedback(one_row(RESULT_LEGITIMATE), champion_phishing=[0.97], review=["approved"])
    assert statuses(approved) == [(USED, "reviewer_approved")]
    rejected = feedback(one_row(RESULT_LEGITIMATE), champion_phishing=[0.2], review=["rejected"])
    assert statuses(rejected) == [(REFUSED, "rejected_by_reviewer")]


def test_submitters_who_disagree_are_held_never_one_side_silently() -> None:
    alice = verdict_frame(one_row(RESULT_PHISHING), [0], "alice")
    bob = verdict_frame(one_row(RESULT_LEGITIMATE), [9], "bob")  # newer: no longer wins
    weighed = assess(feedback_table(pd.concat([alice, bob])), BASE_ROWS, TRUST)
    assert list(weighed.status) == [HELD, HELD]
    assert set(weighed.reason) == {"submitters_disagree"} and weighed.used.empty
    assert [v["reason"] for v in weighed.report["held_verdicts"]] == ["submitters_disagree"] * 2


def test_newest_wins_within_one_submitter_through_the_store(tmp_path: Path, monkeypatch) -> None:
    """L, then P, then L again from one key: L is in force (the third is not swallowed as
    `already_present` with P left standing)."""
    clock = iter(datetime(2026, 12, 1, tzinfo=UTC) + timedelta(seconds=s) for s in range(10))
    monkeypatch.setattr(store_module, "received_now", lambda: next(clock))
    store = open_store({FEEDBACK_DIR_ENV: str(tmp_path)})
    try:
        for label in (RESULT_LEGITIMATE, RESULT_PHISHING, RESULT_LEGITIMATE):
            store.add(one_row(label), "api", "alice")
        stored = store.assertions()
    finally:
        store.close()
    weighed = assess(feedback_table(stored), BASE_ROWS, TRUST)
    assert sorted(weighed.status) == [SUPERSEDED, USED]
    assert weighed.used[TARGET].tolist() == [0]  # legitimate


def test_a_second_submitter_sending_the_same_verdict_is_recorded(tmp_path: Path) -> None:
    store = open_store({FEEDBACK_DIR_ENV: str(tmp_path)})
    try:
        rows = synthetic_rows(3, seed=4)
        store.add(rows, "api", "alice")
        assert store.add(rows, "api", "bob").already_present == 3
        assertions = store.assertions()
    finally:
        store.close()
    assert sorted(assertions["submitter"].tolist()) == ["alice"] * 3 + ["bob"] * 3
    assert assertions["verdict_id"].nunique() == 3


def test_the_share_cap_holds_a_submitter_s_rows_past_it() -> None:
    rows = synthetic_rows(40, seed=8)
    table = feedback(rows)  # submitter "analyst", no champion score: nothing disputed
    capped = TrustParams(dispute_probability=0.9, max_submitter_share=0.01)  # 10 of 1,000
    weighed = assess(table, BASE_ROWS, capped)
    distinct = len(weighed.status) - int((weighed.status == SUPERSEDED).sum())
    assert int((weighed.status == USED).sum()) == 10
    assert int((weighed.reason == "share_cap").sum()) == distinct - 10
    counts = weighed.report["by_submitter"]["analyst"]
    assert sum(counts[state] for state in STATUSES) == len(rows)  # counts add up
    assert weighed.report["share_cap_rows"] == 10


def test_the_holdout_is_only_trusted_verdicts(make_rows) -> None:
    """No single key's verdicts form the evidence the gate judges on."""
    train, test = group_aware_split(with_target(make_rows(600, seed=3)), 0.2, 42)
    new = synthetic_rows(60, seed=77)
    lone = verdict_frame(new.iloc[:30], submitter="mallory")
    alice = verdict_frame(new.iloc[30:], submitter="alice")
    bob = verdict_frame(new.iloc[30:], submitter="bob")
    table = feedback_table(pd.concat([lone, alice, bob]))
    result = feedback_split(train, test, table, 0.5, TRUST)
    held_out = set(map(tuple, result.holdout.loc[:, list(new.columns[:30])].to_numpy()))
    lone_vectors = set(map(tuple, lone.loc[:, list(new.columns[:30])].to_numpy()))
    assert result.holdout.shape[0] > 0 and not held_out & lone_vectors
    trust = result.report["trust"]
    assert trust["by_submitter"]["mallory"]["trusted"] == 0
    assert len(trust["single_key_train_rows"]) == trust["by_submitter"]["mallory"]["used"]
    rows = np.array(trust["single_key_train_rows"])
    assert (rows >= len(train)).all()  # the single-key rows are feedback rows, listed by place


@pytest.mark.parametrize("value", [0.3, 1.5])
def test_the_dispute_probability_is_checked(value: float) -> None:
    with pytest.raises(ValueError, match="dispute_probability"):
        TrustParams(dispute_probability=value, max_submitter_share=0.01)
