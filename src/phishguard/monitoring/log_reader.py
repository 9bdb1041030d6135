"""Reading the prediction log: all of it as a table (`read_log`, for `phishguard drift`), or
given predictions without loading it (`logged_features`, for `POST /feedback`)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import mmap
import os
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from phishguard import DataSourceError
from phishguard.contract.schema import FEATURES
from phishguard.data.sources import is_url, read_table
from phishguard.monitoring.log_records import FILE_PATTERNS

log = logging.getLogger(__name__)


def read_log(source: str | Path) -> pd.DataFrame:
    """A prediction-log directory (every log file below it, JSONL and Parquet, in time order) or
    any records file the pipeline reads, as one DataFrame.

    A log file's last line without its newline (a writer killed mid-line) is skipped with a
    warning; any other malformed line is an error naming the file.
    """
    path = Path(source)
    if not path.is_dir():
        if not is_url(str(source)) and not path.exists():
            raise DataSourceError(f"{path}: no such file or directory")
        return read_table(source)
    files = sorted(_log_files(path))
    if not files:
        raise DataSourceError(
            f"{path}: no prediction-log files ({' or '.join(FILE_PATTERNS)}) in it"
        )
    frames = [frame for frame in map(_read_log_file, files) if not frame.empty]
    if not frames:
        raise DataSourceError(f"{path}: the prediction-log files hold no records")
    table = pd.concat(frames, ignore_index=True)
    order = np.argsort(pd.to_datetime(table["time"], utc=True).to_numpy(), kind="stable")
    return table.iloc[order].reset_index(drop=True)


def _log_files(directory: Path) -> list[Path]:
    """Every prediction-log file below `directory`, of either format."""
    return [file for pattern in FILE_PATTERNS for file in directory.rglob(pattern)]


def _read_log_file(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        try:
            table = pq.read_table(path).to_pandas()
        except (pa.ArrowException, OSError) as error:
            raise DataSourceError(f"{path}: not a prediction-log file ({error})") from None
        if table["caller"].isna().all():  # as a JSONL file without callers reads
            table = table.drop(columns=["caller"])
        return table
    complete, _, partial = path.read_text(encoding="utf-8").rpartition("\n")
    if partial.strip():
        log.warning("%s: its last line is incomplete (a writer stopped mid-line); skipped", path)
    if not complete.strip():
        return pd.DataFrame()
    try:
        return pd.read_json(io.StringIO(complete), lines=True, dtype=False, convert_dates=False)
    except ValueError as error:
        raise DataSourceError(f"{path}: not a prediction-log file ({error})") from None


def logged_features(directory: Path, ids: Collection[str]) -> dict[str, np.ndarray]:
    """The 30 features (int8) of each logged prediction among `ids`, found without loading the
    log: files newest first, stopping once every id is found. A JSONL file is searched as bytes
    for the id's `"prediction_id":"…"` text and only a matching line is parsed; a Parquet file
    is read for the matching rows only (its row groups' statistics skip the others). A file
    that cannot be read is skipped with a warning. An id not in the log is absent."""
    remaining = set(ids)
    found: dict[str, np.ndarray] = {}
    for path in _newest_first(directory):
        if not remaining:
            break
        try:
            search = _parquet_hits if path.suffix == ".parquet" else _jsonl_hits
            hits = search(path, remaining)
        except (OSError, ValueError, pa.ArrowException) as error:
            log.warning("%s: skipped while looking up predictions (%s)", path, error)
            continue
        found.update(hits)
        remaining.difference_update(hits)
    return found


def _newest_first(directory: Path) -> list[Path]:
    stamped = []
    for path in _log_files(directory):
        with contextlib.suppress(OSError):  # rotated away meanwhile
            stamped.append((path.stat().st_mtime_ns, str(path), path))
    return [path for *_, path in sorted(stamped, reverse=True)]


def _jsonl_hits(path: Path, ids: set[str]) -> dict[str, np.ndarray]:
    hits: dict[str, np.ndarray] = {}
    with path.open("rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return hits
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            for wanted in ids:
                needle = b'"prediction_id":' + json.dumps(wanted).encode()
                at = data.find(needle)
                while at >= 0:
                    end = data.find(b"\n", at)
                    if end < 0:  # the last line, still being written
                        break
                    with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                        record = json.loads(data[data.rfind(b"\n", 0, at) + 1 : end])
                        if record.get("prediction_id") == wanted:
                            hits[wanted] = np.array([record[n] for n in FEATURES], np.int8)
                            break
                    at = data.find(needle, end)
    return hits


def _parquet_hits(path: Path, ids: set[str]) -> dict[str, np.ndarray]:
    table = pq.read_table(
        path, columns=["prediction_id", *FEATURES], filters=[("prediction_id", "in", list(ids))]
    )
    matrix = np.column_stack([table[name].to_numpy() for name in FEATURES]).astype(np.int8)
    return dict(zip(table["prediction_id"].to_pylist(), matrix, strict=True))
