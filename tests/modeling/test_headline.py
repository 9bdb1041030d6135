"""reports/headline.json: the few numbers the experiments are compared on (issue 29)."""

from __future__ import annotations

import json

from phishguard import paths
from phishguard.modeling.headline import HEADLINE_KEYS, UCI, headline_entry
from tests.support import REPO


def test_the_headline_takes_the_test_split_figures_and_the_threshold() -> None:
    metrics = {
        "threshold": 0.73770409,
        "test": {
            "accuracy": 0.964286,
            "roc_auc": 0.995845,
            "recall": 0.952041,  # at 0.5: not the headline's
            "at_threshold": {"fpr": 0.00974, "recall": 0.922449},
        },
        "cv": {"accuracy": 0.5},
    }
    assert headline_entry(metrics) == {
        "accuracy": 0.9643,
        "roc_auc": 0.9958,
        "recall_at_fpr": 0.9224,
        "threshold": 0.7377,
    }


def test_the_committed_headline_has_one_entry_per_model_kind_with_the_four_keys() -> None:
    headline = json.loads((REPO / paths.HEADLINE).read_text())
    assert UCI in headline
    for entry in headline.values():
        assert set(entry) == set(HEADLINE_KEYS)
        assert all(0 <= value <= 1 for value in entry.values())
