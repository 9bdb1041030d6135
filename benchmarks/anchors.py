"""The field's anchors for tabular classification, LightGBM and CatBoost, as the quality
benchmark fits them: one thread each (folds run two at a time), the field's usual settings.

They come from the `bench` dependency group (`uv run --group bench`), never the runtime
dependencies: `make bench-quality` installs it; nothing in `src/` imports this module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from catboost import CatBoostClassifier
from lightgbm import LGBMClassifier


def lightgbm(seed: int) -> Any:
    """LightGBM as in the brief's table: 400 trees, learning rate 0.05, otherwise defaults."""
    return LGBMClassifier(
        n_estimators=400, learning_rate=0.05, n_jobs=1, random_state=seed, verbose=-1
    )


def catboost(seed: int) -> Any:
    """CatBoost with its defaults (1,000 symmetric trees of depth 6, learning rate chosen by
    CatBoost from the data size); no files written beside the benchmark."""
    return CatBoostClassifier(
        thread_count=1, random_seed=seed, verbose=0, allow_writing_files=False
    )


ANCHORS: dict[str, Callable[[int], Any]] = {"lightgbm": lightgbm, "catboost": catboost}
"""Anchor name → estimator for a seed. Both see the 30 signals as given (no signal counts)."""
