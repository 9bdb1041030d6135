"""Writing files: atomically (`atomic_path`), under a lock shared by processes
(`exclusive_lock`), and tables chunk by chunk (`ChunkWriter`), so a table never has to fit in
memory at once; `CHUNK_ROWS` is the one chunk size.

Every file goes to a hidden `.part` file beside the target, which is renamed into place only
when it is complete: a failure half-way (an exception, Ctrl-C, or SIGTERM turned into an exit
by the command) leaves no partial output behind, and the path keeps whatever it held.

CSV files are opened by people in spreadsheets, so a text cell that a spreadsheet would run as
a formula is written with a leading single quote, as OWASP advises against CSV injection: a
cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return, unless the whole cell is a
plain number (`-1` stays `-1`, so files of numbers read back unchanged). Parquet is not escaped.
"""

from __future__ import annotations

import fcntl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

CHUNK_ROWS = 50_000
"""Rows per chunk wherever a table is read or written in pieces (ingest, validate, load, predict,
a MongoDB snapshot): memory stays bounded by it, whatever the size of the data."""

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A hidden `.part` path beside `path` to write to: renamed onto `path` when the block ends,
    removed if it raises."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed at once, renamed below)
        dir=path.parent, prefix=f".{path.name}.", suffix=".part", delete=False
    )
    part.close()
    try:
        yield Path(part.name)
    except BaseException:
        Path(part.name).unlink(missing_ok=True)
        raise
    Path(part.name).replace(path)


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for the block: serialises the
    read-modify-write of a file shared by several processes on one machine (flock)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def spreadsheet_safe(table: pd.DataFrame) -> pd.DataFrame:
    """`table` with every text cell a spreadsheet would run as a formula prefixed by `'`."""
    escaped = {}
    for name in table.columns:
        column = table[name]
        if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            continue
        text = column.astype("string")
        risky = text.str.startswith(FORMULA_START) & ~text.str.fullmatch(_PLAIN_NUMBER)
        risky = risky.fillna(False).to_numpy(dtype=bool)
        if risky.any():
            escaped[name] = column.astype(object).where(~risky, "'" + text.astype(object))
    return table.assign(**escaped) if escaped else table


class ChunkWriter:
    """Append DataFrames or Arrow tables to `path` (Parquet if it ends in `.parquet`, else CSV
    with a header). An Arrow table goes into Parquet as it is, with no pandas in between.

    The first chunk fixes the columns and types (later Parquet chunks are cast to them);
    `empty` is written when no chunk was, so the file always exists and has its header.
    """

    def __init__(self, path: Path, empty: pd.DataFrame) -> None:
        self.path = path
        self.rows = 0
        self._empty = empty
        self._parquet = path.suffix == ".parquet"
        self._writer = None
        self._started = False
        self._atomic = atomic_path(path)
        self._part = self._atomic.__enter__()

    def write(self, chunk: pd.DataFrame | pa.Table) -> None:
        try:
            self._write(chunk)
        except OSError as error:  # name the file the user asked for, not the hidden .part
            raise OSError(error.errno, error.strerror or str(error), str(self.path)) from error
        self._started = True
        self.rows += len(chunk)

    def _write(self, chunk: pd.DataFrame | pa.Table) -> None:
        if self._parquet:
            table = (
                chunk
                if isinstance(chunk, pa.Table)
                else pa.Table.from_pandas(chunk, preserve_index=False)
            )
            if self._writer is None:
                self._writer = pq.ParquetWriter(self._part, table.schema)
            self._writer.write_table(table.cast(self._writer.schema))
        else:
            if isinstance(chunk, pa.Table):
                chunk = chunk.to_pandas()
            spreadsheet_safe(chunk).to_csv(
                self._part,
                mode="a" if self._started else "w",
                header=not self._started,
                index=False,
            )

    def __enter__(self) -> ChunkWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            try:
                if kind is None and not self._started:
                    self.write(self._empty)
            finally:
                if self._writer is not None:
                    self._writer.close()
        except BaseException as failure:
            self._atomic.__exit__(type(failure), failure, failure.__traceback__)
            raise
        self._atomic.__exit__(kind, error, traceback)
