"""Row-level validation against the schema: valid rows go on, invalid rows are quarantined.

`quarantine` never drops a row: every input row ends up in exactly one of the two outputs,
and each quarantined row carries the reasons it failed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from phishguard.contract.checks import check_columns, judge_table
from phishguard.contract.problems import Problem, reason
from phishguard.contract.schema import COLUMNS, clipped, row_ids

REASON = "reason"
ROW = "row"


@dataclass(frozen=True)
class ValidationResult:
    """Valid rows (canonical int8 columns) and quarantined rows (original values + reasons)."""

    valid: pd.DataFrame
    quarantined: pd.DataFrame

    def reason_counts(self) -> dict[str, int]:
        """How many quarantined rows failed each column/check (a row may count under several)."""
        if self.quarantined.empty:
            return {}
        reasons = self.quarantined[REASON].astype("string").str.split("; ").explode()
        kinds = reasons.str.replace(r"=.*? (?=is |not )", " ", regex=True)
        return {str(k): int(v) for k, v in kinds.value_counts().sort_index().items()}


def quarantine(
    table: pd.DataFrame, columns: tuple[str, ...] = COLUMNS, carry: tuple[str, ...] = ()
) -> ValidationResult:
    """Split `table` into valid rows and quarantined rows with a reason per row.

    The columns in `carry` that `table` has (a snapshot's origin columns) are not judged: they
    ride along, after `columns`, into both outputs. Raises `SchemaError` when the columns
    themselves are wrong (missing, misspelled, unexpected or duplicated), because then no row
    can be judged.
    """
    carried = [name for name in carry if name in table.columns]
    check_columns([name for name in table.columns if name not in carried], columns)
    table = table.reset_index(drop=True)
    numeric, problems = judge_table(table.drop(columns=carried), columns)
    by_row: dict[int, list[Problem]] = {}
    for problem in problems:
        by_row.setdefault(problem.row, []).append(problem)
    bad_rows = np.array(sorted(by_row), dtype=np.int64)
    is_bad = np.zeros(len(table), dtype=bool)
    is_bad[bad_rows] = True
    valid = numeric.loc[~is_bad, list(columns)].astype(np.int8).reset_index(drop=True)
    for name in carried:
        valid[name] = table.loc[~is_bad, name].astype("string").reset_index(drop=True)
    quarantined = table.loc[is_bad, [*columns, *carried]].astype("string").copy()
    for name in columns:  # a rejects file holds no cell longer than the cap either
        quarantined[name] = quarantined[name].map(clipped, na_action="ignore").astype("string")
    quarantined.insert(0, ROW, bad_rows + 1)
    quarantined[REASON] = pd.array([reason(by_row[int(r)]) for r in bad_rows], dtype="string")
    return ValidationResult(valid=valid, quarantined=quarantined.reset_index(drop=True))


class DuplicateCounter:
    """Counts of distinct rows, fed chunk by chunk: memory grows with distinct rows (16 bytes
    each), not with the file.

    Rows are keyed by `row_ids`, an exact integer encoding, so no hash can collide.
    """

    def __init__(self) -> None:
        self.keys = np.empty(0, dtype=np.int64)  # sorted, distinct
        self.counts = np.empty(0, dtype=np.int64)

    def add(self, valid: pd.DataFrame) -> int:
        """Count the rows of `valid`; return how many distinct rows were new."""
        keys, counts = np.unique(row_ids(valid), return_counts=True)
        where = np.searchsorted(self.keys, keys)
        seen = where < len(self.keys)
        seen[seen] = self.keys[where[seen]] == keys[seen]
        np.add.at(self.counts, where[seen], counts[seen])
        self.keys = np.insert(self.keys, where[~seen], keys[~seen])
        self.counts = np.insert(self.counts, where[~seen], counts[~seen])
        return int((~seen).sum())

    def stats(self) -> dict[str, int]:
        """Exact duplicates and feature vectors that carry both labels, over the rows added."""
        # A row id is its feature vector's id * 2 + label bit, and the ids are sorted: a vector
        # with both labels is two neighbouring ids with the same vector id.
        vectors = self.keys >> 1
        both = vectors[1:] == vectors[:-1]
        return {
            "exact_duplicate_rows": int(self.counts.sum()) - len(self.keys),
            "unique_rows": len(self.keys),
            "unique_feature_vectors": len(self.keys) - int(both.sum()),
            "conflicting_feature_vectors": int(both.sum()),
            "conflicting_rows": int(self.counts[:-1][both].sum() + self.counts[1:][both].sum()),
        }
