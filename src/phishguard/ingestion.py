"""Getting the data in: the landing folder, and the canonical raw table.

`fetch` is the only place that looks at `PHISHING_DATA` or the network. It puts exactly one
file into the git-ignored landing folder, which is a DVC dependency of `ingest`; so DVC sees
every change of input, and no environment variable changes a stage's output behind its back.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from phishguard.schema import COLUMNS
from phishguard.sources import (
    READERS,
    DataSourceError,
    copy_file,
    download,
    is_url,
    read_table,
    supported_suffixes,
    url_suffix,
)

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
    ordered = [c for c in COLUMNS if c in table.columns]
    ordered += [c for c in table.columns if c not in COLUMNS]
    result = {}
    for name in ordered:
        column = table[name]
        if isinstance(column, pd.DataFrame):  # duplicated column names: keep them as text
            raise DataSourceError(f"duplicated column {name!r}")
        result[name] = _compact(column)
    return pd.DataFrame(result).reset_index(drop=True)


def _compact(column: pd.Series) -> pd.Series:
    if column.dtype == bool or column.map(lambda v: isinstance(v, bool | np.bool_)).any():
        return column.astype("string")
    text = column.astype("string").str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    integral = numbers.notna().all() and (numbers % 1 == 0).all()
    if integral and len(numbers) and numbers.between(-128, 127).all():
        return numbers.astype(np.int8)
    if integral and not len(numbers):
        return numbers.astype(np.int8)
    return column.astype("string")


def read_landed(landing_dir: Path) -> tuple[Path, pd.DataFrame]:
    """Read the landed file and return it as a canonical table."""
    path = landed_file(landing_dir)
    table = read_table(path)
    if table.columns.duplicated().any():
        names = sorted(set(table.columns[table.columns.duplicated()]))
        raise DataSourceError(f"{path}: duplicated column(s) {', '.join(names)}")
    if table.empty:
        raise DataSourceError(f"{path}: a header but no rows")
    return path, canonical_table(table)
