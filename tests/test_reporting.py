"""`make report`: markdown with headline metrics, DVC diffs and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_tool

from phishguard import reporting
from phishguard.evaluation import (
    EvaluationResult,
    calibration_points,
    classification_metrics,
    write_plots,
)

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def evaluated(tmp_path: Path, monkeypatch) -> Path:
    """A folder with reports/metrics.json and reports/plots/* as evaluate writes them."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    proba = np.clip(y * 0.6 + rng.random(400) * 0.5, 0, 1)
    metrics = {
        "test": {
            **classification_metrics(y, proba, 0.5),
            "at_threshold": {"recall": 0.9, "precision": 0.97, "fpr": 0.02},
        },
        "cv": {"accuracy": 0.955, "roc_auc": 0.994, "recall_at_target_fpr": 0.921},
        "threshold": 0.71,
        "target_fpr": 0.02,
    }
    assert calibration_points(y, proba)
    write_plots(EvaluationResult(metrics, {}, y, proba), tmp_path / "reports" / "plots")
    (tmp_path / "reports" / "metrics.json").write_text(json.dumps(metrics))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_report_has_metrics_and_png_plots(evaluated: Path) -> None:
    out = reporting.write_report(Path("reports/report.md"), baseline=None)
    text = out.read_text()
    assert "| ROC-AUC (grouped CV) | 0.9940 |" in text
    assert "| recall at the target FPR (grouped CV) | 0.9210 |" in text
    assert "operating threshold (chosen on CV for FPR ≤ 2%) | 0.7100" in text
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


def test_report_is_reproducible(evaluated: Path) -> None:
    reporting.write_report(Path("reports/report.md"), baseline=None)
    first = {p.name: p.read_bytes() for p in Path("reports/figures").glob("*.png")}
    reporting.write_report(Path("reports/report.md"), baseline=None)
    second = {p.name: p.read_bytes() for p in Path("reports/figures").glob("*.png")}
    assert first == second


def test_diff_outside_a_dvc_repository_is_a_note_not_a_crash(evaluated: Path) -> None:
    out = reporting.write_report(Path("reports/report.md"), baseline="main")
    text = out.read_text()
    assert "## Metrics against `main`" in text
    assert "`dvc metrics diff main` failed" in text


def test_missing_metrics_say_to_run_the_pipeline(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(reporting.ReportError, match="make pipeline"):
        reporting.write_report(Path("reports/report.md"), baseline=None)


def test_confusion_image_counts_match_the_rows(evaluated: Path) -> None:
    rows = pd.read_csv("reports/plots/confusion.csv")
    assert set(rows["actual"]) <= {"legitimate", "phishing"}
    images = reporting.render_plots(Path("reports/plots"), Path("reports/figures"), 0.5)
    assert images["Confusion matrix"].exists()


@pytest.mark.e2e
def test_report_in_a_pipeline_clone_diffs_against_git(pipeline_clone: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    run_tool(
        ["python", "-m", "phishguard.reporting", "--baseline", "HEAD", "--out", str(out)],
        pipeline_clone,
    )
    text = out.read_text()
    assert "## Metrics against `HEAD`" in text and "## Params against `HEAD`" in text
    assert "failed" not in text and "could not run" not in text
    assert len(list((tmp_path / "figures").glob("*.png"))) == 4
