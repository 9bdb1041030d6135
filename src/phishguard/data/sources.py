"""Readers for every supported source, behind one dispatch: `iter_chunks` / `read_table`.

A source is a local path (CSV, JSON, JSONL, ARFF or Parquet, chosen by extension) or an
http(s) URL, which `download` puts on disk first. Each reader yields DataFrames of strings or
numbers, exactly as found; judging the values is validation's job, not the reader's.
Adding a file format means adding one entry to `READERS`; `phishguard.data.landing.fetch`
dispatches over the kinds of source (a file, a URL, MongoDB).
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from phishguard import DataSourceError, first_line
from phishguard.contract.csv_reader import read_csv_chunks
from phishguard.io import CHUNK_ROWS, atomic_path

DOWNLOAD_TIMEOUT_S = 30
MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024


Reader = Callable[[Path, int], Iterator[pd.DataFrame]]


def _check_text(path: Path) -> None:
    """Fail early, with a readable message, on empty or binary files."""
    with path.open("rb") as handle:
        head = handle.read(64 * 1024)
    if not head.strip():
        raise DataSourceError(f"{path}: the file is empty")
    if b"\x00" in head:
        raise DataSourceError(f"{path}: the file is binary, not text")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 4:  # not merely a multi-byte char cut at the boundary
            raise DataSourceError(
                f"{path}: not UTF-8 text (byte {error.start}: {head[error.start : error.start + 1]!r})"
            ) from None


def _read_csv(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    with path.open("rb") as handle:
        yield from read_csv_chunks(handle, str(path), chunk_rows)


def _read_jsonl(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    _check_text(path)
    rows: list[dict] = []
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataSourceError(
                    f"{path}: line {number} is not valid JSON ({error.msg})"
                ) from None
            if not isinstance(record, dict):
                raise DataSourceError(f"{path}: line {number} is not a JSON object")
            rows.append(record)
            if len(rows) >= chunk_rows:
                yield _records_frame(rows)
                rows = []
    if rows:
        yield _records_frame(rows)


def _read_json(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    _check_text(path)
    try:
        with path.open(encoding="utf-8-sig") as handle:
            document = json.load(handle)
    except json.JSONDecodeError as error:
        raise DataSourceError(
            f"{path}: not valid JSON ({error.msg}, line {error.lineno})"
        ) from None
    if isinstance(document, dict) and isinstance(document.get("records"), list):
        document = document["records"]
    if not isinstance(document, list) or not all(isinstance(r, dict) for r in document):
        raise DataSourceError(f'{path}: expected a JSON array of objects (or {{"records": [...]}})')
    for start in range(0, max(len(document), 1), chunk_rows):
        yield _records_frame(document[start : start + chunk_rows])


def _records_frame(records: list[dict]) -> pd.DataFrame:
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(record))
    return pd.DataFrame.from_records(records, columns=list(columns)).astype(object)


def _read_arff(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """A minimal ARFF reader: attribute names from the header, data lines as CSV."""
    _check_text(path)
    names: list[str] = []
    with path.open(encoding="utf-8-sig") as handle:
        for line in handle:
            stripped = line.strip()
            lowered = stripped.lower()
            if lowered.startswith("@attribute"):
                parts = stripped.split(None, 2)
                if len(parts) < 3:
                    raise DataSourceError(f"{path}: malformed @attribute line: {stripped[:80]}")
                names.append(parts[1].strip("'\""))
            elif lowered.startswith("@data"):
                break
        else:
            raise DataSourceError(f"{path}: not an ARFF file (no @data section)")
        if not names:
            raise DataSourceError(f"{path}: ARFF header declares no attributes")
        rows: list[list[str | None]] = []
        for number, line in enumerate(handle, start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("%"):
                continue
            values = [None if v.strip() == "?" else v.strip() for v in stripped.split(",")]
            if len(values) != len(names):
                raise DataSourceError(
                    f"{path}: data line {number} has {len(values)} values, expected {len(names)}"
                )
            rows.append(values)
            if len(rows) >= chunk_rows:
                yield pd.DataFrame(rows, columns=names, dtype=object)
                rows = []
        if rows or not names:
            yield pd.DataFrame(rows, columns=names, dtype=object)


def _read_parquet(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    for batch in _parquet_batches(path, chunk_rows):
        yield batch.to_pandas()


def _parquet_batches(
    path: Path, chunk_rows: int, columns: Sequence[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """The file's rows as Arrow record batches of at most `chunk_rows` rows, read row group
    by row group (memory bounded by a batch and a row group); `columns` (those the file has)
    limits what is decoded. A file without rows gives one empty batch."""
    parquet = _parquet_file(path)
    schema = parquet.schema_arrow
    if columns is not None:
        columns = [name for name in columns if name in schema.names]
        schema = pa.schema([schema.field(name) for name in columns])
    if parquet.metadata.num_rows == 0:
        yield pa.RecordBatch.from_pylist([], schema=schema)
        return
    try:
        yield from parquet.iter_batches(batch_size=chunk_rows, columns=columns)
    except (pa.ArrowInvalid, OSError) as error:
        raise DataSourceError(
            f"{path}: not a readable Parquet file ({first_line(error)})"
        ) from None


READERS: dict[str, Reader] = {
    ".csv": _read_csv,
    ".json": _read_json,
    ".jsonl": _read_jsonl,
    ".ndjson": _read_jsonl,
    ".arff": _read_arff,
    ".parquet": _read_parquet,
}


def supported_suffixes() -> str:
    return ", ".join(sorted(READERS))


def iter_chunks(source: str | Path, chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """Yield the rows of `source` as DataFrames of at most `chunk_rows` rows.

    Raises `DataSourceError` with one readable line for anything that cannot be read.
    """
    path = _readable(source)
    try:
        yield from READERS[path.suffix.lower()](path, chunk_rows)
    except UnicodeDecodeError as error:
        raise DataSourceError(
            f"{path}: not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None


def parquet_columns(source: str | Path) -> list[str]:
    """The column names of a Parquet file, from its footer (no row is read)."""
    return list(_parquet_file(_readable(source)).schema_arrow.names)


def _parquet_file(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise DataSourceError(
            f"{path}: not a readable Parquet file ({first_line(error)})"
        ) from None


def iter_parquet_batches(
    source: str | Path, chunk_rows: int = CHUNK_ROWS, columns: Sequence[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """The rows of a Parquet file as typed Arrow record batches (no pandas), for readers that
    take Arrow (the batch CLI's fast path); `iter_chunks` gives the same rows as DataFrames.
    `columns` limits the columns decoded to those of them the file has."""
    path = _readable(source)
    if path.suffix.lower() != ".parquet":
        raise DataSourceError(f"{path}: not a .parquet file")
    yield from _parquet_batches(path, chunk_rows, columns)


def _readable(source: str | Path) -> Path:
    """`source` as a path to a readable file of a supported type, else `DataSourceError`."""
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix not in READERS:
        raise DataSourceError(
            f"{path}: unknown file type {suffix or '(no extension)'!r}; expected {supported_suffixes()}"
        )
    if not path.is_file():
        raise DataSourceError(
            f"{path}: no such file" if not path.exists() else f"{path}: not a file"
        )
    if not os.access(path, os.R_OK):
        raise DataSourceError(f"{path}: permission denied")
    return path


def read_table(source: str | Path) -> pd.DataFrame:
    """Read a whole source into one DataFrame (see `iter_chunks`)."""
    chunks = list(iter_chunks(source))
    if not chunks:
        raise DataSourceError(f"{source}: no rows")
    return pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]


def is_url(source: str) -> bool:
    return urllib.parse.urlsplit(source).scheme in {"http", "https"}


def download(url: str, destination: Path, timeout_s: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Stream `url` to `destination` atomically; raise `DataSourceError` on any failure."""
    try:
        with (
            urllib.request.urlopen(url, timeout=timeout_s) as response,
            atomic_path(destination) as part_path,
            part_path.open("wb") as part,
        ):
            copied = 0
            while block := response.read(1 << 20):
                copied += len(block)
                if copied > MAX_DOWNLOAD_BYTES:
                    raise DataSourceError(f"{url}: larger than {MAX_DOWNLOAD_BYTES} bytes")
                part.write(block)
    except urllib.error.HTTPError as error:
        raise DataSourceError(f"{url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DataSourceError(f"{url}: unreachable ({reason})") from None
    return destination


def url_suffix(url: str) -> str:
    """The file extension named by a URL's path (``.../Training%20Dataset.arff`` → ``.arff``)."""
    return Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).suffix.lower()


def copy_file(source: Path, destination: Path) -> Path:
    """Copy atomically, so a reader never sees half a file."""
    with (
        atomic_path(destination) as part_path,
        part_path.open("wb") as part,
        source.open("rb") as handle,
    ):
        shutil.copyfileobj(handle, part)
    return destination
