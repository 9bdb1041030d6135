"""`make bench-retrain`: the feedback split variant's poisoned verdicts, the summary over seeds
and the results page, on synthetic rows and made-up gate results (the full run trains 150-tree
models for minutes; it is the benchmark's job, not the suite's)."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmarks import retraining
from phishguard.contract.schema import TARGET, feature_vector_ids
from phishguard.modeling.promotion import KEPT, PROMOTED
from phishguard.modeling.split import group_aware_split, with_target


def _run(seed: int, decision: str, recall: tuple[float, float], holdout: bool) -> dict:
    champion, challenger = recall
    return {
        "seed": seed,
        "decision": decision,
        "failed_rules": [] if decision == PROMOTED else ["test_recall_at_target_fpr"],
        "champion": {
            "holdout_recall": 0.0 if holdout else None,
            "roc_auc": 0.99,
            "recall": champion,
        },
        "challenger": {
            "holdout_recall": 0.6 if holdout else None,
            "roc_auc": 0.995,
            "recall": challenger,
        },
        "holdout_rows": 150 if holdout else 0,
        "train_rows": 1000,
        "store_unchanged": decision == KEPT,
        "serves_challenger": decision == PROMOTED,
        "refusal_warned": decision == KEPT,
    }


def test_poisoned_verdicts_through_the_split_rule_relabel_base_rows(make_rows) -> None:
    train, test = group_aware_split(with_target(make_rows(700, seed=3)), 0.2, 42)
    base, (retrained, holdout), counts = retraining.poisoning_split_batch(train, test, seed=0)
    assert base is train and len(retrained) == len(train) + counts["to_train"]
    # Every poisoned vector is a base training vector: it relabels rows, none is held out.
    assert counts["to_holdout"] == len(holdout) == 0
    assert counts["base_rows_relabelled"] >= counts["conflicts_overridden"] > 0
    relabelled = retrained.iloc[: len(train)][TARGET].to_numpy() != train[TARGET].to_numpy()
    assert relabelled.sum() == counts["base_rows_relabelled"]
    # Another seed draws another sample.
    _, (other, _), _ = retraining.poisoning_split_batch(train, test, seed=1)
    assert not other.equals(retrained)


def test_verdicts_arrive_in_a_seeded_order_with_distinct_ids(make_rows) -> None:
    rows = with_target(make_rows(50, seed=5))
    verdicts = retraining.as_verdicts(pd.concat([rows, rows]), seed=2)
    assert verdicts["received_at"].is_unique and verdicts["received_at"].is_monotonic_increasing
    assert verdicts["verdict_id"].nunique() == len(set(feature_vector_ids(rows)))
    assert verdicts.equals(retraining.as_verdicts(pd.concat([rows, rows]), seed=2))


def test_summary_and_page_give_mean_std_range_and_decision_counts() -> None:
    runs = [
        _run(0, PROMOTED, (0.90, 0.92), holdout=True),
        _run(1, PROMOTED, (0.90, 0.94), holdout=True),
        _run(2, KEPT, (0.90, 0.80), holdout=False),
    ]
    summary = retraining.summarise(runs)
    assert summary["decisions"] == {PROMOTED: 2, KEPT: 1} and summary["store_unchanged"] == 1
    recall = summary["recall"]
    assert recall["challenger"]["min"] == 0.80 and recall["challenger"]["max"] == 0.94
    assert recall["change"]["wins"] == 2
    assert "holdout_recall" not in summary  # one seed had no holdout: not a mean of two

    results = {"poisoning_via_split": {"runs": runs, "summary": summary}}
    context = {"train_rows": 8843, "test_rows": 2212, "seeds": 3, "trees": 150, "wall_seconds": 60}
    text = retraining.markdown(results, context)
    assert "make bench-retrain" in text and "mean ± std over the 3 seeds" in text
    assert "promoted 2/3, kept 1/3" in text and "byte-identical after the stage: 1/3" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("| test recall"))
    assert "88.67% ± 7.57 (80.0%–94.0%)" in line and "(up 2/3)" in line
    assert "| recall on the feedback holdout | – | – | not measured (no holdout) |" in text
    assert sum(ln.startswith(("| 0 |", "| 1 |", "| 2 |")) for ln in text.splitlines()) == 3


def test_the_backdoor_summary_gives_trigger_recall_and_the_served_model_s_count() -> None:
    """Issue 27: recall on trigger rows, champion against the model served after the gate."""
    runs = []
    for seed, served in enumerate((0.86, 0.865, 0.70)):
        run = _run(seed, KEPT if served > 0.8 else PROMOTED, (0.9, 0.9), holdout=False)
        run["trigger_recall"] = {"champion": 0.86, "challenger": 0.72, "served": served}
        counts = dict.fromkeys(("refused", "superseded", "trusted"), 0)
        run["by_submitter"] = {"mallory": {**counts, "used": 44, "held": 1634, "reasons": {}}}
        run["behaviour"] = {"change": 0.0215, "baseline": 0.0, "max_change": 0.005}
        runs.append(run)
    summary = retraining.summarise(runs)
    assert summary["served_within_1_point"] == 2
    assert summary["trigger_recall"]["challenger"]["mean"] == pytest.approx(0.72)
    text = "\n".join(retraining.scenario_lines("backdoor", {"runs": runs, "summary": summary}))
    assert "within 1 point of the champion on trigger rows: **2/3** seeds" in text
    assert "mallory: 44 used (0 trusted), 1634 held" in text
    assert "seed 0: challenger 0.0215, twin 0.0, allowed 0.005" in text
