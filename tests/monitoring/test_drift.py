"""Drift statistics: the pure functions on small arrays, and the evidence on the real data
(no false alarms on held-out rows, a shifted feature named, random vectors unseen)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

from phishguard.config.params import load_section
from phishguard.config.sections import MonitorParams, PredictionThresholds
from phishguard.contract.schema import DOMAINS, FEATURES
from phishguard.monitoring.check import monitor, share_tables
from phishguard.monitoring.drift import (
    drift_report,
    expected_unseen_share,
    homogeneity_p_value,
    prediction_drift,
    psi,
    unseen_vector_share,
    valid_features,
)
from phishguard.monitoring.prediction_log import PredictionLog

BOOTSTRAP_SAMPLES = 25
SAMPLE_ROWS = 2_000


@pytest.fixture(scope="module")
def params() -> MonitorParams:
    return load_section("monitor", MonitorParams)


@pytest.fixture(scope="module")
def reference_and_held_out(real_table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded 80/20 split of the real rows, row by row: held-out rows are what fresh traffic
    from the training distribution looks like, repeats of known sites included. (Featurize's
    group-aware test split keeps every known vector out by design, so it is all 'unseen'.)"""
    order = np.random.default_rng(12).permutation(len(real_table))
    cut = int(0.8 * len(real_table))
    return (
        real_table.iloc[order[:cut]].reset_index(drop=True),
        real_table.iloc[order[cut:]].reset_index(drop=True),
    )


def test_psi_is_zero_for_equal_shares_and_finite_for_an_empty_value():
    assert psi(np.array([1000, 2000, 7000]), np.array([100, 200, 700]), 0.5) == pytest.approx(
        0, abs=1e-3
    )
    value = psi(np.array([50, 0, 50]), np.array([0, 100, 0]), 0.5)
    assert np.isfinite(value) and value > 1


def test_homogeneity_p_value():
    assert homogeneity_p_value(np.array([500, 500]), np.array([500, 500])) == pytest.approx(1)
    assert homogeneity_p_value(np.array([500, 500]), np.array([900, 100])) < 1e-10
    # one value only, on both sides: nothing to compare
    assert homogeneity_p_value(np.array([0, 30, 0]), np.array([0, 7, 0])) == 1.0


def test_valid_features_leaves_out_rows_outside_the_domains(make_rows):
    rows = make_rows(20, seed=1).astype(object)
    rows.loc[3, "Redirect"] = -1  # Redirect is 0/1
    rows.loc[5, "URL_Length"] = "x"
    kept, invalid = valid_features(rows)
    assert invalid == 2 and len(kept) == 18 and list(kept.columns) == list(FEATURES)
    with pytest.raises(ValueError, match="SSLfinal_State"):
        valid_features(rows.drop(columns="SSLfinal_State"))


def test_unseen_share_and_its_good_turing_expectation(make_rows):
    reference = make_rows(4, seed=2)
    reference = pd.concat([reference, reference.iloc[:2]], ignore_index=True)  # 2 seen twice
    assert expected_unseen_share(reference) == pytest.approx(2 / 6)
    current = pd.concat([reference.iloc[:3], make_rows(1, seed=3)], ignore_index=True)
    assert unseen_vector_share(reference, current) == pytest.approx(1 / 4)


def test_a_small_batch_is_not_judged(reference_and_held_out, params):
    reference, held_out = reference_and_held_out
    small = held_out.iloc[: params.min_rows - 1].copy()
    small["SSLfinal_State"] = "-1"
    report = drift_report(reference, small, params)
    assert not report["judged"] and not report["drift"]
    assert str(params.min_rows) in report["note"]
    assert not any(row["drift"] for row in report["features"])


def test_held_out_samples_are_rarely_flagged(reference_and_held_out, params):
    """The false-alarm rate: bootstrap samples of held-out rows flagged in at most 5%."""
    reference, held_out = reference_and_held_out
    flagged = [
        drift_report(reference, held_out.sample(SAMPLE_ROWS, replace=True, random_state=i), params)[
            "drift"
        ]
        for i in range(BOOTSTRAP_SAMPLES)
    ]
    assert sum(flagged) <= 0.05 * BOOTSTRAP_SAMPLES


def test_one_shifted_feature_is_flagged_and_named(reference_and_held_out, params):
    reference, held_out = reference_and_held_out
    batch = held_out.sample(SAMPLE_ROWS, replace=True, random_state=99)
    batch["SSLfinal_State"] = "-1"
    report = drift_report(reference, batch, params)
    assert report["drift"] and report["judged"]
    assert report["drifted_features"] == ["SSLfinal_State"]
    row = next(r for r in report["features"] if r["feature"] == "SSLfinal_State")
    assert row["current_shares"] == {"-1": 1.0, "0": 0.0, "1": 0.0}
    assert row["q_value"] < params.features.alpha and row["psi"] >= params.features.min_psi


def test_uniformly_random_vectors_are_mostly_unseen(reference_and_held_out, params):
    reference, _ = reference_and_held_out
    rng = np.random.default_rng(5)
    random_rows = pd.DataFrame({name: rng.choice(DOMAINS[name], SAMPLE_ROWS) for name in FEATURES})
    report = drift_report(reference, random_rows, params)
    assert report["unseen_vector_share"] > 0.99
    assert report["expected_unseen_share"] < 0.5
    assert report["unseen_drift"] and report["drift"]


def test_prediction_drift_on_out_of_fold_scores(reference_and_held_out, params):
    """A simple model's out-of-fold scores as the reference: held-out scores do not drift;
    forcing SSLfinal_State to -1 (the strongest phishing signal) moves the probabilities and
    the alert rate."""
    reference, held_out = reference_and_held_out
    X, _ = valid_features(reference)
    y = pd.to_numeric(reference["Result"]).to_numpy() == -1
    model = LogisticRegression(max_iter=1000)
    oof = cross_val_predict(model, X, y, cv=5, method="predict_proba")[:, 1]
    model.fit(X, y)
    threshold = float(np.quantile(oof[~y], 0.98))  # ~2% false positives, as evaluate picks it
    batch = held_out.sample(SAMPLE_ROWS, replace=True, random_state=7)
    same = model.predict_proba(valid_features(batch)[0])[:, 1]
    shifted_batch = batch.assign(SSLfinal_State="-1")
    shifted = model.predict_proba(valid_features(shifted_batch)[0])[:, 1]

    calm = drift_report(reference, batch, params, oof, same, threshold)["prediction"]
    assert calm["judged"] and not calm["drift"]
    assert abs(calm["alert_rate"] - calm["expected_alert_rate"]) < 0.05
    moved = drift_report(reference, shifted_batch, params, oof, shifted, threshold)["prediction"]
    assert moved["drift"] and moved["psi"] >= params.prediction.max_psi
    assert moved["alert_rate"] > calm["alert_rate"] + 0.05


def test_prediction_drift_without_scores_is_not_judged(reference_and_held_out, params):
    reference, held_out = reference_and_held_out
    report = drift_report(reference, held_out, params, reference_scores=None)
    assert report["prediction"] == {"drift": False, "judged": False, "note": "no reference scores"}


def test_prediction_psi_bins_survive_tied_reference_scores():
    reference = np.r_[np.zeros(900), np.linspace(0.5, 1, 100)]  # most quantiles tie at 0
    thresholds = PredictionThresholds(bins=10, max_psi=0.1, max_alert_rate_change=0.1)
    same = prediction_drift(reference, reference.copy(), 0.9, thresholds, 0.5)
    assert same["psi"] == pytest.approx(0) and not same["drift"]
    high = prediction_drift(reference, np.full(200, 0.95), 0.9, thresholds, 0.5)
    assert high["drift"] and high["alert_rate"] == 1.0


def test_the_monitor_stage_reports_no_log_and_then_the_log(
    tmp_path: Path, real_table: pd.DataFrame, params: MonitorParams
) -> None:
    """`monitor` (the stage's core): without a log it says so and still draws the reference
    shares; with a log of a shifted batch it flags the shifted feature, as `phishguard drift`."""
    table = real_table.astype(int).sample(frac=1.0, random_state=3).reset_index(drop=True)
    reference_path = tmp_path / "reference.parquet"
    table.iloc[::2].to_parquet(reference_path, index=False)
    scores_path = tmp_path / "scores.parquet"
    pd.DataFrame({"phishing_probability": np.linspace(0, 1, len(table.iloc[::2]))}).to_parquet(
        scores_path, index=False
    )
    log_dir = tmp_path / "predictions"
    log_dir.mkdir()

    empty = monitor(log_dir, reference_path, scores_path, params)
    assert empty["judged"] is False and "no prediction log" in empty["note"]
    reference_shares, current_shares = share_tables(empty)
    assert len(reference_shares) == sum(len(DOMAINS[name]) for name in FEATURES)
    assert current_shares.empty

    shifted = table.iloc[1::2].head(2000).copy()
    shifted["SSLfinal_State"] = -1
    writer = PredictionLog(log_dir)
    writer.record(
        shifted.loc[:, list(FEATURES)].to_numpy(),
        np.full(len(shifted), 0.3),
        0.5,
        source="batch",
        request_id="test",
        model_version="v",
        model_sha256="0" * 64,
    )
    writer.close()
    report = monitor(log_dir, reference_path, scores_path, params)
    assert report["n_current"] == 2000
    assert report["drifted_features"] == ["SSLfinal_State"]
    reference_shares, current_shares = share_tables(report)
    row = current_shares.set_index("level").loc["SSLfinal_State=-1", "share"]
    assert row == 1.0
