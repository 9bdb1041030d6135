"""The group-aware stratified train/test split."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from phishguard.contract.schema import FEATURES, LABEL, TARGET, feature_vector_ids, to_target


def with_target(valid: pd.DataFrame) -> pd.DataFrame:
    """The 30 features plus the 0/1 target (1 = phishing), in canonical order."""
    table = valid.loc[:, list(FEATURES)].copy()
    table[TARGET] = to_target(valid[LABEL])
    return table


def group_aware_split(
    table: pd.DataFrame, test_size: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split so identical feature vectors never fall on both sides, stratified by target.

    One fold of StratifiedGroupKFold(round(1 / test_size)) becomes the test set.
    """
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    folds = round(1 / test_size)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    train_idx, test_idx = next(splitter.split(table, table[TARGET], feature_vector_ids(table)))
    return table.iloc[np.sort(train_idx)].reset_index(drop=True), table.iloc[
        np.sort(test_idx)
    ].reset_index(drop=True)


def split_report(train: pd.DataFrame, test: pd.DataFrame) -> dict:
    """Sizes, class balance, and the train/test feature-vector overlap (must be 0)."""
    train_ids, test_ids = set(feature_vector_ids(train)), set(feature_vector_ids(test))

    def balance(part: pd.DataFrame) -> dict:
        return {
            "rows": len(part),
            "phishing": int(part[TARGET].sum()),
            "phishing_fraction": round(float(part[TARGET].mean()), 6),
        }

    return {
        "train": balance(train),
        "test": balance(test),
        "test_fraction": round(len(test) / (len(train) + len(test)), 6),
        "feature_vector_overlap": len(train_ids & test_ids),
    }
