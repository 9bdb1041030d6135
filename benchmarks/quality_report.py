"""The markdown of `make bench-quality`: mean ± std tables, the paired comparison with the
default, and a plain verdict on which model is best once the seed-to-seed noise is counted."""

from __future__ import annotations

from typing import Any

from phishguard.modeling.intervals import clearly_different

GOAL = {"accuracy": 0.960, "roc_auc": 0.995, "recall_at_fpr": 0.93}
LABELS = {
    "accuracy": "accuracy",
    "roc_auc": "ROC-AUC",
    "recall_at_fpr": "recall @ FPR≤2%",
    "fpr": "FPR",
}


def mean_std(summary: dict[str, float], metric: str) -> str:
    """'95.63% ± 0.14' for rates, '0.9936 ± 0.0002' for ROC-AUC."""
    mean, std = summary["mean"], summary["std"]
    if metric == "roc_auc":
        return f"{mean:.4f} ± {std:.4f}"
    return f"{mean:.2%} ± {100 * std:.2f}"


def difference(comparison: dict[str, float | int], metric: str, seeds: int) -> str:
    """'+0.12 (4/5)': the mean paired difference (points, or AUC) and the seeds won; bold
    when `clearly_different`."""
    mean = float(comparison["difference_mean"])
    shown = f"{mean:+.4f}" if metric == "roc_auc" else f"{100 * mean:+.2f}"
    text = f"{shown} ({comparison['wins']}/{seeds})"
    return f"**{text}**" if clearly_different(comparison, seeds) else text


def verdict(rows: list[dict[str, Any]], default: str, seeds: int) -> list[str]:
    """Sentences: which model leads each metric and whether that beats the default clearly."""
    lines = []
    for metric, label in LABELS.items():
        sign = -1 if metric == "fpr" else 1
        leader = max(rows, key=lambda r: sign * r["honest"][metric]["mean"])
        clear = [
            r["model"]
            for r in rows
            if r["model"] != default
            and "paired" in r
            and clearly_different(r["paired"][metric], seeds)
            and sign * r["paired"][metric]["difference_mean"] > 0
        ]
        if leader["model"] == default:
            lines.append(f"- **{label}**: the default `{default}` has the best mean.")
        elif clear:
            lines.append(
                f"- **{label}**: best mean `{leader['model']}`; beating the default beyond the "
                f"noise (every seed, mean gain ≥ 2 std of the gain): {', '.join(clear)}."
            )
        else:
            lines.append(
                f"- **{label}**: best mean `{leader['model']}`, but no model beats the default "
                f"`{default}` beyond the noise."
            )
    return lines


def goal_line(rows: list[dict[str, Any]]) -> str:
    """Whether any model meets the goal on all three metrics' repeated-CV means."""
    met = [
        r["model"]
        for r in rows
        if all(r["honest"][m]["mean"] >= floor for m, floor in GOAL.items())
    ]
    goal = "accuracy ≥ 96.0%, ROC-AUC ≥ 0.995, recall ≥ 93% at FPR ≤ 2%"
    if met:
        return f"**Goal** ({goal}) met on the repeated-CV mean by: {', '.join(met)}."
    return f"**Goal** ({goal}): met by no model on the repeated-CV mean."


def markdown(rows: list[dict[str, Any]], context: dict[str, Any]) -> str:
    """The results page: protocol, honest table with paired differences, leaky table."""
    seeds, default = len(context["seeds"]), context["default"]
    seed_list = ", ".join(map(str, context["seeds"]))
    ceiling = context["ceiling"]
    command = f"python -m benchmarks.quality {context.get('arguments', '')}".strip()
    lines = [
        "# Quality of the model zoo and the field's anchors: repeated honest CV",
        "",
        f"Regenerate with `make {context.get('make_target', 'bench-quality')}` (`{command}`, "
        "with the `bench` dependency group for LightGBM and CatBoost). "
        f"{context['rows']:,} rows "
        f"({context['phishing']:,} phishing), duplicates kept; zoo models with their "
        f"`conf/model/<name>.yaml` hyperparameters, every model seeded {context['model_seed']}. "
        f"Default model: `{default}`. Wall time {context['wall_seconds'] / 60:.1f} min "
        f"({context['workers']} folds at a time, one thread per model, 2 shared cores).",
        "",
        f"- **Honest**: StratifiedGroupKFold({context['folds']}, shuffle) with fold seeds "
        f"{seed_list}; each group is one distinct feature vector, so no copy of a scored row "
        "is ever trained on. Every model sees identical folds.",
        f"- Per seed the out-of-fold predictions are pooled and scored; each cell is the **mean "
        f"± std over the {seeds} seeds** (rates in points). Accuracy and FPR at threshold 0.5; "
        "recall at the best threshold with FPR ≤ 2% (phishing is the positive class).",
        f"- **Δ vs default**: the mean per-seed difference from `{default}` on the same folds "
        f"(points; AUC for ROC-AUC) and on how many of the {seeds} seeds the model is better "
        "(for FPR: lower). **Bold**: beyond the noise — the same side wins on every seed and "
        "the mean difference is at least twice its seed-to-seed std.",
        "- `blend: a + b`: the mean P(phishing) of the members, fitted on the same folds.",
        f"- Ceiling: {ceiling['vectors_with_both_labels']} feature vectors carry both labels "
        f"({ceiling['rows_of_those_vectors']} rows), so no model can exceed "
        f"{ceiling['accuracy']:.2%} accuracy.",
        "",
        "## Which model is best, once the noise is counted",
        "",
        *verdict(rows, default, seeds),
        "",
        goal_line(rows),
        "",
        "## Honest protocol",
        "",
        "| model | accuracy | ROC-AUC | recall @ FPR≤2% | FPR | Δ accuracy | Δ ROC-AUC | "
        "Δ recall | Δ FPR | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        h = row["honest"]
        name = f"**{row['model']}** (default)" if row["model"] == default else row["model"]
        cells = [mean_std(h[m], m) for m in LABELS]
        if row["model"] == default or "paired" not in row:
            deltas = ["–"] * len(LABELS)
        else:
            deltas = [difference(row["paired"][m], m, seeds) for m in LABELS]
        lines.append(f"| {name} | {' | '.join(cells + deltas)} | {row['seconds']:.0f} |")
    lines += [
        "",
        "## Leaky protocol, for the record",
        "",
        f"StratifiedKFold({context['folds']}, shuffle) with the same fold seeds on the same "
        "rows: the protocol of the published results; identical rows land on both sides. "
        "Shown only to measure the inflation — never to choose a model.",
        "",
        "| model | accuracy | ROC-AUC | recall @ FPR≤2% | FPR | accuracy inflation |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        k = row["leaky"]
        inflation = 100 * (k["accuracy"]["mean"] - row["honest"]["accuracy"]["mean"])
        cells = [mean_std(k[m], m) for m in LABELS]
        lines.append(f"| {row['model']} | {' | '.join(cells)} | {inflation:+.2f} |")
    versions = ", ".join(f"{k} {v}" for k, v in context["versions"].items())
    lines += ["", f"Libraries: {versions}. Timing on this machine (2 cores, shared).", ""]
    return "\n".join(lines)
