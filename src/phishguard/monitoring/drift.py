"""Drift statistics of a batch of feature vectors against a reference (the training split).

Pure functions on DataFrames and arrays; `drift_report` puts them together into the object
`phishguard drift --json` prints. Three questions, each with its own thresholds
(`MonitorParams`, the `monitor` section of params.yaml):

- per feature: did the shares of the values -1/0/1 move? A chi-square homogeneity test, with
  Benjamini–Hochberg over the 30 features, says whether a move is more than sampling noise;
  the (smoothed) PSI says whether it is big enough to matter. Both must hold, so a huge batch
  does not flag a negligible move and a small batch does not flag noise.
- joint: how many vectors were never seen in the reference, against how many a fresh sample of
  the reference's own distribution would have (the Good–Turing estimate: the reference's share
  of vectors seen exactly once). Per-feature shares can all stay put while the combinations
  change; this catches that.
- predictions: PSI and KS of the probabilities against reference scores, and the alert rate at
  the threshold against the rate the reference scores give.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from phishguard.config.sections import (
    FeatureThresholds,
    MonitorParams,
    PredictionThresholds,
)
from phishguard.contract.schema import DOMAINS, FEATURES, feature_vector_ids
from phishguard.modeling.features import psi, value_counts
from phishguard.modeling.features import value_shares as features_value_shares


def valid_features(table: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The 30 features (int8, canonical order) of the rows whose values are all in their
    domain, and how many rows were left out. Extra columns are ignored."""
    missing = [name for name in FEATURES if name not in table.columns]
    if missing:
        raise ValueError(f"missing feature column(s): {', '.join(missing)}")
    numbers = table.loc[:, list(FEATURES)].apply(pd.to_numeric, errors="coerce")
    valid = np.ones(len(numbers), dtype=bool)
    for name in FEATURES:
        valid &= numbers[name].isin(DOMAINS[name]).to_numpy()
    kept = numbers.loc[valid].astype(np.int8).reset_index(drop=True)
    return kept, int((~valid).sum())


def homogeneity_p_value(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Chi-square test that two count vectors come from one distribution (1.0 when only one
    value occurs at all: there is nothing to compare)."""
    table = np.vstack([reference_counts, current_counts])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 1.0
    return float(stats.chi2_contingency(table, correction=False).pvalue)


def feature_drift(
    reference: pd.DataFrame, current: pd.DataFrame, thresholds: FeatureThresholds
) -> list[dict[str, Any]]:
    """Per feature (canonical order): value shares on each side, PSI, the chi-square p-value,
    its Benjamini–Hochberg adjustment (`q_value`) over the 30 features, and the verdict."""
    rows = []
    for name in FEATURES:
        domain = DOMAINS[name]
        ref = value_counts(reference[name].to_numpy(), domain)
        cur = value_counts(current[name].to_numpy(), domain)
        rows.append(
            {
                "feature": name,
                "psi": psi(ref, cur, thresholds.psi_pseudo_count),
                "p_value": homogeneity_p_value(ref, cur),
                "reference_shares": _shares(ref, domain),
                "current_shares": _shares(cur, domain),
            }
        )
    q_values = stats.false_discovery_control([row["p_value"] for row in rows], method="bh")
    return [
        {
            "feature": row["feature"],
            "drift": bool(q < thresholds.alpha and row["psi"] >= thresholds.min_psi),
            "psi": row["psi"],
            "p_value": row["p_value"],
            "q_value": float(q),
            "reference_shares": row["reference_shares"],
            "current_shares": row["current_shares"],
        }
        for row, q in zip(rows, q_values, strict=True)
    ]


def _shares(counts: np.ndarray, domain: tuple[int, ...]) -> dict[str, float]:
    total = counts.sum()
    return {str(v): float(c / total) if total else 0.0 for v, c in zip(domain, counts, strict=True)}


def value_shares(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Each feature's share of each value of its domain, over the valid rows of `table`."""
    return features_value_shares(valid_features(table)[0])


def unseen_vector_share(reference: pd.DataFrame, current: pd.DataFrame) -> float:
    """The share of `current`'s rows whose 30-feature vector never occurs in `reference`."""
    if current.empty:
        return 0.0
    seen = np.unique(feature_vector_ids(reference))
    return float(np.mean(~np.isin(feature_vector_ids(current), seen)))


def expected_unseen_share(reference: pd.DataFrame) -> float:
    """The share of never-seen vectors a fresh sample from the reference's own distribution
    would have: the Good–Turing estimate, the share of reference rows whose vector occurs once.
    (A test split made group-aware, as featurize makes it, is 100% unseen by construction and
    is not such a sample.)"""
    _, counts = np.unique(feature_vector_ids(reference), return_counts=True)
    return float((counts == 1).sum() / len(reference)) if len(reference) else 0.0


def prediction_drift(
    reference_scores: np.ndarray,
    current_scores: np.ndarray,
    threshold: float | None,
    thresholds: PredictionThresholds,
    pseudo_count: float,
) -> dict[str, Any]:
    """PSI (over quantile bins of the reference scores) and the two-sample KS test of the
    current probabilities, and, with a threshold, the alert rate against the reference's."""
    reference_scores = np.asarray(reference_scores, dtype=np.float64)
    current_scores = np.asarray(current_scores, dtype=np.float64)
    inner = np.quantile(reference_scores, np.linspace(0, 1, thresholds.bins + 1)[1:-1])
    edges = np.unique(inner)
    ref_counts = np.bincount(np.searchsorted(edges, reference_scores), minlength=len(edges) + 1)
    cur_counts = np.bincount(np.searchsorted(edges, current_scores), minlength=len(edges) + 1)
    ks = stats.ks_2samp(reference_scores, current_scores)
    result: dict[str, Any] = {
        "judged": True,
        "psi": psi(ref_counts, cur_counts, pseudo_count),
        "ks_statistic": float(ks.statistic),
        "ks_p_value": float(ks.pvalue),
        "threshold": threshold,
        "alert_rate": None,
        "expected_alert_rate": None,
    }
    drift = result["psi"] >= thresholds.max_psi
    if threshold is not None:
        result["alert_rate"] = float(np.mean(current_scores >= threshold))
        result["expected_alert_rate"] = float(np.mean(reference_scores >= threshold))
        change = abs(result["alert_rate"] - result["expected_alert_rate"])
        drift = drift or change > thresholds.max_alert_rate_change
    result["drift"] = bool(drift)
    return result


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    params: MonitorParams,
    reference_scores: np.ndarray | None = None,
    current_scores: np.ndarray | None = None,
    threshold: float | None = None,
) -> dict[str, Any]:
    """The whole drift check of `current` against `reference` (tables with the 30 feature
    columns; rows with a value outside its domain are left out and counted as `n_invalid`).

    Prediction drift is judged only when both score arrays are given; otherwise its entry says
    why not. Below `params.min_rows` valid rows nothing is flagged and `judged` is false.
    """
    reference, _ = valid_features(reference)
    current, invalid = valid_features(current)
    judged = len(current) >= params.min_rows
    features = feature_drift(reference, current, params.features)
    unseen = unseen_vector_share(reference, current)
    expected = expected_unseen_share(reference)
    joint_drift = unseen - expected > params.joint.max_unseen_excess
    if reference_scores is None or current_scores is None or len(current_scores) == 0:
        missing = "reference scores" if reference_scores is None else "current probabilities"
        prediction: dict[str, Any] = {"drift": False, "judged": False, "note": f"no {missing}"}
    else:
        prediction = prediction_drift(
            reference_scores,
            current_scores,
            threshold,
            params.prediction,
            params.features.psi_pseudo_count,
        )
    if not judged:
        for row in features:
            row["drift"] = False
        joint_drift = False
        prediction["drift"] = False
    drifted = [row for row in features if row["drift"]]
    return {
        "drift": bool(drifted or joint_drift or prediction["drift"]),
        "judged": judged,
        "note": ""
        if judged
        else f"only {len(current)} valid rows; at least {params.min_rows} "
        "are needed to judge drift",
        "n_current": len(current),
        "n_invalid": invalid,
        "n_reference": len(reference),
        "drifted_features": [row["feature"] for row in drifted],
        "features": features,
        "unseen_vector_share": unseen,
        "expected_unseen_share": expected,
        "unseen_drift": bool(joint_drift),
        "prediction": prediction,
    }
