"""`make report`: markdown with headline metrics, DVC diffs and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from phishguard.config.params import load_section
from phishguard.config.sections import MonitorParams, PromotionParams
from phishguard.modeling import report
from phishguard.modeling.evaluate import classification_metrics
from phishguard.modeling.intervals import bootstrap_intervals
from phishguard.modeling.plot_data import calibration_points, write_plots
from phishguard.modeling.promotion import Contender, decide
from phishguard.monitoring.drift import drift_report
from tests.support import run_tool, synthetic_rows

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def evaluated(tmp_path: Path, monkeypatch) -> Path:
    """A folder with reports/metrics.json and reports/plots/* as evaluate writes them."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    proba = np.clip(y * 0.4 + rng.random(400) * 0.6, 0, 1)
    intervals = bootstrap_intervals(y, proba, np.arange(len(y)) // 2, 0.5, resamples=200)
    intervals["at_threshold"] = {"recall": {"low": 0.85, "high": 0.95}}
    metrics = {
        "test": {
            **classification_metrics(y, proba, 0.5),
            "at_threshold": {"recall": 0.9, "precision": 0.97, "fpr": 0.02},
            "intervals": intervals,
        },
        "cv": {
            "accuracy": 0.955,
            "roc_auc": 0.994,
            "recall_at_target_fpr": 0.921,
            "std": {"accuracy": 0.006, "roc_auc": 0.0015, "recall_at_target_fpr": 0.012},
        },
        "threshold": 0.71,
        "target_fpr": 0.02,
    }
    assert calibration_points(y, proba)
    write_plots(y, proba, metrics["threshold"], tmp_path / "reports" / "plots")
    (tmp_path / "reports" / "metrics.json").write_text(json.dumps(metrics))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_report_has_metrics_and_png_plots(evaluated: Path) -> None:
    out = report.write_report(Path("reports/report.md"), baseline=None)
    text = out.read_text()
    assert "| ROC-AUC (grouped CV) | 0.9940 | ± 0.0015 across folds |" in text
    assert "| recall at the target FPR (grouped CV) | 0.9210 | ± 0.0120 across folds |" in text
    assert "operating threshold (chosen on CV for FPR ≤ 2%) | 0.7100" in text
    assert "| test recall at the operating threshold | 0.9000 | [0.8500, 0.9500] |" in text
    images = sorted((evaluated / "reports" / "figures").glob("*.png"))
    assert [p.name for p in images] == [
        "calibration.png",
        "confusion.png",
        "precision_recall.png",
        "roc.png",
    ]
    for image in images:
        assert image.read_bytes().startswith(PNG) and image.stat().st_size > 5_000
        assert f"](figures/{image.name})" in text


def test_report_shows_the_test_intervals(evaluated: Path) -> None:
    metrics = json.loads(Path("reports/metrics.json").read_text())
    text = report.write_report(Path("reports/report.md"), baseline=None).read_text()
    accuracy = metrics["test"]["intervals"]["accuracy"]
    (line,) = [ln for ln in text.splitlines() if ln.startswith("| accuracy (test split")]
    assert f"[{accuracy['low']:.4f}, {accuracy['high']:.4f}]" in line
    assert "bootstrap over feature-vector groups" in text


def _shifted(metrics: dict, part: str, name: str, by: float) -> dict:
    baseline = json.loads(json.dumps(metrics))
    baseline[part][name] -= by
    return baseline


def test_a_change_smaller_than_its_interval_is_called_noise(evaluated: Path) -> None:
    metrics = json.loads(Path("reports/metrics.json").read_text())
    half_width = report.noise(metrics, "test", "accuracy")
    assert half_width > 0
    baseline = _shifted(metrics, "test", "accuracy", half_width / 2)
    verdicts = report.change_verdicts(metrics, baseline)
    assert {row["verdict"] for row in verdicts} == {"within the noise"}
    text = "\n".join(report.change_section(verdicts, "main"))
    assert "within the noise — no improvement" in text


def test_a_change_beyond_its_interval_is_named(evaluated: Path) -> None:
    metrics = json.loads(Path("reports/metrics.json").read_text())
    # CV ROC-AUC is 0.0015 (its fold std) above this baseline... and 0.01 is beyond it.
    baseline = _shifted(metrics, "cv", "roc_auc", 0.01)
    baseline = _shifted(baseline, "cv", "accuracy", -0.02)
    verdicts = {row["label"]: row for row in report.change_verdicts(metrics, baseline)}
    assert verdicts["ROC-AUC (grouped CV)"]["verdict"] == "better"
    assert verdicts["accuracy (grouped CV on the training split)"]["verdict"] == "worse"
    text = "\n".join(report.change_section(list(verdicts.values()), "main"))
    assert "Changes beyond the noise: accuracy (grouped CV on the training split), ROC-AUC" in text
    assert "no improvement" not in text


def test_report_is_reproducible(evaluated: Path) -> None:
    report.write_report(Path("reports/report.md"), baseline=None)
    first = {p.name: p.read_bytes() for p in Path("reports/figures").glob("*.png")}
    report.write_report(Path("reports/report.md"), baseline=None)
    second = {p.name: p.read_bytes() for p in Path("reports/figures").glob("*.png")}
    assert first == second


def test_diff_outside_a_dvc_repository_is_a_note_not_a_crash(evaluated: Path) -> None:
    out = report.write_report(Path("reports/report.md"), baseline="main")
    text = out.read_text()
    assert "## Metrics against `main`" in text
    assert "`dvc metrics diff main` failed" in text


def test_missing_metrics_say_to_run_the_pipeline(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(report.ReportError, match="make pipeline"):
        report.write_report(Path("reports/report.md"), baseline=None)


def test_confusion_image_counts_match_the_rows(evaluated: Path) -> None:
    rows = pd.read_csv("reports/plots/confusion.csv")
    assert set(rows["actual"]) <= {"legitimate", "phishing"}
    images = report.render_plots(Path("reports/plots"), Path("reports/figures"), 0.5)
    assert images["Confusion matrix"].exists()


@pytest.mark.e2e
def test_report_in_a_pipeline_clone_diffs_against_git(pipeline_clone: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    run_tool(
        ["python", "-m", "phishguard.modeling.report", "--baseline", "HEAD", "--out", str(out)],
        pipeline_clone,
    )
    text = out.read_text()
    assert "## Metrics against `HEAD`" in text and "## Params against `HEAD`" in text
    assert "failed" not in text and "could not run" not in text
    assert len(list((tmp_path / "figures").glob("*.png"))) == 4


def test_the_report_has_a_drift_section(evaluated: Path) -> None:
    """The monitor stage's verdict reaches the CML report: the table of `phishguard drift`,
    or why nothing was checked."""
    report.paths.DRIFT_REPORT.parent.mkdir(parents=True, exist_ok=True)
    report.paths.DRIFT_REPORT.write_text(json.dumps({"drift": False, "note": "no log"}))
    text = report.write_report(Path("reports/report.md"), baseline=None).read_text()
    assert "## Drift of the prediction log (monitor stage)" in text
    assert "Not checked: no log." in text


def test_a_checked_log_shows_the_drift_table() -> None:
    params = load_section("monitor", MonitorParams)
    rows = synthetic_rows(1200, seed=4)
    shifted = rows.copy()
    shifted["SSLfinal_State"] = -1
    lines = report.drift_section(drift_report(rows, shifted, params))
    assert lines[0] == "```" and lines[-1] == "```"
    assert lines[1].startswith("DRIFT: 1200 rows against 1200 reference rows")
    assert any(line.startswith("SSLfinal_State") and " yes " in line for line in lines)


def _contender(version: str, roc_auc: float) -> Contender:
    holdout = {"rows": 0, "roc_auc": None, "recall": None, "precision": None, "accuracy": None}
    test = {"rows": 2212, "roc_auc": roc_auc, "recall": 0.92}
    return Contender(version, version * 16, "xgboost", 0.7, test, holdout)


@pytest.mark.parametrize(
    ("new_auc", "headline"),
    [
        (0.98, "**Promotion: KEPT champion `old` — the challenger `new` was refused and is NOT "),
        (0.995, "**Promotion: promoted challenger `new` over champion `old`.**"),
    ],
)
def test_the_report_says_whether_the_challenger_was_promoted(evaluated, new_auc, headline):
    """A refused promotion is loud in the CML report: the first line of its section."""
    params = PromotionParams(0.002, 0.01, 100, 0.0, 3.0, 0.01)
    decision = decide(_contender("new", new_auc), _contender("old", 0.995), params)
    report.paths.PROMOTION_REPORT.write_text(json.dumps(decision))
    text = report.write_report(Path("reports/report.md"), baseline=None).read_text()
    section = text.split("## Champion/challenger (package stage)\n\n")[1]
    assert section.startswith(headline)
    assert "| ROC-AUC on the base test split | " + f"{new_auc:.4f} | 0.9950 |" in section
