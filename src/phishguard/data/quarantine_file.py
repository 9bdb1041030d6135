"""`quarantine` over a whole Parquet table, chunk by chunk, so memory stays bounded.

Each chunk is judged by the same `quarantine` as everywhere else; valid rows are appended
to the valid table and quarantined rows (numbered in the whole file, with their reasons) to
the quarantine CSV. Every input row lands in exactly one of the two, and the counts say so.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from phishguard.contract.checks import check_columns
from phishguard.contract.schema import COLUMNS
from phishguard.data.origin import BASE, FEEDBACK, ORIGIN, PROVENANCE_COLUMNS
from phishguard.data.validate import REASON, ROW, DuplicateCounter, quarantine
from phishguard.io import CHUNK_ROWS, ChunkWriter


@dataclass
class FileValidation:
    """Counts over the whole file. `input_rows == valid_rows + quarantined_rows`, always."""

    input_rows: int = 0
    valid_rows: int = 0
    quarantined_rows: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    # Quarantined rows by origin ("base" | "feedback"), for a snapshot with feedback rows.
    by_origin: Counter[str] | None = None
    duplicates: DuplicateCounter = field(default_factory=DuplicateCounter)

    @property
    def quarantined_fraction(self) -> float:
        return self.quarantined_rows / self.input_rows if self.input_rows else 0.0

    def report(self) -> dict[str, object]:
        """The validation report: counts, reasons and duplicate statistics."""
        return {
            "input_rows": self.input_rows,
            "valid_rows": self.valid_rows,
            "quarantined_rows": self.quarantined_rows,
            "quarantined_fraction": round(self.quarantined_fraction, 6),
            "quarantined_by_reason": dict(sorted(self.reasons.items())),
            **self.duplicates.stats(),
            **(
                {}
                if self.by_origin is None
                else {"quarantined_by_origin": {o: self.by_origin[o] for o in (BASE, FEEDBACK)}}
            ),
        }


def quarantine_file(
    raw: Path, valid_out: Path, quarantine_out: Path, chunk_rows: int = CHUNK_ROWS
) -> FileValidation:
    """Split the table at `raw` into `valid_out` (Parquet) and `quarantine_out` (CSV).

    A snapshot's origin columns (`phishguard.data.origin`) ride along into both outputs.
    Raises `SchemaError` when the columns are wrong, before anything is written.
    """
    table = pq.ParquetFile(raw)
    names = list(table.schema_arrow.names)
    carried = tuple(name for name in PROVENANCE_COLUMNS if name in names)
    check_columns([name for name in names if name not in carried])
    counts = FileValidation(by_origin=Counter() if ORIGIN in carried else None)
    empty_valid = pd.DataFrame(
        {
            **{name: pd.Series(dtype=np.int8) for name in COLUMNS},
            **{name: pd.Series(dtype="string") for name in carried},
        }
    )
    empty_quarantined = pd.DataFrame(columns=[ROW, *COLUMNS, *carried, REASON])
    with (
        ChunkWriter(valid_out, empty_valid) as valid,
        ChunkWriter(quarantine_out, empty_quarantined) as bad,
    ):
        for batch in table.iter_batches(batch_size=chunk_rows):
            result = quarantine(batch.to_pandas(), carry=carried)
            quarantined = result.quarantined.copy()
            quarantined[ROW] += counts.input_rows
            valid.write(result.valid)
            if len(quarantined):
                bad.write(quarantined)
            counts.input_rows += batch.num_rows
            counts.valid_rows += len(result.valid)
            counts.quarantined_rows += len(quarantined)
            counts.reasons.update(result.reason_counts())
            counts.duplicates.add(result.valid)
            if counts.by_origin is not None:
                counts.by_origin.update(quarantined[ORIGIN].fillna("").tolist())
    return counts
