"""The experiment report: key metrics, their change against a baseline revision, and the
evaluate plots as PNG images — what CML posts on a pull request, and `make report` builds.

    python -m phishguard.modeling.report [--baseline main] [--out reports/report.md]

The diffs come from `dvc metrics diff` and `dvc params diff`, so they compare exactly what DVC
tracks. Images are written beside the report and linked relatively.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from phishguard import PhishguardError, paths
from phishguard.entrypoint import run
from phishguard.io import atomic_path, write_atomic
from phishguard.monitoring.check import format_report

log = logging.getLogger(__name__)

HEADLINE = (
    ("test", "accuracy", "accuracy (test split, threshold 0.5)"),
    ("test", "roc_auc", "ROC-AUC (test split)"),
    ("cv", "accuracy", "accuracy (grouped CV on the training split)"),
    ("cv", "roc_auc", "ROC-AUC (grouped CV)"),
    ("cv", "recall_at_target_fpr", "recall at the target FPR (grouped CV)"),
)


class ReportError(PhishguardError, RuntimeError):
    """The inputs of the report are missing: run the pipeline first."""


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(f"{path} not found: run the pipeline first (`make pipeline`)") from None


def _figure(title: str, xlabel: str, ylabel: str) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 4), dpi=100)
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    axes.grid(alpha=0.3)
    return figure, axes


def _save(figure: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    # No timestamp or version in the file: the same data gives the same bytes.
    with atomic_path(path) as part:
        figure.savefig(part, format="png", metadata={"Software": None})
    plt.close(figure)
    return path


def render_plots(plots_dir: Path, out_dir: Path, threshold: float | None) -> dict[str, Path]:
    """PNG images of the ROC, precision-recall, calibration and confusion plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    images = {}
    roc = _load_json(plots_dir / "roc.json")["roc"]
    figure, axes = _figure("ROC (test split)", "false-positive rate", "recall (true-positive rate)")
    axes.plot([p["fpr"] for p in roc], [p["tpr"] for p in roc], lw=2)
    axes.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    images["ROC"] = _save(figure, out_dir / "roc.png")

    pr = _load_json(plots_dir / "precision_recall.json")["precision_recall"]
    figure, axes = _figure("Precision-recall (test split)", "recall", "precision")
    axes.plot([p["recall"] for p in pr], [p["precision"] for p in pr], lw=2)
    images["Precision-recall"] = _save(figure, out_dir / "precision_recall.png")

    calibration = _load_json(plots_dir / "calibration.json")["calibration"]
    figure, axes = _figure("Calibration (test split)", "mean P(phishing)", "fraction phishing")
    axes.plot(
        [p["mean_predicted"] for p in calibration],
        [p["fraction_phishing"] for p in calibration],
        marker="o",
    )
    axes.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    images["Calibration"] = _save(figure, out_dir / "calibration.png")

    import numpy as np
    import pandas as pd

    confusion = pd.read_csv(plots_dir / "confusion.csv")
    counts = pd.crosstab(confusion["actual"], confusion["predicted"]).reindex(
        index=["legitimate", "phishing"], columns=["legitimate", "phishing"], fill_value=0
    )
    at = f" at threshold {threshold:.3f}" if threshold is not None else ""
    figure, axes = _figure(f"Confusion (test split){at}", "predicted", "actual")
    axes.imshow(counts.to_numpy(), cmap="Blues")
    axes.grid(False)
    axes.set_xticks([0, 1], counts.columns)
    axes.set_yticks([0, 1], counts.index)
    values = counts.to_numpy()
    for (row, column), value in np.ndenumerate(values):
        colour = "white" if value > values.max() / 2 else "black"
        axes.text(column, row, str(value), ha="center", va="center", fontsize=12, color=colour)
    images["Confusion matrix"] = _save(figure, out_dir / "confusion.png")
    return images


def dvc_diff(kind: str, baseline: str) -> str:
    """`dvc metrics diff` or `dvc params diff` against `baseline` as markdown, or a note."""
    try:
        result = subprocess.run(
            [sys.executable, "-m", "dvc", kind, "diff", baseline, "--md"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"_`dvc {kind} diff {baseline}` could not run: {error}_\n"
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return f"_`dvc {kind} diff {baseline}` failed: {detail}_\n"
    return result.stdout.strip() + "\n" if result.stdout.strip() else f"_No {kind} changed._\n"


def noise(metrics: dict[str, Any], part: str, name: str) -> float | None:
    """How far `part.name` may move by chance: half its 95% bootstrap interval on the test
    split, its standard deviation across folds in CV; None when metrics.json lacks it."""
    if part == "test":
        interval = metrics.get("test", {}).get("intervals", {}).get(name)
        return (interval["high"] - interval["low"]) / 2 if interval else None
    return metrics.get(part, {}).get("std", {}).get(name)


def _uncertainty(metrics: dict[str, Any], part: str, name: str) -> str:
    if part == "test":
        interval = metrics.get("test", {}).get("intervals", {}).get(name)
        return f"[{interval['low']:.4f}, {interval['high']:.4f}]" if interval else ""
    std = noise(metrics, part, name)
    return f"± {std:.4f} across folds" if std is not None else ""


def change_verdicts(current: dict[str, Any], baseline: dict[str, Any]) -> list[dict[str, Any]]:
    """Each headline metric's change against `baseline`, judged against its noise (`noise`,
    from the current metrics): "within the noise", "better" or "worse"."""
    verdicts = []
    for part, name, label in HEADLINE:
        new, old = current.get(part, {}).get(name), baseline.get(part, {}).get(name)
        margin = noise(current, part, name)
        if new is None or old is None or margin is None:
            continue
        change = new - old
        verdict = (
            "within the noise" if abs(change) <= margin else "better" if change > 0 else "worse"
        )
        verdicts.append({"label": label, "change": change, "noise": margin, "verdict": verdict})
    return verdicts


def change_section(verdicts: list[dict[str, Any]], baseline: str) -> list[str]:
    """Markdown lines saying plainly whether the change against `baseline` is beyond noise."""
    if not verdicts:
        return [f"_No comparable metrics at `{baseline}`._"]
    lines = ["| metric | change | noise (±) | verdict |", "|---|---|---|---|"]
    for row in verdicts:
        lines.append(
            f"| {row['label']} | {row['change']:+.4f} | {row['noise']:.4f} | {row['verdict']} |"
        )
    moved = [row["label"] for row in verdicts if row["verdict"] != "within the noise"]
    if not moved:
        summary = (
            f"**Every headline metric moved by less than its interval against `{baseline}`: "
            "this change is within the noise — no improvement (or regression) is shown.**"
        )
    else:
        summary = f"Changes beyond the noise: {', '.join(moved)}."
    return [*lines, "", summary]


def build_report(
    metrics: dict[str, Any],
    images: dict[str, Path],
    diffs: dict[str, str],
    out_dir: Path,
    changes: dict[str, list[str]] | None = None,
) -> str:
    """The report's markdown; `changes` maps a section title to its lines (`change_section`)."""
    lines = ["# phishguard experiment report", "", "## Headline metrics", ""]
    lines += [
        "Test-split intervals: 95% bootstrap over feature-vector groups (copies of a row are "
        "drawn together). CV spread: standard deviation of the per-fold metrics.",
        "",
        "| metric | value | 95% interval or spread |",
        "|---|---|---|",
    ]
    for part, name, label in HEADLINE:
        value = metrics.get(part, {}).get(name)
        if value is not None:
            lines.append(f"| {label} | {value:.4f} | {_uncertainty(metrics, part, name)} |")
    threshold = metrics.get("threshold")
    at = metrics.get("test", {}).get("at_threshold", {})
    at_intervals = metrics.get("test", {}).get("intervals", {}).get("at_threshold", {})
    if threshold is not None and at:
        target = metrics.get("target_fpr", 0)
        lines.append(
            f"| operating threshold (chosen on CV for FPR ≤ {target:.0%}) | {threshold:.4f} | |"
        )
        for name in ("recall", "precision", "fpr"):
            interval = at_intervals.get(name)
            shown = f"[{interval['low']:.4f}, {interval['high']:.4f}]" if interval else ""
            lines.append(f"| test {name} at the operating threshold | {at[name]:.4f} | {shown} |")
    for title, section_lines in (changes or {}).items():
        lines += ["", f"## {title}", "", *section_lines]
    for title, text in diffs.items():
        lines += ["", f"## {title}", "", text.rstrip()]
    lines += ["", "## Plots", ""]
    for title, path in images.items():
        lines.append(f"![{title}]({path.relative_to(out_dir).as_posix()})")
        lines.append("")
    return "\n".join(lines)


def drift_section(report: dict[str, Any]) -> list[str]:
    """The monitor stage's verdict (reports/drift.json) as `phishguard drift` prints it, or
    why there is none."""
    if "n_reference" not in report:  # no prediction log yet: nothing was compared
        return [f"Not checked: {report.get('note', 'no drift report')}."]
    return ["```", *format_report(report).splitlines(), "```"]


def promotion_section(report: dict[str, Any]) -> list[str]:
    """The package stage's champion/challenger decision (reports/promotion.json): one bold line
    (a refusal in capitals, so nobody misses it), the reasons, and each rule's values."""
    decision = "PROMOTED" if report["decision"] == "promoted" else "KEPT"
    new, old = report["challenger"], report["champion"]
    if decision == "KEPT":
        headline = (
            f"**Promotion: KEPT champion `{old['version']}` — the challenger "
            f"`{new['version']}` was refused and is NOT served.**"
        )
    elif report.get("same_model"):
        headline = f"**Promotion: promoted `{new['version']}` (same model as the champion).**"
    else:
        was = f"over champion `{old['version']}`" if old else "(no champion before)"
        headline = f"**Promotion: promoted challenger `{new['version']}` {was}.**"
    lines = [headline, "", *[f"- {reason}" for reason in report["reasons"]]]
    if report["rules"]:
        lines += ["", "| rule | challenger | champion | change | allowed | verdict |"]
        lines.append("|---|---|---|---|---|---|")
        for rule in report["rules"]:
            cells = [rule["challenger"], rule["champion"], rule["change"]]
            shown = ["–" if value is None else f"{value:.4f}" for value in cells]
            verdict = rule["verdict"] + (f" ({rule['note']})" if "note" in rule else "")
            if "min_change" in rule:
                allowed = f"≥ {rule['min_change']:+.4f}"
            else:  # the behavioural check: flips against the retraining noise
                limit = rule.get("max_change")
                twin = rule["baseline"]
                allowed = "–" if limit is None else f"≤ {limit:.4f} (twin {twin:.4f})"
            lines.append(f"| {rule['description']} | {' | '.join(shown)} | {allowed} | {verdict} |")
    return [*lines, *submitter_lines(report.get("feedback_by_submitter", {}))]


def submitter_lines(by_submitter: dict[str, Any]) -> list[str]:
    """The feedback verdicts of this retrain per submitter: used (trusted among them), held
    (disputed, or over the share cap), refused and superseded."""
    if not by_submitter:
        return []
    lines = [
        "",
        "Feedback verdicts per submitter (phishguard.feedback.trust):",
        "",
        "| submitter | used | of which trusted | held | refused | superseded | why not used |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, counts in by_submitter.items():
        why = ", ".join(f"{k} {v}" for k, v in counts["reasons"].items()) or "–"
        lines.append(
            f"| {name} | {counts['used']} | {counts['trusted']} | {counts['held']} | "
            f"{counts['refused']} | {counts['superseded']} | {why} |"
        )
    return lines


def baseline_metrics(baseline: str) -> dict[str, Any] | None:
    """reports/metrics.json as committed at `baseline`, or None where git cannot show it."""
    try:
        result = subprocess.run(
            ["git", "show", f"{baseline}:{paths.METRICS.as_posix()}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        return None


def write_report(out: Path, baseline: str | None) -> Path:
    """Build `out` (markdown) and its PNG images from the pipeline's reports."""
    metrics = _load_json(paths.METRICS)
    images = render_plots(paths.PLOTS, out.parent / "figures", metrics.get("threshold"))
    diffs, changes = {}, {}
    if paths.PROMOTION_REPORT.is_file():
        changes["Champion/challenger (package stage)"] = promotion_section(
            _load_json(paths.PROMOTION_REPORT)
        )
    if baseline:
        previous = baseline_metrics(baseline)
        verdicts = change_verdicts(metrics, previous) if previous else []
        changes[f"Is the change against `{baseline}` beyond the noise?"] = change_section(
            verdicts, baseline
        )
        diffs[f"Metrics against `{baseline}`"] = dvc_diff("metrics", baseline)
        diffs[f"Params against `{baseline}`"] = dvc_diff("params", baseline)
    if paths.DRIFT_REPORT.is_file():
        changes["Drift of the prediction log (monitor stage)"] = drift_section(
            _load_json(paths.DRIFT_REPORT)
        )
    write_atomic(out, build_report(metrics, images, diffs, out.parent, changes))
    log.info("wrote %s and %d images", out, len(images))
    return out


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m phishguard.modeling.report", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--baseline",
        default="HEAD",
        help="git revision to diff metrics and params against; '' to skip (default: %(default)s)",
    )
    parser.add_argument("--out", type=Path, default=paths.REPORTS / "report.md")
    args = parser.parse_args(argv)
    run(lambda: write_report(args.out, args.baseline or None), "report")


if __name__ == "__main__":
    main()
