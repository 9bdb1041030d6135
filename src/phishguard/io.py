"""Writing files: atomically (`atomic_path`), under a lock shared by processes
(`exclusive_lock`), and tables chunk by chunk (`ChunkWriter`), so a table never has to fit in
memory at once; `CHUNK_ROWS` is the one chunk size.

Every file goes to a hidden `.part` file beside the target, which is renamed into place only
when it is complete: a failure half-way (an exception, Ctrl-C, or SIGTERM turned into an exit
by the command, a full disk) leaves no partial output behind, and the path keeps whatever it
held. Every writer of the project goes through here, so a full disk, an exhausted quota or a
read-only file system is one `phishguard.StorageError` naming the file and what to do
(`written_error`), and an output path whose parent is a file says so (`ensure_folder`).

CSV files are opened by people in spreadsheets, so a text cell that a spreadsheet would run as
a formula is written with a leading single quote, as OWASP advises against CSV injection: a
cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return, unless the whole cell is a
plain number (`-1` stays `-1`, so files of numbers read back unchanged). Parquet is not escaped.
"""

from __future__ import annotations

import fcntl
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from phishguard import PhishguardError, storage_error

CHUNK_ROWS = 50_000
"""Rows per chunk wherever a table is read or written in pieces (ingest, validate, load, predict,
a MongoDB snapshot): memory stays bounded by it, whatever the size of the data."""

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A hidden `.part` path beside `path` to write to: renamed onto `path` when the block ends,
    removed if it raises. An OS error names `path`, and a full disk, an exhausted quota or a
    read-only file system is a `StorageError` that says what to do. The part is locked while
    it is written, so that the run that completes `path` removes the parts of earlier runs
    killed half-way (`remove_stale_parts`) and never those of a run still writing."""
    ensure_folder(path.parent, path)
    try:
        part = tempfile.NamedTemporaryFile(  # noqa: SIM115 (held open for its lock, renamed below)
            dir=path.parent, prefix=f".{path.name}.", suffix=".part", delete=False
        )
    except OSError as error:
        raise written_error(error, path) from None
    try:
        fcntl.flock(part, fcntl.LOCK_EX)
        try:
            yield Path(part.name)
            Path(part.name).replace(path)
        except BaseException as error:
            Path(part.name).unlink(missing_ok=True)
            if isinstance(error, OSError):
                renamed = written_error(error, path, Path(part.name))
                if renamed is not error:
                    raise renamed from None
            raise
    finally:
        part.close()
    remove_stale_parts(path.parent, f".{glob.escape(path.name)}.*.part")


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write `data` (text as UTF-8) to `path` through `atomic_path`: whole or not at all."""
    with atomic_path(path) as part:
        if isinstance(data, str):
            part.write_text(data, encoding="utf-8")
        else:
            part.write_bytes(data)


def write_table(path: Path, table: pd.DataFrame) -> None:
    """Write a whole table to `path` (Parquet if it ends in `.parquet`, else CSV escaped as
    `spreadsheet_safe` does) through `atomic_path`: whole or not at all."""
    with atomic_path(path) as part:
        if path.suffix == ".parquet":
            table.to_parquet(part, index=False)
        else:
            spreadsheet_safe(table).to_csv(part, index=False)


def ensure_folder(folder: Path, target: Path | None = None) -> None:
    """Create `folder` and its parents for writing `target` (default: the folder itself). A
    parent that is a file says so (mkdir would say only "File exists"); a full or read-only
    disk is a `StorageError`."""
    target = folder if target is None else target
    for parent in (folder, *folder.parents):
        if parent.is_dir():
            break
        if parent.exists():
            raise PhishguardError(
                f"cannot write {target}: {parent} is a file, not a folder; "
                "choose a path inside a folder"
            )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise written_error(error, target) from None


def written_error(error: OSError, path: Path, part: Path | None = None) -> OSError:
    """The error of a write meant for `path`: a `StorageError` for a full or read-only disk,
    else the same error naming `path` instead of the hidden `part` it went to. Given `part`,
    an error about another file (a source read inside the block) is returned unchanged."""
    if (storage := storage_error(error, path)) is not None:
        return storage
    if part is not None and error.filename != str(part):
        return error
    return OSError(error.errno, error.strerror or str(error), str(path))


def remove_stale_parts(directory: Path, pattern: str) -> list[Path]:
    """Remove the `.part` files or folders matching `pattern` in `directory` that no live
    writer holds locked (those of a run that was killed); the removed ones."""
    removed = []
    for part in directory.glob(pattern):
        try:
            handle = os.open(part, os.O_RDONLY)
        except OSError:
            continue  # removed meanwhile
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # still being written
        else:
            if part.is_dir():
                shutil.rmtree(part, ignore_errors=True)
            else:
                part.unlink(missing_ok=True)
            removed.append(part)
        finally:
            os.close(handle)
    return removed


@contextmanager
def locked_folder(path: Path) -> Iterator[None]:
    """Hold `path` (a folder) locked for the block, as `remove_stale_parts` checks."""
    handle = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for the block: serialises the
    read-modify-write of a file shared by several processes on one machine (flock)."""
    ensure_folder(path.parent, path)
    try:
        handle = path.open("a")
    except OSError as error:
        raise written_error(error, path) from None
    with handle:
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
            raise written_error(error, self.path) from None
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
