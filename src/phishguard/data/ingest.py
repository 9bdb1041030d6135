"""Getting the data in: the landing folder, and the canonical raw table.

`fetch` is the only place that looks at `PHISHING_DATA` or the network. It puts exactly one
file into the git-ignored landing folder, which is a DVC dependency of `ingest`; so DVC sees
every change of input, and no environment variable changes a stage's output behind its back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from phishguard.contract.csv_reader import cut_off_problem
from phishguard.contract.schema import COLUMNS, ContentHash
from phishguard.data.sources import (
    DEFAULT_CHUNK_ROWS,
    READERS,
    DataSourceError,
    copy_file,
    download,
    is_url,
    iter_chunks,
    supported_suffixes,
    url_suffix,
)
from phishguard.io import ChunkWriter

DATA_ENV = "PHISHING_DATA"
LANDING_STEM = "phishing_websites"


def choose_source(
    configured_url: str, environ: os._Environ[str] | dict[str, str] = os.environ
) -> str:
    """`PHISHING_DATA` if set (a path or URL), else the configured public URL."""
    return environ.get(DATA_ENV, "").strip() or configured_url


def fetch(source: str, landing_dir: Path) -> Path:
    """Put `source` into `landing_dir` as the only file there, and return its path.

    The file keeps the source's extension, so ingest knows how to read it. Re-fetching the
    same bytes leaves the landed file as it was.
    """
    suffix = url_suffix(source) if is_url(source) else Path(source).suffix.lower()
    if suffix not in READERS:
        raise DataSourceError(
            f"{source}: unknown file type {suffix or '(no extension)'!r}; "
            f"expected {supported_suffixes()}"
        )
    landing_dir.mkdir(parents=True, exist_ok=True)
    target = landing_dir / f"{LANDING_STEM}{suffix}"
    if is_url(source):
        try:
            download(source, target)
        except DataSourceError as error:
            raise DataSourceError(
                f"{error} — offline? set {DATA_ENV}=/path/to/phishing_websites.csv "
                f"(or .json, .jsonl, .arff, .parquet)"
            ) from None
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise DataSourceError(f"{DATA_ENV}={source}: no such file")
        if not (target.exists() and target.read_bytes() == path.read_bytes()):
            copy_file(path, target)
    for other in landing_dir.iterdir():
        if other != target and other.name.startswith(LANDING_STEM):
            other.unlink()
    return target


def landed_file(landing_dir: Path) -> Path:
    """The one file `fetch` left in `landing_dir`."""
    files = sorted(p for p in landing_dir.glob(f"{LANDING_STEM}.*") if p.is_file())
    if len(files) != 1:
        found = "nothing" if not files else ", ".join(p.name for p in files)
        raise DataSourceError(
            f"{landing_dir}: expected one {LANDING_STEM}.* file, found {found}; run `make data` "
            f"(set {DATA_ENV}=/path/to/file when offline)"
        )
    return files[0]


def canonical_table(table: pd.DataFrame) -> pd.DataFrame:
    """Fixed column order and compact dtypes, without judging or dropping any row.

    Known columns come first in schema order, unknown ones after in their own order (validate
    reports them). A column whose every value is an integer in int8 range becomes int8; any
    other column stays text, so validation can quarantine the odd values with their reasons.
    The result depends only on the rows, not on the file format they came from.
    """
    _check_unique(list(map(str, table.columns)), "the table")
    columns = _ordered(list(table.columns))
    return _canonical_chunk(table, {name: _as_int8(table[name]) is not None for name in columns})


def _check_unique(names: list[str], where: str) -> None:
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise DataSourceError(f"{where}: duplicated column(s) {', '.join(duplicated)}")


def _ordered(columns: list[str]) -> list[str]:
    return [c for c in COLUMNS if c in columns] + [c for c in columns if c not in COLUMNS]


_INT8_TEXT = [str(i) for i in range(-128, 128)]


def _as_int8(column: pd.Series) -> pd.Series | None:
    """`column` as int8 if every value is an integer in int8 range, else None.

    Booleans are not integers here. Plain integer text takes a fast path; anything else
    ("1.0", " 1", 1.0) is parsed as a number.
    """
    if column.dtype == bool:
        return None
    if column.dtype == object and column.map(lambda v: isinstance(v, bool | np.bool_)).any():
        return None
    text = column.astype("string").str.strip()
    if text.isin(_INT8_TEXT).all():
        return text.astype(np.int8)
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.notna().all() and (numbers % 1 == 0).all() and numbers.between(-128, 127).all():
        return numbers.astype(np.int8)
    return None


def _canonical_chunk(chunk: pd.DataFrame, as_int8: dict[str, bool]) -> pd.DataFrame:
    """`chunk` with the columns of `as_int8`, in its order: int8 where True, else text."""
    result = {}
    for name, integral in as_int8.items():
        if name not in chunk.columns:
            result[name] = pd.Series(pd.NA, index=chunk.index, dtype="string")
        elif integral:
            result[name] = _as_int8(chunk[name])
        else:
            result[name] = chunk[name].astype("string")
    return pd.DataFrame(result).reset_index(drop=True)


@dataclass(frozen=True)
class IngestSummary:
    """What `ingest_file` wrote: row count, columns, and the content hash of the table."""

    rows: int
    columns: list[str]
    content_sha256: str


@dataclass(frozen=True)
class RowDropGuard:
    """The row count of the last ingest, and the largest fraction of it a new file may lose."""

    previous_rows: int
    max_row_drop: float

    def problem(self, rows: int) -> str | None:
        """Why `rows` is too big a drop from `previous_rows`, or None."""
        drop = (self.previous_rows - rows) / self.previous_rows if self.previous_rows else 0.0
        if drop <= self.max_row_drop:
            return None
        return (
            f"{rows} rows, {drop:.1%} fewer than the {self.previous_rows} of the last ingest, "
            f"over ingest.max_row_drop ({self.max_row_drop:.1%}); is the file cut off? If the "
            "smaller data is intended, raise ingest.max_row_drop in conf/config.yaml and params.yaml"
        )


def ingest_file(
    source: Path,
    destination: Path,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    guard: RowDropGuard | None = None,
) -> IngestSummary:
    """Write `source` to `destination` (Parquet) as the canonical table, chunk by chunk.

    Two passes over the file keep memory bounded by `chunk_rows`: the first settles the
    columns and which ones are int8 (every value of the whole file must fit), the second
    writes. The result is the same as `canonical_table` of the whole file. A CSV whose last
    line is cut off, or a row count that drops past `guard`, stops it before any write.
    """
    as_int8: dict[str, bool] = {}
    rows = 0
    for chunk in iter_chunks(source, chunk_rows):
        names = [str(c) for c in chunk.columns]
        _check_unique(names, str(source))
        for name in as_int8.keys() - set(names):
            as_int8[name] = False  # absent from this chunk: its cells are missing
        for name in names:
            fits = (name in as_int8 or rows == 0) and _as_int8(chunk[name]) is not None
            as_int8[name] = as_int8.get(name, True) and fits
        rows += len(chunk)
    if rows == 0:
        raise DataSourceError(f"{source}: a header but no rows")
    if source.suffix.lower() == ".csv" and (problem := cut_off_problem(source)):
        raise DataSourceError(f"{source}: {problem}")
    if guard is not None and (problem := guard.problem(rows)):
        raise DataSourceError(f"{source}: {problem}")
    as_int8 = {name: as_int8[name] for name in _ordered(list(as_int8))}
    digest = ContentHash(list(as_int8))
    empty = _canonical_chunk(pd.DataFrame(columns=list(as_int8)), as_int8)
    with ChunkWriter(destination, empty) as writer:
        for chunk in iter_chunks(source, chunk_rows):
            canonical = _canonical_chunk(chunk, as_int8)
            digest.update(canonical)
            writer.write(canonical)
    return IngestSummary(rows=rows, columns=list(as_int8), content_sha256=digest.hexdigest())
