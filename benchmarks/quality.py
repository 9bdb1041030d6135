"""Every model of the zoo, side by side, under the honest and the leaky protocol.

Honest: StratifiedGroupKFold(5, shuffle, seed 42) over all rows, each group an identical
feature vector, so no copy of a scored row is ever trained on. Leaky: plain StratifiedKFold
with the same seed, the protocol every public result on this dataset uses (copies of ~65% of
the scored rows sit in the training folds). Out-of-fold predictions are pooled, then scored.

    python benchmarks/quality.py [--data PATH] [--models a,b] [--out benchmarks/results/quality.md]

`make bench-quality` runs it on the offline dataset.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold

from phishguard.config import compose_params
from phishguard.evaluation import grouped_cv, recall_at_fpr
from phishguard.ingestion import canonical_table
from phishguard.models import build_model, design_matrix, uses_signal_counts
from phishguard.provenance import library_versions
from phishguard.schema import TARGET
from phishguard.sources import read_table
from phishguard.splitting import with_target
from phishguard.validation import quarantine

FOLDS, SEED, TARGET_FPR = 5, 42, 0.02
CONF_MODELS = Path("conf") / "model"


def load_table(source: Path) -> pd.DataFrame:
    """All valid rows of the dataset, duplicates kept, with the 0/1 target."""
    result = quarantine(canonical_table(read_table(source)))
    return with_target(result.valid)


def leaky_cv(spec: dict, table: pd.DataFrame, folds: int, seed: int) -> np.ndarray:
    """Out-of-fold P(phishing) from plain StratifiedKFold: identical rows straddle folds."""
    estimator = build_model(spec, seed)
    X, y = design_matrix(table, spec), table[TARGET].to_numpy()
    oof = np.empty(len(table), dtype=np.float64)
    for train_idx, test_idx in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y):
        model = clone(estimator).fit(X[train_idx], y[train_idx])
        oof[test_idx] = model.predict_proba(X[test_idx])[:, 1]
    return oof


def scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy and FPR at 0.5, ROC-AUC, recall at FPR ≤ 2%."""
    predicted = proba >= 0.5
    negatives = y == 0
    return {
        "accuracy": float(skm.accuracy_score(y, predicted)),
        "roc_auc": float(skm.roc_auc_score(y, proba)),
        "recall_at_fpr": recall_at_fpr(y, proba, TARGET_FPR),
        "fpr": float(predicted[negatives].mean()),
    }


def model_spec(name: str) -> dict:
    """The `model` section Hydra composes for `model=<name>` (as `dvc exp run -S` would)."""
    import yaml

    return yaml.safe_load(compose_params([f"model={name}"]))["model"]


def benchmark(table: pd.DataFrame, names: list[str]) -> list[dict]:
    """One row per model: honest and leaky scores and the mean fit+predict time per fold."""
    y = table[TARGET].to_numpy()
    rows = []
    for name in names:
        spec = model_spec(name)
        estimator = build_model(spec, SEED)
        started = time.perf_counter()
        oof = grouped_cv(estimator, table, FOLDS, SEED, signal_counts=uses_signal_counts(spec))
        honest = scores(y, oof)
        seconds = (time.perf_counter() - started) / FOLDS
        leaky = scores(y, leaky_cv(spec, table, FOLDS, SEED))
        rows.append({"model": name, "honest": honest, "leaky": leaky, "seconds": seconds})
        print(f"{name}: honest {honest} leaky {leaky}", file=sys.stderr, flush=True)
    return rows


def markdown(rows: list[dict], table: pd.DataFrame, default: str) -> str:
    """The results table, with the protocol and the command that regenerates it."""
    lines = [
        "# Quality of the model zoo: honest against leaky cross-validation",
        "",
        "Regenerate with `make bench-quality` (`python benchmarks/quality.py`). "
        f"{len(table):,} rows ({table[TARGET].sum():,} phishing), duplicates kept; every model "
        f"with its `conf/model/<name>.yaml` hyperparameters and seed {SEED}. Default model: "
        f"`{default}`.",
        "",
        f"- **Honest**: StratifiedGroupKFold({FOLDS}, shuffle, seed {SEED}); each group is one "
        "distinct feature vector, so no copy of a scored row is ever trained on.",
        f"- **Leaky**: StratifiedKFold({FOLDS}, shuffle, seed {SEED}) on the same rows, the "
        "protocol of the published results; identical rows land on both sides. Shown only to "
        "measure the inflation — never to choose a model.",
        "- Accuracy and FPR at threshold 0.5; recall at the best threshold with FPR ≤ 2% "
        "(phishing is the positive class). Out-of-fold predictions pooled over the folds.",
        "",
        "| model | honest accuracy | honest ROC-AUC | honest recall @ FPR≤2% | honest FPR | "
        "leaky accuracy | leaky ROC-AUC | leaky recall @ FPR≤2% | leaky FPR | s / fold |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        h, k = row["honest"], row["leaky"]
        name = f"**{row['model']}** (default)" if row["model"] == default else row["model"]
        lines.append(
            f"| {name} | {h['accuracy']:.2%} | {h['roc_auc']:.4f} | {h['recall_at_fpr']:.1%} | "
            f"{h['fpr']:.2%} | {k['accuracy']:.2%} | {k['roc_auc']:.4f} | "
            f"{k['recall_at_fpr']:.1%} | {k['fpr']:.2%} | {row['seconds']:.1f} |"
        )
    versions = ", ".join(f"{k} {v}" for k, v in library_versions().items())
    lines += ["", f"Libraries: {versions}. Timing on this machine (2 cores, shared).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    default_data = os.environ.get("PHISHING_DATA") or "../shared/data/phishing_websites.csv"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(default_data))
    parser.add_argument("--models", help="comma-separated conf/model names (default: all)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/quality.md"))
    args = parser.parse_args(argv)
    names = (
        args.models.split(",")
        if args.models
        else sorted(p.stem for p in CONF_MODELS.glob("*.yaml"))
    )
    import yaml

    default = yaml.safe_load(compose_params())["model"]["name"]
    table = load_table(args.data)
    rows = benchmark(table, names)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(rows, table, default))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
