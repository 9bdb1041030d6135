"""Reading the prediction log: all of it as a table (`read_log`, for `phishguard drift`), or
given predictions without loading it (`logged_features`, for `POST /feedback`)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import mmap
import os
import sqlite3
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from phishguard import DataSourceError
from phishguard.contract.schema import FEATURES
from phishguard.data.sources import is_url, read_table
from phishguard.monitoring.log_files import log_files
from phishguard.monitoring.log_index import READER_BUSY_MS, LogIndex
from phishguard.monitoring.log_records import FILE_PATTERNS

log = logging.getLogger(__name__)


DAMAGED = "damaged_lines"
"""`read_log(...).attrs[DAMAGED]`: the lines of the log files skipped as damaged."""


def read_log(source: str | Path) -> pd.DataFrame:
    """A prediction-log directory (every log file below it, JSONL and Parquet, in time order) or
    any records file the pipeline reads, as one DataFrame.

    A damaged line (not a JSON object: cut off by a writer stopped mid-line, glued to a
    fragment, not UTF-8) or an unreadable Parquet file is skipped with one warning per file
    and counted in `attrs[DAMAGED]`; the rest of the log is read.
    """
    path = Path(source)
    if not path.is_dir():
        if not is_url(str(source)) and not path.exists():
            raise DataSourceError(f"{path}: no such file or directory")
        if not any(path.match(pattern) for pattern in FILE_PATTERNS):
            return read_table(source)
        files = [path]  # one log file: read as the log is, damaged lines skipped
    else:
        files = sorted(log_files(path))
    if not files:
        raise DataSourceError(
            f"{path}: no prediction-log files ({' or '.join(FILE_PATTERNS)}) in it"
        )
    damaged = 0
    frames = []
    for file in files:
        frame, bad = _read_log_file(file)
        damaged += bad
        if not frame.empty:
            frames.append(frame)
    if not frames:
        skipped = f" ({damaged} damaged lines skipped)" if damaged else ""
        raise DataSourceError(f"{path}: the prediction-log files hold no records{skipped}")
    table = pd.concat(frames, ignore_index=True)
    order = np.argsort(pd.to_datetime(table["time"], utc=True).to_numpy(), kind="stable")
    table = table.iloc[order].reset_index(drop=True)
    table.attrs[DAMAGED] = damaged
    return table


def _read_log_file(path: Path) -> tuple[pd.DataFrame, int]:
    """A log file's records and how many of its lines (or files) were damaged."""
    if path.suffix == ".parquet":
        try:
            table = pq.read_table(path).to_pandas()
        except (pa.ArrowException, OSError) as error:
            log.warning("%s: not a readable Parquet log file (%s); skipped", path, error)
            return pd.DataFrame(), 1
        if table["caller"].isna().all():  # as a JSONL file without callers reads
            table = table.drop(columns=["caller"])
        return table, 0
    complete, _, partial = path.read_bytes().rpartition(b"\n")
    damaged = int(bool(partial.strip()))
    if not complete.strip():
        frame = pd.DataFrame()
    else:
        try:  # the fast path: the whole file at once
            text = complete.decode("utf-8")
            frame = pd.read_json(io.StringIO(text), lines=True, dtype=False, convert_dates=False)
        except ValueError:  # UnicodeDecodeError included: line by line, skipping the bad
            records, bad = _json_lines(complete)
            damaged += bad
            frame = pd.DataFrame.from_records(records)
    if damaged:
        log.warning(
            "%s: %d damaged line(s) skipped (incomplete, cut by a failed write, or not JSON)",
            path,
            damaged,
        )
    return frame, damaged


def _json_lines(data: bytes) -> tuple[list[dict], int]:
    """The JSON objects of `data`'s lines, and how many non-blank lines were not one."""
    records, bad = [], 0
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            bad += 1
    return records, bad


def logged_features(directory: Path, ids: Collection[str]) -> dict[str, np.ndarray]:
    """The 30 features (int8) of each logged prediction among `ids`, found without reading
    the log: JSONL files through their index (`monitoring.log_index`: a few reads per id,
    whatever the size of the log), plus the ends of files the index does not cover yet;
    Parquet files (batch runs) by their row groups' statistics, newest first. A JSONL file
    written before the index existed is indexed the first time it is searched. Each hit is
    checked against the record itself. A file that cannot be read is skipped with a
    warning. An id not in the log is absent."""
    found: dict[str, np.ndarray] = {}
    files = log_files(directory)
    jsonl = {str(path.relative_to(directory)): path for path in files if path.suffix == ".jsonl"}
    if jsonl:
        found.update(_indexed_hits(directory, jsonl, set(ids)))
    remaining = set(ids) - found.keys()
    for path in _newest_first([path for path in files if path.suffix == ".parquet"]):
        if not remaining:
            break
        try:
            hits = _parquet_hits(path, remaining)
        except (OSError, ValueError, pa.ArrowException) as error:
            log.warning("%s: skipped while looking up predictions (%s)", path, error)
            continue
        found.update(hits)
        remaining.difference_update(hits)
    return found


def _indexed_hits(directory: Path, files: dict[str, Path], ids: set[str]) -> dict[str, np.ndarray]:
    wanted: dict[tuple[str, int], str] = {}
    for pid in ids:
        request_id, dash, number = pid.rpartition("-")
        if dash and number.isdigit() and len(number) < 19:
            wanted[(request_id, int(number))] = pid
    try:
        index = LogIndex(directory, READER_BUSY_MS)
    except (sqlite3.Error, OSError) as error:  # e.g. a read-only copy of the log: search it
        log.warning("%s: no index (%s); searching the log files", directory, error)
        return _scanned_hits(files, ids, {})
    try:
        covered = index.covered()
        for name, path in files.items():
            if name not in covered:  # written before the index: index it once
                with contextlib.suppress(OSError, sqlite3.Error):
                    index.index_file(name, path.read_bytes())
        covered = index.covered()
        located = index.locate(wanted)
    except sqlite3.Error as error:
        log.warning("%s: the index is unusable (%s); searching the log files", directory, error)
        return _scanned_hits(files, ids, {})
    finally:
        index.close()
    hits = _batch_hits(files, located, wanted)
    missing = ids - hits.keys()
    if missing:  # batches written since the index was last brought up to date
        hits.update(_scanned_hits(files, missing, covered))
    return hits


def _batch_hits(
    files: dict[str, Path],
    located: dict[tuple[str, int], tuple[str, int, int]],
    wanted: dict[tuple[str, int], str],
) -> dict[str, np.ndarray]:
    """Read each located batch's lines and keep the records whose prediction id is wanted."""
    by_batch: dict[tuple[str, int, int], set[str]] = {}
    for key, place in located.items():
        by_batch.setdefault(place, set()).add(wanted[key])
    hits: dict[str, np.ndarray] = {}
    with contextlib.ExitStack() as stack:
        handles: dict[str, io.BufferedReader] = {}
        for (name, offset, rows), pids in sorted(by_batch.items()):
            if name not in files:
                continue  # deleted by retention since
            try:
                if name not in handles:
                    handles[name] = stack.enter_context(files[name].open("rb"))
                handle = handles[name]
                handle.seek(offset)
                for _ in range(rows):
                    line = handle.readline()
                    if not line.endswith(b"\n"):
                        break
                    for pid in [p for p in pids if _needle(p) in line]:
                        if (features := _record_features(line, pid)) is not None:
                            hits[pid] = features
                            pids.discard(pid)
                    if not pids:
                        break
            except OSError as error:
                log.warning("%s: skipped while looking up predictions (%s)", files[name], error)
    return hits


def _needle(pid: str) -> bytes:
    return b'"prediction_id":' + json.dumps(pid).encode()


def _record_features(line: bytes, pid: str) -> np.ndarray | None:
    """The features of a log line if it is the record of `pid` (else None)."""
    with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
        record = json.loads(line)
        if record.get("prediction_id") == pid:
            return np.array([record[n] for n in FEATURES], np.int8)
    return None


def _newest_first(paths: list[Path]) -> list[Path]:
    stamped = []
    for path in paths:
        with contextlib.suppress(OSError):  # rotated away meanwhile
            stamped.append((path.stat().st_mtime_ns, str(path), path))
    return [path for *_, path in sorted(stamped, reverse=True)]


def _scanned_hits(
    files: dict[str, Path], ids: set[str], covered: dict[str, int]
) -> dict[str, np.ndarray]:
    """Search the bytes of each file from where the index stops covering it (all of a file
    without an index), newest first."""
    hits: dict[str, np.ndarray] = {}
    remaining = set(ids)
    by_path = {path: name for name, path in files.items()}
    for path in _newest_first(list(files.values())):
        if not remaining:
            break
        start = covered.get(by_path[path], 0)
        try:
            if path.stat().st_size <= start:
                continue  # all indexed
            found = _jsonl_hits(path, remaining, start)
        except (OSError, ValueError) as error:
            log.warning("%s: skipped while looking up predictions (%s)", path, error)
            continue
        hits.update(found)
        remaining.difference_update(found)
    return hits


def _jsonl_hits(path: Path, ids: set[str], start: int = 0) -> dict[str, np.ndarray]:
    hits: dict[str, np.ndarray] = {}
    with path.open("rb") as handle:
        if os.fstat(handle.fileno()).st_size <= start:
            return hits
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            for wanted in ids:
                needle = _needle(wanted)
                at = data.find(needle, start)
                while at >= 0:
                    end = data.find(b"\n", at)
                    if end < 0:  # the last line, still being written
                        break
                    line = data[data.rfind(b"\n", 0, at) + 1 : end]
                    if (features := _record_features(line, wanted)) is not None:
                        hits[wanted] = features
                        break
                    at = data.find(needle, end)
    return hits


def _parquet_hits(path: Path, ids: set[str]) -> dict[str, np.ndarray]:
    table = pq.read_table(
        path, columns=["prediction_id", *FEATURES], filters=[("prediction_id", "in", list(ids))]
    )
    matrix = np.column_stack([table[name].to_numpy() for name in FEATURES]).astype(np.int8)
    return dict(zip(table["prediction_id"].to_pylist(), matrix, strict=True))
