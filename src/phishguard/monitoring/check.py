"""The drift check from files: `phishguard drift CURRENT` and the `monitor` stage.

The statistics are `phishguard.monitoring.drift`'s; this module only reads the inputs (a
prediction-log directory or any records file), picks the probabilities and the threshold out of
a log, and renders the result: JSON, a short table (drifted features first), or the per-feature
share tables that `dvc plots show` draws.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from phishguard import DataSourceError, PhishguardError, paths
from phishguard.config.params import load_section
from phishguard.config.sections import MonitorParams
from phishguard.contract.schema import FEATURES
from phishguard.data.sources import read_table
from phishguard.monitoring.drift import drift_report, value_shares
from phishguard.monitoring.log_reader import DAMAGED, read_log

SCORE_COLUMNS = ("probability", "phishing_probability")
"""Where a probability is found: the prediction log's name, then `phishguard predict`'s."""
TABLE_ROWS = 8
"""Features shown in the human output: every drifted one, then the largest PSI up to this."""


def command(
    current: str,
    reference: str | None = None,
    reference_scores: str | None = None,
    as_json: bool = False,
    fail_on_drift: bool = False,
) -> None:
    """Run the drift check of CURRENT against REF (default: the training split) and print it.
    Exit 1 with `fail_on_drift` when drift is found."""
    params = load_section("monitor", MonitorParams)
    if reference_scores is None and reference is None and paths.REFERENCE_SCORES.exists():
        reference_scores = str(paths.REFERENCE_SCORES)  # the training split's own scores
    ref_scores = (
        scores(read_table(reference_scores), reference_scores) if reference_scores else None
    )
    report = check(
        read_log(current), current, reference or str(paths.TRAIN_TABLE), ref_scores, params
    )
    print(json.dumps(report, allow_nan=False) if as_json else format_report(report))
    if fail_on_drift and report["drift"]:
        raise SystemExit(1)


def check(
    current_table: pd.DataFrame,
    current: str,
    reference: str,
    ref_scores: np.ndarray | None,
    params: MonitorParams,
) -> dict[str, Any]:
    """The drift report of `current_table` (read from `current`) against the table `reference`
    and, when given, the reference scores."""
    damaged = int(current_table.attrs.get(DAMAGED, 0))
    current_table = _with_features(current_table, current)
    current_table, bad_scores = _with_valid_scores(current_table)
    reference_table = _with_features(read_table(reference), reference)
    report = drift_report(
        reference_table,
        current_table,
        params,
        reference_scores=ref_scores,
        current_scores=scores(current_table),
        threshold=log_threshold(current_table),
    )
    report["n_invalid"] += damaged + bad_scores
    report["n_damaged_lines"] = damaged
    report["n_invalid_probabilities"] = bad_scores
    if ref_scores is None:
        report["prediction"]["note"] = (
            "not judged: no reference scores (pass --reference-scores FILE, the out-of-fold "
            "training probabilities the evaluate stage writes to "
            f"{paths.REFERENCE_SCORES})"
        )
    elif not report["prediction"]["judged"]:
        report["prediction"]["note"] = f"not judged: {current} holds no probabilities"
    return report


def monitor(
    log_dir: Path, reference: Path, reference_scores: Path, params: MonitorParams
) -> dict[str, Any]:
    """The monitor stage's report: the drift check of the prediction log in `log_dir` against
    the training split and its out-of-fold scores, or a report saying there is no log yet."""
    try:
        table = read_log(log_dir)
    except DataSourceError as error:
        shares = value_shares(read_table(str(reference)))
        return {
            "drift": False,
            "judged": False,
            "note": f"no prediction log: {error}",
            "n_current": 0,
            "features": [
                {"feature": name, "reference_shares": value, "current_shares": {}}
                for name, value in shares.items()
            ],
        }
    ref_scores = scores(read_table(str(reference_scores)), str(reference_scores))
    return check(table, str(log_dir), str(reference), ref_scores, params)


def share_tables(report: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each value's share per feature (`level` like `SSLfinal_State=-1`, `share`), for the
    reference and for the current batch (empty when no batch was judged)."""
    sides = []
    for side in ("reference_shares", "current_shares"):
        rows = [
            {"level": f"{row['feature']}={value}", "share": round(share, 6)}
            for row in report.get("features", [])
            for value, share in row[side].items()
        ]
        sides.append(pd.DataFrame(rows, columns=["level", "share"]))
    return sides[0], sides[1]


def _with_features(table: pd.DataFrame, source: str) -> pd.DataFrame:
    missing = [name for name in FEATURES if name not in table.columns]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise PhishguardError(f"{source}: missing feature column(s) {', '.join(missing[:5])}{more}")
    return table


def _with_valid_scores(table: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The rows whose probability is a number in [0, 1] (all rows of a table without one),
    and how many were left out: a probability of 5.0 is a damaged record, never a score."""
    names = [c for c in SCORE_COLUMNS if c in table.columns]
    if not names:
        return table, 0
    values = pd.to_numeric(table[names[0]], errors="coerce")
    valid = values.between(0.0, 1.0).to_numpy()
    return table.loc[valid].reset_index(drop=True), int((~valid).sum())


def scores(table: pd.DataFrame, source: str | None = None) -> np.ndarray | None:
    """The probabilities of a table (column `probability` or `phishing_probability`; a
    one-column file is taken as scores), without missing values; None if it has none.
    With `source` (a file given for its scores), having none is an error naming it."""
    names = [c for c in SCORE_COLUMNS if c in table.columns]
    if not names and source is not None and len(table.columns) == 1:
        names = list(table.columns)
    if not names:
        if source is not None:
            raise PhishguardError(f"{source}: no column {' or '.join(SCORE_COLUMNS)}")
        return None
    values = pd.to_numeric(table[names[0]], errors="coerce").dropna().to_numpy(np.float64)
    if len(values) == 0 and source is not None:
        raise PhishguardError(f"{source}: column {names[0]} holds no numbers")
    outside = int(((values < 0) | (values > 1)).sum())
    if outside and source is not None:
        raise PhishguardError(
            f"{source}: {outside} value(s) of column {names[0]} outside [0, 1]; "
            "reference scores must be probabilities"
        )
    return values[(values >= 0) & (values <= 1)]


def log_threshold(table: pd.DataFrame) -> float | None:
    """The threshold most of a log's records were decided at; None without that column."""
    if "threshold" not in table.columns:
        return None
    values = pd.to_numeric(table["threshold"], errors="coerce").dropna()
    return float(values.mode().iloc[0]) if len(values) else None


def format_report(report: dict[str, Any]) -> str:
    """The short human-readable form: verdict, the feature table (drifted first), the joint
    and the prediction checks."""
    verdict = "DRIFT" if report["drift"] else "no drift"
    if not report["judged"]:
        verdict = f"not judged ({report['note']})"
    lines = [
        f"{verdict}: {report['n_current']} rows against {report['n_reference']} reference rows"
        + (f" ({_invalid_text(report)})" if report["n_invalid"] else ""),
        "",
        f"{'feature':<28} {'drift':<5} {'psi':>7} {'q-value':>9}  shares reference -> current",
    ]
    ranked = sorted(report["features"], key=lambda row: (not row["drift"], -row["psi"]))
    shown = [row for row in ranked if row["drift"]]
    shown += [row for row in ranked if not row["drift"]][: max(0, TABLE_ROWS - len(shown))]
    for row in shown:
        lines.append(
            f"{row['feature']:<28} {'yes' if row['drift'] else 'no':<5} {row['psi']:>7.3f} "
            f"{row['q_value']:>9.2g}  {_shares(row['reference_shares'])} -> "
            f"{_shares(row['current_shares'])}"
        )
    if len(shown) < len(ranked):
        lines.append(f"... {len(ranked) - len(shown)} more features, none drifted")
    lines.append("")
    lines.append(
        f"unseen feature vectors: {report['unseen_vector_share']:.1%} (expected "
        f"{report['expected_unseen_share']:.1%}){' DRIFT' if report['unseen_drift'] else ''}"
    )
    lines.append(f"predictions: {_prediction_line(report['prediction'])}")
    return "\n".join(lines)


def _invalid_text(report: dict[str, Any]) -> str:
    """`N invalid rows left out`, and of them the damaged log lines and bad probabilities."""
    parts = [
        f"{count} {what}"
        for count, what in (
            (report.get("n_damaged_lines", 0), "damaged log lines"),
            (report.get("n_invalid_probabilities", 0), "probabilities not in [0, 1]"),
        )
        if count
    ]
    detail = f": {', '.join(parts)}" if parts else ""
    return f"{report['n_invalid']} invalid rows left out{detail}"


def _shares(shares: dict[str, float]) -> str:
    return " ".join(f"{value}:{share:.2f}" for value, share in shares.items())


def _prediction_line(prediction: dict[str, Any]) -> str:
    if not prediction["judged"]:
        return prediction["note"]
    line = f"psi {prediction['psi']:.3f}, KS p-value {prediction['ks_p_value']:.2g}"
    if prediction["alert_rate"] is not None:
        line += (
            f", alert rate {prediction['alert_rate']:.1%} (expected "
            f"{prediction['expected_alert_rate']:.1%} at threshold {prediction['threshold']:.3f})"
        )
    return line + (" DRIFT" if prediction["drift"] else "")
