"""The promotion gate's behavioural check (issue 27): do the verdicts that rest on one key's
word change what the model says about records nobody labelled?

Perturbed copies of the base test rows (each copy: 1 to `MAX_CHANGED` random features set to
another value of their domain; seeded, so the same tables give the same copies) are scored by
the champion, the challenger and a twin: the challenger's recipe retrained with another seed on
its training rows without the single-key verdicts (those neither confirmed by a second
submitter nor approved by a reviewer; featurize lists them). The twin's flips of the champion's
decisions are what retraining does anyway (a seed, the base data, trusted corrections); the
challenger may flip the champion's decisions at most `max_flip_ratio` × that baseline +
`max_flip_excess`. A backdoor planted by one key moves the challenger away from the champion on
unlabelled records; the twin, which never saw it, does not.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from phishguard.config.models import model_config
from phishguard.contract.schema import DOMAINS, FEATURES, TARGET
from phishguard.modeling import bundle
from phishguard.modeling.bundle import Bundle
from phishguard.modeling.features import featurize
from phishguard.modeling.train import train_and_save

COPIES, MAX_CHANGED, SEED = 3, 3, 20261208
TWIN_SEED_OFFSET = 1


def perturbed_copies(test: pd.DataFrame, copies: int = COPIES, seed: int = SEED) -> pd.DataFrame:
    """`copies` perturbed copies of each row of the featurized `test`, featurized again."""
    rng = np.random.default_rng(seed)
    values = np.repeat(test.loc[:, list(FEATURES)].to_numpy(dtype=np.int8), copies, axis=0)
    for row in range(len(values)):
        changed = rng.choice(len(FEATURES), size=rng.integers(1, MAX_CHANGED + 1), replace=False)
        for column in changed:
            others = [v for v in DOMAINS[FEATURES[column]] if v != values[row, column]]
            values[row, column] = others[rng.integers(len(others))]
    table = pd.DataFrame(values, columns=list(FEATURES))
    table[TARGET] = np.repeat(test[TARGET].to_numpy(), copies)
    return featurize(table)


def twin(challenger: Bundle, train: pd.DataFrame, folder: Path) -> Bundle:
    """The challenger's recipe (model and hyperparameters from its manifest) retrained on
    `train` with another seed, at the challenger's threshold."""
    manifest = challenger.manifest
    # A null hyperparameter is the library's default, which the params leave out.
    given = {k: v for k, v in manifest["hyperparameters"].items() if v is not None}
    config = model_config({"name": manifest["model_name"], **given})
    train_and_save(config, int(manifest["seed"]) + TWIN_SEED_OFFSET, train, folder)
    return bundle.load(folder, evaluated=False)


def flip_rates(
    champion: Bundle,
    challenger: Bundle,
    threshold: float,
    trusted_train: pd.DataFrame,
    test: pd.DataFrame,
) -> dict[str, Any]:
    """The share of perturbed test copies whose champion decision the challenger (at
    `threshold`) flips (`change`), and the share its twin, retrained on `trusted_train`,
    flips (`baseline`)."""
    copies = perturbed_copies(test)
    with tempfile.TemporaryDirectory(prefix="phishguard-twin-") as scratch:
        retrained = twin(challenger, trusted_train, Path(scratch) / "model")
        twin_says = retrained.predict_proba(copies) >= threshold
    new = challenger.predict_proba(copies) >= threshold
    old = champion.predict_proba(copies) >= float(champion.manifest["threshold"])
    return {
        "rows": len(copies),
        "twin_train_rows": len(trusted_train),
        "change": round(float(np.mean(new != old)), 6),
        "baseline": round(float(np.mean(twin_says != old)), 6),
    }
