"""`make bench-quality`: honest and leaky CV side by side, on small synthetic data."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from conftest import REPO, synthetic_rows

sys.path.insert(0, str(REPO / "benchmarks"))
import quality

from phishguard.schema import LABEL, TARGET


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
    (row,) = quality.benchmark(table, ["extra_trees"])
    # Extra trees memorise: with copies of every scored row in training, leaky CV looks far
    # better than the honest, grouped figure.
    assert row["leaky"]["accuracy"] > row["honest"]["accuracy"] + 0.1


def test_results_table_names_both_protocols(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    data = _duplicated_noisy_csv(tmp_path / "data.csv")
    out = tmp_path / "quality.md"
    quality.main(["--data", str(data), "--models", "logistic_regression", "--out", str(out)])
    text = out.read_text()
    assert "StratifiedGroupKFold(5, shuffle, seed 42)" in text
    assert "StratifiedKFold(5, shuffle, seed 42)" in text
    (line,) = [ln for ln in text.splitlines() if ln.startswith("| logistic_regression")]
    assert len(line.strip("|").split("|")) == 10
    assert "make bench-quality" in text
