"""`phishguard feedback FILE`: an analyst's verdicts from a file into the feedback store.

The file (CSV, JSONL or Parquet, read by the pipeline's own readers) holds the 30 features and
either `label` (phishing or legitimate) or `Result` (UCI coding: -1 phishing, 1 legitimate), and
optionally `note` and `source` per row. Every row is checked first (`intake.verdicts_from_table`);
one bad row stops the command with one line naming each bad row, and nothing is stored. Each
verdict is kept with the served package's P(phishing) of its record (none when no package is
served), as the service does, for the trust rules (`phishguard.feedback.trust`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from phishguard import PhishguardError
from phishguard.contract.problems import SchemaError
from phishguard.contract.schema import FEATURES
from phishguard.data.origin import CHAMPION_PHISHING
from phishguard.data.sources import read_table
from phishguard.feedback.intake import MAX_SOURCE_CHARS, verdicts_from_table
from phishguard.feedback.store import AddResult, open_store
from phishguard.modeling.promotion import load_champion

DEFAULT_SOURCE = "cli"


def summary(added: AddResult, where: str) -> str:
    """The one line printed after a submission."""
    return (
        f"{added.accepted + added.already_present} verdicts: {added.accepted} accepted into "
        f"{where}, {added.already_present} already present"
    )


def command(
    file: str,
    source: str | None,
    submitter: str | None,
    as_json: bool,
    environ: Mapping[str, str] = os.environ,
) -> AddResult:
    """Check every row of `file`, then store them all (or nothing) and print the outcome."""
    if source is not None and not 0 < len(source) <= MAX_SOURCE_CHARS:
        raise PhishguardError(f"--source must have 1 to {MAX_SOURCE_CHARS} characters")
    try:
        verdicts = verdicts_from_table(read_table(file))
    except SchemaError as error:
        raise SchemaError(f"{Path(file)}: {error}") from None
    served, _ = load_champion()
    if served is not None:
        matrix = verdicts.loc[:, list(FEATURES)].to_numpy(dtype=np.float32)
        verdicts[CHAMPION_PHISHING] = served.probability(matrix)
    store = open_store(environ)
    try:
        added = store.add(verdicts, source or DEFAULT_SOURCE, submitter)
    finally:
        store.close()
    if as_json:
        print(json.dumps({"accepted": added.accepted, "already_present": added.already_present}))
    else:
        print(summary(added, store.where))
    return added
