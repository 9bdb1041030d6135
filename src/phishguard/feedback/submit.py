"""`phishguard feedback FILE`: an analyst's verdicts from a file into the feedback store.

The file (CSV, JSONL or Parquet, read by the pipeline's own readers) holds the 30 features and
either `label` (phishing or legitimate) or `Result` (UCI coding: -1 phishing, 1 legitimate), and
optionally `note` and `source` per row. Every row is checked first (`intake.verdicts_from_table`);
one bad row stops the command with one line naming each bad row, and nothing is stored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from phishguard.contract.problems import SchemaError
from phishguard.data.sources import read_table
from phishguard.feedback.intake import verdicts_from_table
from phishguard.feedback.store import AddResult, open_store

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
    try:
        verdicts = verdicts_from_table(read_table(file))
    except SchemaError as error:
        raise SchemaError(f"{Path(file)}: {error}") from None
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
