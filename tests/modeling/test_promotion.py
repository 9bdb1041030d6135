"""The champion/challenger gate (issue 13): each margin rule on constructed metrics, then real
models trained on the real dataset: the champion is scored by evaluate's own code, a better
challenger is promoted, the same one again is "the same model". The feedback scenarios
(correction, poisoning) through the package stage: tests/modeling/test_retraining_scenarios.py."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from phishguard import PhishguardError, paths
from phishguard.config.params import ParamsError
from phishguard.config.sections import PromotionParams
from phishguard.modeling import bundle, promotion
from phishguard.modeling import package as packaging
from phishguard.modeling.evaluate import operating_metrics
from phishguard.modeling.promotion import KEPT, PROMOTED, Contender, decide
from tests.support.retraining import evaluated, real_split

PARAMS = PromotionParams(
    max_roc_auc_drop=0.002,
    max_recall_drop=0.01,
    min_holdout_rows=100,
    min_holdout_gain=0.0,
    max_flip_ratio=1.5,
    max_flip_excess=0.005,
)


def contender(
    version: str = "champion1", roc_auc: float = 0.995, recall: float = 0.92, **holdout
) -> Contender:
    feedback = {"rows": 0, "roc_auc": None, "recall": None, "precision": None, "accuracy": None}
    feedback.update(holdout)
    return Contender(
        version=version,
        model_sha256=hashlib.sha256(version.encode()).hexdigest(),  # one model per version
        model_name="xgboost",
        threshold=0.7,
        test={"rows": 2212, "roc_auc": roc_auc, "recall": recall},
        feedback_holdout=feedback,
    )


def verdicts(report: dict) -> dict[str, str]:
    return {rule["rule"]: rule["verdict"] for rule in report["rules"]}


# --- the decision on constructed metrics ------------------------------------------------------


def test_the_first_run_promotes() -> None:
    report = decide(contender("new"), None, PARAMS, "no champion yet: empty store (first run)")
    assert report["decision"] == PROMOTED and report["champion"] is None
    assert report["reasons"] == ["no champion yet: empty store (first run)"]
    assert report["summary"].startswith("PROMOTED challenger new")


@pytest.mark.parametrize(
    ("change", "baseline", "decision"),
    [(0.0215, 0.0, KEPT), (0.0049, 0.0, PROMOTED), (0.079, 0.079, PROMOTED), (0.13, 0.079, KEPT)],
)
def test_the_behavioural_check_weighs_flips_against_the_twin(
    change: float, baseline: float, decision: str
) -> None:
    """Issue 27: a challenger that flips the champion's decisions on perturbed base test copies
    much more often than a twin retrained without the single-key verdicts is kept out, however
    good its test metrics (allowed: 1.5 × twin + 0.005)."""
    flips = {"rows": 6636, "change": change, "baseline": baseline, "twin_train_rows": 8843}
    report = decide(contender("new", roc_auc=0.996), contender(), PARAMS, flips=flips)
    assert report["decision"] == decision
    rule = next(r for r in report["rules"] if r["rule"] == "behaviour_flips")
    assert rule["max_change"] == pytest.approx(1.5 * baseline + 0.005)
    assert rule["verdict"] == ("fail" if decision == KEPT else "pass")
    if decision == KEPT:
        assert "perturbed copies of base test rows" in report["reasons"][0]


def test_without_training_rows_the_behavioural_check_is_not_applied() -> None:
    report = decide(contender("new"), contender(), PARAMS)
    assert verdicts(report)["behaviour_flips"] == "not applied"


def test_the_report_counts_verdicts_per_submitter() -> None:
    """promotion.json says, per submitter, how many verdicts were used, held and refused."""
    counts = {
        "mallory": {
            "used": 44,
            "held": 1634,
            "refused": 0,
            "superseded": 0,
            "trusted": 0,
            "reasons": {"contradicts_champion": 1444, "share_cap": 190},
        },
        "alice": {
            "used": 355,
            "held": 0,
            "refused": 2,
            "superseded": 1,
            "trusted": 355,
            "reasons": {"rejected_by_reviewer": 2, "newer_verdict_same_submitter": 1},
        },
    }
    trust = {"rows_in": 2036, "used": 399, "by_submitter": counts, "single_key_train_rows": [1, 2]}
    report = decide(contender("new"), contender(), PARAMS, feedback_trust=trust)
    assert report["feedback_by_submitter"] == counts
    assert report["feedback_trust"] == {"rows_in": 2036, "used": 399}
    text = promotion.format_decision(report)
    assert "verdicts of mallory: 44 used, 1634 held, 0 refused, 0 superseded" in text


@pytest.mark.parametrize(
    ("roc_auc", "decision"),
    [(0.9929, KEPT), (0.993, PROMOTED), (0.9935, PROMOTED), (0.999, PROMOTED)],
)
def test_roc_auc_may_fall_by_the_margin_and_no_more(roc_auc: float, decision: str) -> None:
    report = decide(contender("new", roc_auc=roc_auc), contender(roc_auc=0.995), PARAMS)
    assert report["decision"] == decision
    assert verdicts(report)["test_roc_auc"] == ("fail" if decision == KEPT else "pass")
    if decision == KEPT:
        assert "ROC-AUC on the base test split" in report["reasons"][0]
        assert report["summary"].startswith("KEPT champion champion1: challenger new refused")


@pytest.mark.parametrize(
    ("recall", "decision"), [(0.909, KEPT), (0.91, PROMOTED), (0.95, PROMOTED)]
)
def test_recall_at_the_target_fpr_may_fall_by_one_point(recall: float, decision: str) -> None:
    report = decide(contender("new", recall=recall), contender(recall=0.92), PARAMS)
    assert report["decision"] == decision
    assert verdicts(report)["test_recall_at_target_fpr"] == ("fail" if decision == KEPT else "pass")


def test_every_failed_rule_is_a_reason() -> None:
    report = decide(contender("new", roc_auc=0.9, recall=0.5), contender(), PARAMS)
    assert report["decision"] == KEPT and len(report["reasons"]) == 2
    assert report["margins"] == dataclasses.asdict(PARAMS)


@pytest.mark.parametrize(
    ("rows", "new", "old", "verdict", "decision"),
    [
        (150, 0.80, 0.90, "fail", KEPT),  # worse on a big enough holdout
        (150, 0.90, 0.90, "pass", PROMOTED),  # a tie is at least as good (min_holdout_gain 0)
        (150, 0.95, 0.60, "pass", PROMOTED),
        (99, 0.10, 0.90, "not applied", PROMOTED),  # too small to judge
        (0, None, None, "not applied", PROMOTED),
    ],
)
def test_the_feedback_holdout_judges_only_from_min_rows(rows, new, old, verdict, decision) -> None:
    report = decide(
        contender("new", rows=rows, accuracy=new), contender(rows=rows, accuracy=old), PARAMS
    )
    rule = next(r for r in report["rules"] if r["rule"] == "feedback_holdout_accuracy")
    assert rule["verdict"] == verdict and report["decision"] == decision
    if rows < PARAMS.min_holdout_rows:
        assert rule["note"] == f"the holdout has {rows} rows, fewer than 100"


def test_a_demanded_holdout_gain_refuses_a_tie() -> None:
    strict = dataclasses.replace(PARAMS, min_holdout_gain=0.01)
    tie = decide(
        contender("new", rows=200, accuracy=0.9), contender(rows=200, accuracy=0.9), strict
    )
    assert tie["decision"] == KEPT


def test_the_same_model_repackaged_is_promoted_as_the_same_model() -> None:
    report = decide(contender("same"), contender("same"), PARAMS)
    assert report["decision"] == PROMOTED and report["same_model"] is True
    assert report["summary"].startswith("PROMOTED (same model) challenger same")


def test_the_same_model_file_at_the_same_threshold_is_the_same_model() -> None:
    """Re-packaged with new provenance (another package version), same predictions."""
    old = contender("v1")
    new = dataclasses.replace(contender("v2", roc_auc=0.9), model_sha256=old.model_sha256)
    report = decide(new, old, PARAMS)
    assert report["decision"] == PROMOTED and report["same_model"] is True
    assert report["reasons"][0].startswith(f"the same model file (sha256 {old.model_sha256[:12]}…)")
    moved = dataclasses.replace(new, threshold=0.6)
    assert decide(moved, old, PARAMS)["decision"] == KEPT


def test_format_decision_shows_each_rule() -> None:
    text = promotion.format_decision(decide(contender("new", roc_auc=0.9), contender(), PARAMS))
    assert text.splitlines()[0].startswith("promotion: KEPT champion champion1")
    assert "[fail] test_roc_auc" in text and "[pass] test_recall_at_target_fpr" in text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_roc_auc_drop": -0.1}, "promotion.max_roc_auc_drop must be in [0, 1]"),
        ({"max_recall_drop": 2}, "promotion.max_recall_drop must be in [0, 1]"),
        ({"min_holdout_rows": 0}, "promotion.min_holdout_rows must be at least 1"),
        ({"min_holdout_gain": 5}, "promotion.min_holdout_gain must be in [-1, 1]"),
    ],
)
def test_margins_out_of_range_are_refused(change: dict, message: str) -> None:
    with pytest.raises(ParamsError, match=message.replace("[", r"\[")):
        dataclasses.replace(PARAMS, **change)


def test_operating_metrics_leave_undefined_metrics_null() -> None:
    empty = operating_metrics(np.empty(0, dtype=int), np.empty(0), 0.5)
    assert empty == {
        "rows": 0,
        "roc_auc": None,
        "recall": None,
        "precision": None,
        "accuracy": None,
    }
    phishing_only = operating_metrics(np.array([1, 1, 1, 1]), np.array([0.9, 0.8, 0.2, 0.6]), 0.5)
    assert phishing_only["roc_auc"] is None  # one class: no ranking to measure
    assert phishing_only["recall"] == 0.75 == phishing_only["accuracy"]
    assert phishing_only["precision"] == 1.0


def test_no_champion_or_a_damaged_one_promotes(package_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert promotion.load_champion(store)[1].endswith("(first run)")
    shutil.copytree(package_dir, store / "v1")
    (store / "latest").write_text("v1")
    assert promotion.load_champion(store)[0].version == bundle.load(package_dir).version
    (store / "v1" / "model.ubj").write_bytes(b"damaged")
    served, why = promotion.load_champion(store)
    assert served is None and "fails its checks" in why and "sha256" in why


# --- real models on the real dataset ----------------------------------------------------------


@pytest.fixture(scope="module")
def split(real_table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return real_split(real_table)


@pytest.fixture(scope="module")
def champion_inputs(split, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A champion trained normally on the real training split (small, for speed)."""
    train, test = split
    return evaluated(tmp_path_factory.mktemp("champion"), train, test, trees=150)


def test_the_champion_is_scored_by_the_same_code_as_evaluate(split, champion_inputs) -> None:
    """Scoring the packaged champion gives exactly the metrics evaluate wrote for it."""
    _, test = split
    manifest = packaging.candidate_manifest(**champion_inputs)
    model = bundle.Bundle(
        bundle.load(champion_inputs["model_dir"], evaluated=False).model, manifest
    )
    scored = promotion.champion(model, test, test.iloc[:0])
    assert scored.test == promotion.challenger(manifest).test
    assert scored.feedback_holdout["rows"] == 0 == manifest["metrics"]["feedback_holdout"]["rows"]


def test_a_better_challenger_is_promoted_and_the_same_one_again(
    split, champion_inputs, tmp_path: Path
) -> None:
    train, test = split
    home = tmp_path / "bentoml"
    store = home / "models" / paths.PACKAGE_NAME
    weak = evaluated(tmp_path / "weak", train, test, trees=10)
    first = packaging.package_model(**weak, bentoml_home=home)

    manifest = packaging.candidate_manifest(**champion_inputs)
    report = promotion.judge(manifest, store, test, test.iloc[:0], PARAMS)
    assert report["decision"] == PROMOTED and not report["same_model"], report["reasons"]
    assert report["champion"]["version"] == first.name
    assert all(rule["verdict"] != "fail" for rule in report["rules"])

    served = packaging.package_model(**champion_inputs, bentoml_home=home)
    again = promotion.judge(manifest, store, test, test.iloc[:0], PARAMS)
    assert again["decision"] == PROMOTED and again["same_model"] is True
    assert again["champion"]["version"] == served.name == again["challenger"]["version"]


def test_metrics_without_what_the_gate_compares_are_a_clear_error(package_dir: Path) -> None:
    manifest = bundle.verify(package_dir)  # its metrics hold only test roc_auc and accuracy
    with pytest.raises(PhishguardError, match=r"metrics.json: no 'n' among the metrics the prom"):
        promotion.challenger(manifest)
