"""Writing a Parquet file chunk by chunk, so a table never has to fit in memory at once.

The file appears only when every chunk is written: a failure half-way leaves no partial
output behind, and the path keeps whatever it held before.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import TracebackType

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


class ParquetChunkWriter:
    """Append DataFrames with the columns and dtypes of `empty` to a Parquet file at `path`."""

    def __init__(self, path: Path, empty: pd.DataFrame) -> None:
        self.path = path
        self.rows = 0
        self._schema = pa.Table.from_pandas(empty, preserve_index=False).schema
        path.parent.mkdir(parents=True, exist_ok=True)
        part = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in __exit__)
            dir=path.parent, prefix=f".{path.name}.", suffix=".part", delete=False
        )
        part.close()
        self._part = Path(part.name)
        self._writer = pq.ParquetWriter(self._part, self._schema)

    def write(self, chunk: pd.DataFrame) -> None:
        self._writer.write_table(
            pa.Table.from_pandas(chunk, schema=self._schema, preserve_index=False)
        )
        self.rows += len(chunk)

    def __enter__(self) -> ParquetChunkWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._writer.close()
        if kind is None:
            self._part.replace(self.path)
        else:
            self._part.unlink(missing_ok=True)
