"""The files one process writes the prediction log to (`SegmentWriter`, used by
`monitoring.prediction_log.PredictionLog` under its write lock): it opens the period's file,
appends whole records (`log_files.JsonlSegment`) or row groups (`log_files.ParquetPart`),
starts a new segment at its size limit or after a write it could not cut back, queues each
write's index rows and adds them to the index in one transaction (`flush_index`), fsyncs, and
deletes the segments past the retention or the cap.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from phishguard.monitoring.log_files import (
    JsonlSegment,
    ParquetPart,
    Retention,
    enforce_retention,
)
from phishguard.monitoring.log_index import WRITER_BUSY_MS, Entry, LogIndex
from phishguard.monitoring.log_records import LoggedBatch, records_jsonl, records_table

log = logging.getLogger(__name__)

PERIOD_FORMATS = {"day": "%Y%m%d", "hour": "%Y%m%dT%H"}
FSYNC_SECONDS = 1.0
"""How often the open JSONL segment is fsynced."""
RETENTION_SECONDS = 60.0
"""How often retention and the size cap are checked (and whenever a segment is opened)."""


class SegmentWriter:
    """This process's log files in `directory`, in `format` (`jsonl` or `parquet`), one per
    `period`; `drop(cause, rows, detail)` hears of every record that could not be kept."""

    def __init__(
        self,
        directory: Path | None,
        format: str,
        period: str,
        retention: Retention,
        drop: Callable[[str, int, str], None],
    ) -> None:
        self.directory, self.format, self.period = directory, format, period
        self.retention = retention
        self.drop = drop
        self._pid, self.token = os.getpid(), secrets.token_hex(3)
        self.handle: JsonlSegment | ParquetPart | None = None
        self.handle_path: Path | None = None
        self.index: LogIndex | None = None
        self.index_lock = threading.Lock()
        self.unindexed_lock = threading.Lock()
        self.unindexed: list[tuple[str, list[Entry], int]] = []  # written, not yet indexed
        self.next_retention = self.next_fsync = 0.0
        self.names: tuple[str, Path] | None = None  # the last period stamp and its file

    def abandon(self) -> None:
        """In a forked child: never finish the parent's Parquet file from here."""
        if isinstance(self.handle, ParquetPart):
            self.handle.abandon()

    def maintain(self, write_lock: threading.Lock) -> None:
        """The background thread's round: index what was written, fsync once a second,
        check retention once a minute (under `write_lock`, as writes are)."""
        self.flush_index()
        handle = self.handle
        if isinstance(handle, JsonlSegment) and time.monotonic() >= self.next_fsync:
            self.next_fsync = time.monotonic() + FSYNC_SECONDS
            handle.sync()
        if time.monotonic() >= self.next_retention:
            with write_lock:
                self.enforce_retention()

    def close(self) -> None:
        """Close the open file (fsynced) and the index, indexing what is still queued."""
        self.close_handle()
        self.flush_index()
        with self.index_lock:
            if self.index is not None:
                self.index.close()
                self.index = None

    def write(self, batches: list[LoggedBatch]) -> int:
        """Write the batches, each to its period's file; the records written (the others
        are reported to `drop`)."""
        written = 0
        by_file: dict[Path, list[LoggedBatch]] = {}
        for batch in batches:
            by_file.setdefault(self._file_for(batch.time), []).append(batch)
        for path, group in by_file.items():
            rows = sum(len(b.probabilities) for b in group)
            try:
                handle = self._open(path)
            except OSError as error:
                self.drop("write_error", rows, f"{path}: {error.strerror or error}")
                continue
            if isinstance(handle, ParquetPart):
                try:
                    handle.write(records_table(group))
                except (OSError, pa.ArrowException) as error:
                    self.close_handle()
                    self.drop("write_error", rows, f"{path}: {error}")
                    continue
                kept = rows
            else:
                kept = self._append(handle, group)
            written += kept
        return written

    def _append(self, segment: JsonlSegment, group: list[LoggedBatch]) -> int:
        """Append a group to a JSONL segment and index it; the records kept."""
        data, row_ends = records_jsonl(group)
        start = segment.size
        kept, error = segment.append(data, row_ends)
        firsts = np.cumsum([0] + [len(b.probabilities) for b in group[:-1]])
        entries = [
            Entry(
                b.request_id,
                0 if b.indexes is None else int(b.indexes[0]),
                len(b.probabilities) - 1 if b.indexes is None else int(b.indexes.max()),
                len(b.probabilities),
                start + (int(row_ends[first - 1]) if first else 0),
            )
            for b, first in zip(group, firsts.tolist(), strict=True)
            if first < kept
        ]
        with self.unindexed_lock:
            self.unindexed.append((segment.path.name, entries, segment.size))
        if error is not None:
            self.drop("write_error", len(row_ends) - kept, f"{segment.path}: {error.strerror}")
            if segment.broken:
                self.close_handle()
                self.token = secrets.token_hex(3)
        if segment.size >= self.retention.segment_bytes:
            self.close_handle()
            self.token = secrets.token_hex(3)  # the next write starts a new segment
        return kept

    def flush_index(self, forget: list[str] | None = None) -> None:
        """Add the batches written since the last call to the index, and `forget` the
        entries of deleted files. A failure (busy or full disk) loses nothing: a lookup reads
        what the index does not cover from the log."""
        with self.unindexed_lock:
            writes, self.unindexed = self.unindexed, []
        if (not writes and not forget) or self.directory is None:
            return
        with self.index_lock, contextlib.suppress(sqlite3.Error, OSError):
            if self.index is None:
                self.index = LogIndex(self.directory, WRITER_BUSY_MS)
            if forget:
                self.index.forget(forget)
            self.index.add(writes)

    def _file_for(self, time: datetime) -> Path:
        assert self.directory is not None
        key = f"{time.date()}{time.hour if self.period == 'hour' else ''}{self.token}"
        if self.names is None or self.names[0] != key:  # strftime costs ~0.1 ms
            stamp = time.strftime(PERIOD_FORMATS[self.period])
            host = socket.gethostname().replace("-", "_") or "host"
            name = f"predictions-{stamp}-{host}-{self._pid}-{self.token}.{self.format}"
            self.names = (key, self.directory / name)
        return self.names[1]

    def _open(self, path: Path) -> JsonlSegment | ParquetPart:
        if self.handle_path != path or self.handle is None:
            self.close_handle()
            path.parent.mkdir(parents=True, exist_ok=True)
            self.handle = ParquetPart(path) if self.format == "parquet" else JsonlSegment(path)
            self.handle_path = path
            self.enforce_retention()
        return self.handle

    def enforce_retention(self) -> None:
        """Delete the segments past retention or the cap (with the writer's lock held)."""
        self.next_retention = time.monotonic() + RETENTION_SECONDS
        if self.directory is None or not self.directory.is_dir():
            return
        keep = {self.handle_path} if self.handle_path else set()
        deleted = enforce_retention(self.directory, self.retention, keep)  # type: ignore[arg-type]
        if deleted and self.format == "jsonl":
            self.flush_index(forget=[str(p.relative_to(self.directory)) for p in deleted])
            log.info("prediction log: deleted %d old segment(s) (retention/size cap)", len(deleted))

    def close_handle(self) -> None:
        if self.handle is not None:
            if isinstance(self.handle, JsonlSegment):
                self.handle.sync()
            with contextlib.suppress(OSError, pa.ArrowException):
                self.handle.close()
        self.handle, self.handle_path = None, None
