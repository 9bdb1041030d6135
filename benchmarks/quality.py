"""Every model of the zoo and the field's anchors on identical repeated folds, honest and leaky.

Honest: StratifiedGroupKFold(5, shuffle) over all rows, each group an identical feature vector,
so no copy of a scored row is ever trained on, repeated with 5 fold seeds. Leaky: plain
StratifiedKFold with the same seeds, the protocol every public result on this dataset uses
(copies of ~65% of the scored rows sit in the training folds). Per seed the out-of-fold
predictions are pooled and scored; each figure is the mean ± std over the seeds, and each
model is compared with the default seed by seed (the same folds).

    python -m benchmarks.quality [--data PATH] [--models a,b] [--no-anchors] [--seeds 42,43]
                                 [--out benchmarks/results/quality.md] [--make-target NAME]

`make bench-quality` runs it on the offline dataset with the anchors (the `bench` group).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn import metrics as skm
from sklearn.model_selection import StratifiedKFold

from benchmarks.quality_report import markdown
from phishguard.config.compose import compose_params
from phishguard.config.models import model_config
from phishguard.contract.schema import FEATURES, TARGET, feature_vector_ids
from phishguard.data.ingest import canonical_table
from phishguard.data.sources import read_table
from phishguard.data.validate import quarantine
from phishguard.modeling.evaluate import out_of_fold, recall_at_fpr, repeated_grouped_cv
from phishguard.modeling.features import as_matrix, model_inputs
from phishguard.modeling.intervals import paired_comparison, spread
from phishguard.modeling.split import with_target
from phishguard.modeling.zoo import build_model, input_columns
from phishguard.provenance import library_versions

FOLDS, SEEDS, MODEL_SEED, TARGET_FPR, WORKERS = 5, (42, 43, 44, 45, 46), 42, 0.02, 2
CONF_MODELS = Path("conf") / "model"
METRICS = ("accuracy", "roc_auc", "recall_at_fpr", "fpr")
LOWER_IS_BETTER = frozenset({"fpr"})
PROTOCOLS = ("honest", "leaky")
# Blends: the mean P(phishing) of members already fitted on the same folds (no extra fits).
BLENDS: tuple[tuple[str, ...], ...] = (
    ("xgboost", "lightgbm"),
    ("xgboost", "catboost"),
    ("xgboost", "lightgbm", "catboost"),
    ("xgboost", "catboost", "extra_trees"),
)


@dataclass(frozen=True)
class Candidate:
    """One model to score: its name, unfitted estimator and its input columns."""

    name: str
    estimator: Any
    columns: Sequence[str]


def load_table(source: Path) -> pd.DataFrame:
    """All valid rows of the dataset, duplicates kept, with the 0/1 target."""
    result = quarantine(canonical_table(read_table(source)))
    return with_target(result.valid)


def model_spec(name: str) -> dict:
    """The `model` section Hydra composes for `model=<name>` (as `dvc exp run -S` would)."""
    return yaml.safe_load(compose_params([f"model={name}"]))["model"]


def zoo(names: Sequence[str]) -> list[Candidate]:
    """The `conf/model/<name>.yaml` models with their configured inputs and the model seed."""
    return [
        Candidate(name, build_model(config, MODEL_SEED), input_columns(config))
        for name, config in ((name, model_config(model_spec(name))) for name in names)
    ]


def anchors() -> list[Candidate]:
    """LightGBM and CatBoost on the 30 signals."""
    # Imported here, not at the top: they come from the `bench` dependency group, which the
    # test suite's environment does not install (tests run the zoo alone).
    from benchmarks.anchors import ANCHORS

    return [Candidate(name, build(MODEL_SEED), FEATURES) for name, build in ANCHORS.items()]


def anchor_versions() -> dict[str, str]:
    """Versions of the anchor libraries that are installed."""
    found = {}
    for package in ("lightgbm", "catboost"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


def scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy and FPR at 0.5, ROC-AUC, recall at FPR ≤ 2%."""
    predicted = proba >= 0.5
    return {
        "accuracy": float(skm.accuracy_score(y, predicted)),
        "roc_auc": float(skm.roc_auc_score(y, proba)),
        "recall_at_fpr": recall_at_fpr(y, proba, TARGET_FPR),
        "fpr": float(predicted[y == 0].mean()),
    }


def leaky_cv(candidate: Candidate, table: pd.DataFrame, seeds: Sequence[int]) -> np.ndarray:
    """Out-of-fold P(phishing) from plain StratifiedKFold, identical rows straddling folds."""
    X, y = model_inputs(as_matrix(table), candidate.columns), table[TARGET].to_numpy()
    split_sets = [
        list(StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(X, y)) for seed in seeds
    ]
    return out_of_fold(candidate.estimator, X, y, split_sets, workers=WORKERS)


def run_candidates(
    candidates: Sequence[Candidate],
    table: pd.DataFrame,
    seeds: Sequence[int],
    leaky: bool = True,
) -> dict[str, dict[str, Any]]:
    """Honest (and unless `leaky` is false, leaky) out-of-fold predictions, seeds × rows, of
    each candidate, and the wall time of its honest run."""
    runs = {}
    for candidate in candidates:
        started = time.perf_counter()
        honest = repeated_grouped_cv(
            candidate.estimator, table, FOLDS, seeds, None, candidate.columns, WORKERS
        )
        seconds = time.perf_counter() - started
        runs[candidate.name] = {"honest": honest, "seconds": seconds}
        if leaky:
            runs[candidate.name]["leaky"] = leaky_cv(candidate, table, seeds)
        print(f"{candidate.name}: {seconds:.0f} s", file=sys.stderr, flush=True)
    return runs


def with_blends(runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`runs` plus each blend of `BLENDS` whose members all ran."""
    blended = dict(runs)
    for members in BLENDS:
        if all(member in runs for member in members):
            blended["blend: " + " + ".join(members)] = {
                protocol: np.mean([runs[m][protocol] for m in members], axis=0)
                for protocol in PROTOCOLS
                if all(protocol in runs[m] for m in members)
            } | {"seconds": sum(runs[m]["seconds"] for m in members)}
    return blended


def summarise(runs: dict[str, dict[str, Any]], y: np.ndarray, default: str) -> list[dict[str, Any]]:
    """Per model: per-seed scores, mean ± std of both protocols, and the paired comparison of
    the honest scores with the default's (difference and wins per metric). A run without
    leaky predictions gets the honest protocol only."""
    per_seed = {
        name: {p: [scores(y, oof) for oof in run[p]] for p in PROTOCOLS if p in run}
        for name, run in runs.items()
    }
    rows = []
    for name, run in runs.items():
        row: dict[str, Any] = {"model": name, "seconds": run["seconds"]}
        for protocol in per_seed[name]:
            seeds = per_seed[name][protocol]
            row[protocol] = {
                "per_seed": seeds,
                **{m: spread([s[m] for s in seeds]) for m in METRICS},
            }
        if default in per_seed:
            row["paired"] = {
                m: paired_comparison(
                    [s[m] for s in per_seed[name]["honest"]],
                    [s[m] for s in per_seed[default]["honest"]],
                    higher_is_better=m not in LOWER_IS_BETTER,
                )
                for m in METRICS
            }
        rows.append(row)
    return sorted(rows, key=lambda r: -r["honest"]["accuracy"]["mean"])


def accuracy_ceiling(table: pd.DataFrame) -> dict[str, float]:
    """The best accuracy any model can reach: each distinct feature vector given its majority
    label; rows of vectors that carry both labels are partly wrong whatever is predicted."""
    groups = pd.Series(feature_vector_ids(table))
    labels = table[TARGET].reset_index(drop=True)
    counts = pd.crosstab(groups, labels)
    both = counts[(counts > 0).all(axis=1)]
    return {
        "accuracy": float(counts.max(axis=1).sum() / len(table)),
        "vectors_with_both_labels": len(both),
        "rows_of_those_vectors": int(both.to_numpy().sum()),
    }


def benchmark(
    table: pd.DataFrame, candidates: Sequence[Candidate], seeds: Sequence[int], default: str
) -> list[dict[str, Any]]:
    """Score every candidate (and the blends) on the same repeated folds; see `summarise`."""
    runs = with_blends(run_candidates(candidates, table, seeds))
    return summarise(runs, table[TARGET].to_numpy(), default)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    default_data = os.environ.get("PHISHING_DATA") or "../shared/data/phishing_websites.csv"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(default_data))
    parser.add_argument("--models", help="comma-separated conf/model names (default: all)")
    parser.add_argument("--no-anchors", action="store_true", help="skip LightGBM and CatBoost")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="fold seeds")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/quality.md"))
    parser.add_argument("--make-target", default="bench-quality", help="named on the page")
    args = parser.parse_args(argv)
    names = (
        args.models.split(",")
        if args.models
        else sorted(p.stem for p in CONF_MODELS.glob("*.yaml"))
    )
    seeds = [int(seed) for seed in args.seeds.split(",")]
    default = yaml.safe_load(compose_params())["model"]["name"]
    table = load_table(args.data)
    candidates = zoo(names) + ([] if args.no_anchors else anchors())
    started = time.perf_counter()
    rows = benchmark(table, candidates, seeds, default)
    context = {
        "rows": len(table),
        "phishing": int(table[TARGET].sum()),
        "folds": FOLDS,
        "seeds": seeds,
        "model_seed": MODEL_SEED,
        "workers": WORKERS,
        "default": default,
        "ceiling": accuracy_ceiling(table),
        "wall_seconds": time.perf_counter() - started,
        "make_target": args.make_target,
        "arguments": " ".join(argv if argv is not None else sys.argv[1:]),
        "versions": library_versions() | anchor_versions(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(rows, context))
    args.out.with_suffix(".json").write_text(
        json.dumps({"context": context, "models": rows}, indent=1) + "\n"
    )
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}", file=sys.stderr)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
