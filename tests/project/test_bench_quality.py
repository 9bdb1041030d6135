"""`make bench-quality`: repeated honest and leaky CV on identical folds, paired with the
default, on small synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks import quality
from phishguard.contract.schema import FEATURES, LABEL, TARGET
from phishguard.modeling.split import with_target
from tests.support import REPO, synthetic_rows


def _duplicated_noisy_csv(path: Path) -> Path:
    """Distinct rows with a weak signal and noisy labels, each row present 4 times: the
    setting in which memorising duplicates inflates the leaky protocol."""
    rows = synthetic_rows(150, seed=11)
    rng = np.random.default_rng(11)
    signal = rows["SSLfinal_State"] == 1
    noisy = rng.random(len(rows)) < 0.3
    rows[LABEL] = np.where(signal ^ noisy, 1, -1).astype(np.int8)
    pd.concat([rows] * 4, ignore_index=True).to_csv(path, index=False)
    return path


def test_leaky_protocol_is_inflated_by_duplicates(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    table = quality.load_table(_duplicated_noisy_csv(tmp_path / "data.csv"))
    assert len(table) == 600 and set(table[TARGET]) == {0, 1}
    (row,) = quality.benchmark(table, quality.zoo(["extra_trees"]), [42, 43], "extra_trees")
    # Extra trees memorise: with copies of every scored row in training, leaky CV looks far
    # better than the honest, grouped figure, on every seed.
    for honest, leaky in zip(row["honest"]["per_seed"], row["leaky"]["per_seed"], strict=True):
        assert leaky["accuracy"] > honest["accuracy"] + 0.1


def test_every_model_is_scored_on_the_same_folds(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    table = quality.load_table(_duplicated_noisy_csv(tmp_path / "data.csv"))
    same = quality.zoo(["logistic_regression"]) * 2
    twins = [
        quality.Candidate(name, c.estimator, FEATURES) for name, c in zip("ab", same, strict=True)
    ]
    runs = quality.run_candidates(twins, table, [1, 2])
    # One estimator under two names: identical folds give identical predictions, seed by seed.
    np.testing.assert_array_equal(runs["a"]["honest"], runs["b"]["honest"])
    assert runs["a"]["honest"].shape == (2, len(table))
    assert not np.array_equal(runs["a"]["honest"][0], runs["a"]["honest"][1])


def test_summary_pairs_each_model_with_the_default_seed_by_seed() -> None:
    y = np.array([0, 0, 1, 1] * 25)
    good = np.where(y == 1, 0.8, 0.2)
    noisy = np.where(np.arange(100) % 10 == 0, 1 - good, good)
    runs = {
        "default": {
            "honest": np.stack([noisy, noisy]),
            "leaky": np.stack([good, good]),
            "seconds": 1,
        },
        "better": {
            "honest": np.stack([good, noisy]),
            "leaky": np.stack([good, good]),
            "seconds": 2,
        },
    }
    rows = {row["model"]: row for row in quality.summarise(runs, y, "default")}
    paired = rows["better"]["paired"]["accuracy"]
    assert paired["wins"] == 1 and paired["difference_mean"] == pytest.approx(0.05)
    assert rows["better"]["honest"]["accuracy"] == {
        "mean": 0.95,
        "std": pytest.approx(0.0707, abs=1e-4),
    }
    assert rows["default"]["paired"]["accuracy"]["wins"] == 0
    # FPR: lower is better, so the seed where "better" flags fewer legitimate rows is a win.
    assert rows["better"]["paired"]["fpr"]["wins"] == 1


def test_blends_average_their_members() -> None:
    runs = {
        name: {"honest": np.full((2, 3), value), "leaky": np.full((2, 3), value), "seconds": 1.0}
        for name, value in (("xgboost", 0.2), ("lightgbm", 0.6))
    }
    blended = quality.with_blends(runs)
    np.testing.assert_allclose(blended["blend: xgboost + lightgbm"]["honest"], 0.4)
    assert "blend: xgboost + catboost" not in blended


def test_ceiling_counts_vectors_with_both_labels(make_rows) -> None:
    rows = with_target(make_rows(3, seed=4))
    table = pd.concat([rows, rows.iloc[[0]]], ignore_index=True)
    table.loc[3, TARGET] = 1 - table.loc[0, TARGET]
    ceiling = quality.accuracy_ceiling(table)
    assert ceiling == {"accuracy": 0.75, "vectors_with_both_labels": 1, "rows_of_those_vectors": 2}


def test_results_table_gives_mean_and_std_for_both_protocols(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    data = _duplicated_noisy_csv(tmp_path / "data.csv")
    out = tmp_path / "quality.md"
    quality.main(
        [
            "--data",
            str(data),
            "--models",
            "logistic_regression,xgboost",
            "--no-anchors",
            "--seeds",
            "1,2",
            "--out",
            str(out),
        ]
    )
    text = out.read_text()
    assert "StratifiedGroupKFold(5, shuffle) with fold seeds 1, 2" in text
    assert "StratifiedKFold(5, shuffle) with the same fold seeds" in text
    assert "make bench-quality" in text and "Which model is best" in text
    assert "| **xgboost** (default) |" in text
    honest_line, leaky_line = [
        ln for ln in text.splitlines() if ln.startswith("| logistic_regression")
    ]
    assert len(leaky_line.strip("|").split("|")) == 6
    cells = honest_line.strip("|").split("|")
    assert len(cells) == 10 and " ± " in cells[1] and "/2)" in cells[5]
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["context"]["seeds"] == [1, 2]
    assert {row["model"] for row in saved["models"]} == {"logistic_regression", "xgboost"}
    assert len(saved["models"][0]["honest"]["per_seed"]) == 2
