"""Toward the quality goal: what was tried, on repeated grouped CV, and what each gave.

1. A small XGBoost grid tuned on grouped CV of the TRAINING split only (the pipeline's
   `split` params; the test split never chooses anything), 3 fold seeds; the pick is then
   scored on the repeated CV over all rows, paired with the default on identical folds.
2. The anchors (LightGBM, CatBoost) with the engineered signal counts, as XGBoost has them.
3. A learning curve of the default: each training fold cut to a fraction of its groups.

    python -m benchmarks.goal [--data PATH] [--out benchmarks/results/goal.md]

`make bench-goal` runs it with the `bench` group. Blends of the zoo are in `make bench-quality`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from benchmarks.anchors import ANCHORS
from benchmarks.quality import (
    FOLDS,
    MODEL_SEED,
    SEEDS,
    WORKERS,
    Candidate,
    load_table,
    model_spec,
    run_candidates,
    summarise,
)
from benchmarks.quality_report import mean_std
from phishguard.config.compose import compose_params
from phishguard.config.models import model_config
from phishguard.contract.schema import TARGET, feature_vector_ids
from phishguard.modeling.evaluate import grouped_splits, out_of_fold
from phishguard.modeling.features import INPUT_COLUMNS, as_matrix, model_inputs
from phishguard.modeling.split import group_aware_split
from phishguard.modeling.zoo import build_model

TUNING_SEEDS = (42, 43, 44)
GRID: tuple[dict[str, Any], ...] = (
    {"max_depth": 4},
    {"max_depth": 8},
    {"min_child_weight": 3.0},
    {"colsample_bytree": 0.3},
    {"n_estimators": 1200, "learning_rate": 0.025},
    {"n_estimators": 300, "learning_rate": 0.1},
    {"subsample": 1.0, "colsample_bytree": 1.0},
    {"reg_lambda": 5.0},
)
FRACTIONS = (0.25, 0.5, 0.75, 1.0)


def xgboost_variant(default: dict[str, Any], change: dict[str, Any]) -> Candidate:
    """The default XGBoost config with `change` applied, named by the change."""
    name = "xgboost " + ", ".join(f"{k}={v}" for k, v in change.items())
    return Candidate(
        name, build_model(model_config({**default, **change}), MODEL_SEED), INPUT_COLUMNS
    )


def tune(train: pd.DataFrame, default: dict[str, Any]) -> list[dict[str, Any]]:
    """Every grid point and the default on repeated grouped CV of the training split."""
    candidates = [
        Candidate("xgboost", build_model(model_config(default), MODEL_SEED), INPUT_COLUMNS)
    ]
    candidates += [xgboost_variant(default, change) for change in GRID]
    runs = run_candidates(candidates, train, TUNING_SEEDS, leaky=False)
    return summarise(runs, train[TARGET].to_numpy(), "xgboost")


def learning_curve(
    table: pd.DataFrame, default: dict[str, Any], seeds: Sequence[int]
) -> list[dict[str, Any]]:
    """Repeated-CV accuracy of the default with each training fold cut to a fraction of its
    feature-vector groups (the test folds unchanged)."""
    X, y = model_inputs(as_matrix(table), INPUT_COLUMNS), table[TARGET].to_numpy()
    groups = feature_vector_ids(table)
    runs = {}
    for fraction in FRACTIONS:
        rng = np.random.default_rng(0)
        split_sets = []
        for seed in seeds:
            cut = []
            for train_idx, test_idx in grouped_splits(table, FOLDS, seed):
                kept_groups = rng.permutation(np.unique(groups[train_idx]))
                kept = kept_groups[: round(fraction * len(kept_groups))]
                cut.append((train_idx[np.isin(groups[train_idx], kept)], test_idx))
            split_sets.append(cut)
        oof = out_of_fold(
            build_model(model_config(default), MODEL_SEED), X, y, split_sets, workers=WORKERS
        )
        runs[f"{fraction:.0%} of each training fold"] = {"honest": oof, "seconds": 0}
        print(f"learning curve {fraction:.0%} done", file=sys.stderr, flush=True)
    return summarise(runs, y, "100% of each training fold")


def anchors_with_counts(table: pd.DataFrame, default: dict[str, Any]) -> list[dict[str, Any]]:
    """LightGBM and CatBoost with the signal counts, paired with the default on all rows."""
    candidates = [
        Candidate("xgboost", build_model(model_config(default), MODEL_SEED), INPUT_COLUMNS)
    ]
    candidates += [
        Candidate(f"{name} + signal counts", build(MODEL_SEED), INPUT_COLUMNS)
        for name, build in ANCHORS.items()
    ]
    runs = run_candidates(candidates, table, SEEDS, leaky=False)
    return summarise(runs, table[TARGET].to_numpy(), "xgboost")


def table_lines(rows: list[dict[str, Any]], seeds: int) -> list[str]:
    """Mean ± std and the paired accuracy/AUC/recall differences with the first-named baseline."""
    lines = [
        "| config | accuracy | ROC-AUC | recall @ FPR≤2% | FPR | Δ acc (wins) | Δ AUC (wins) | "
        "Δ recall (wins) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        h, p = row["honest"], row["paired"]
        cells = [mean_std(h[m], m) for m in ("accuracy", "roc_auc", "recall_at_fpr", "fpr")]
        deltas = [
            f"{100 * p['accuracy']['difference_mean']:+.2f} ({p['accuracy']['wins']}/{seeds})",
            f"{p['roc_auc']['difference_mean']:+.4f} ({p['roc_auc']['wins']}/{seeds})",
            f"{100 * p['recall_at_fpr']['difference_mean']:+.2f} "
            f"({p['recall_at_fpr']['wins']}/{seeds})",
        ]
        lines.append(f"| {row['model']} | {' | '.join(cells + deltas)} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    default_data = os.environ.get("PHISHING_DATA") or "../shared/data/phishing_websites.csv"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(default_data))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/goal.md"))
    args = parser.parse_args(argv)
    params = yaml.safe_load(compose_params())
    default = model_spec(params["model"]["name"])
    table = load_table(args.data)
    train, _ = group_aware_split(table, params["split"]["test_size"], params["split"]["seed"])
    results = {
        "tuning": tune(train, default),
        "anchors_with_counts": anchors_with_counts(table, default),
        "learning_curve": learning_curve(table, default, SEEDS),
    }
    lines = [
        "# Toward the goal: tuning, anchors with the signal counts, learning curve",
        "",
        "Regenerate with `make bench-goal` (`python -m benchmarks.goal`). Cells are mean ± std "
        "over fold seeds; Δ is the paired per-seed difference from the first row's baseline on "
        "identical folds (points; AUC for ROC-AUC) and the seeds it wins.",
        "",
        f"## XGBoost grid on grouped CV of the training split ({len(train):,} rows, fold seeds "
        f"{', '.join(map(str, TUNING_SEEDS))}); one change from the default per row",
        "",
        *table_lines(results["tuning"], len(TUNING_SEEDS)),
        "",
        f"## Anchors with the signal counts, all {len(table):,} rows, fold seeds "
        f"{', '.join(map(str, SEEDS))}",
        "",
        *table_lines(results["anchors_with_counts"], len(SEEDS)),
        "",
        "## Learning curve of the default: each training fold cut to a fraction of its groups",
        "",
        *table_lines(results["learning_curve"], len(SEEDS)),
        "",
    ]
    args.out.write_text("\n".join(lines))
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
