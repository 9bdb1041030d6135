"""The prediction log: every scored record, appended to files by a background thread.

The service and the batch CLI call `PredictionLog.record` once per scored batch; it only puts
the batch on a bounded queue, so logging never slows a request by more than a copy and never
raises. A writer thread appends the records to one file per process and period
(`predictions-<UTC period>-<host>-<pid>-<token>.<jsonl|parquet>`), so several workers, or
several machines sharing the directory, never write to the same file. A full queue or an
unwritable directory drops the batch: one warning per cause, and a counter (`dropped`) for
/metrics.

Two formats, the same columns. The service writes JSONL: one JSON object per line, readable
line by line as soon as it is written (a verdict can name a prediction made a second ago). A
batch run (`phishguard predict`) writes Parquet: a row group per write into a hidden `.part`
file, renamed into place when the run closes the log; about 20 bytes a row instead of ~830,
which on this machine's disk cuts the log's cost from about half the model's to a fifth.

The records are flat, so any records reader sees the 30 features as columns: time (UTC, ISO
8601), request_id, prediction_id (`<request_id>-<index>`: the index in the request, or the
batch CLI's input row; what `POST /feedback` takes to refer to a prediction), source
(api|csv|batch), model_version, model_sha256, the 30 features, probability, decision (the
class name at the threshold) and threshold; and `caller` (the API key's name) when the
service knows who called.

The records are formatted in `monitoring.log_records` and read back by `monitoring.log_reader`.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from phishguard import paths
from phishguard.contract.schema import FEATURES
from phishguard.monitoring.log_records import (
    FORMATS,
    PARQUET_SCHEMA,
    LoggedBatch,
    records_jsonl,
    records_table,
)

log = logging.getLogger(__name__)

LOG_ENV = "PHISHGUARD_PREDICTION_LOG"
DISABLED = "off"
SOURCES = ("api", "csv", "batch")
PERIOD_FORMATS = {"day": "%Y%m%d", "hour": "%Y%m%dT%H"}
FLUSH_SECONDS = 0.5
"""How long the writer gathers queued records before one write (close() writes at once)."""

Source = Literal["api", "csv", "batch"]
Period = Literal["day", "hour"]
Format = Literal["jsonl", "parquet"]


class PredictionLog:
    """Append scored records to `directory` from a background thread (`None`: disabled).

    `max_pending_rows` bounds the records queued and not yet written; a batch that would
    exceed it is dropped. `close()` (also run at exit) writes what is queued and stops the
    thread. The thread starts at the first record, in the process that records (so an instance
    made before a fork still writes from each worker, to that worker's own file).
    """

    def __init__(
        self,
        directory: Path | None,
        *,
        max_pending_rows: int = 100_000,
        period: Period = "day",
        format: Format = "jsonl",
    ) -> None:
        if period not in PERIOD_FORMATS:
            raise ValueError(f"period must be one of {', '.join(PERIOD_FORMATS)}, got {period!r}")
        if format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
        self.directory = directory
        self.format = format
        self.max_pending_rows = max_pending_rows
        self.period = period
        self._lock = threading.Condition()
        self._flushed = threading.Condition(self._lock)  # flush() waits here, not the writer
        self._queue: deque[LoggedBatch] = deque()
        self._pending_rows = 0
        self._dropped: Counter[str] = Counter()
        self._written = 0
        self._closed = False
        self._flush_now = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._token = secrets.token_hex(3)
        self._handle: IO[bytes] | _ParquetPart | None = None
        self._handle_path: Path | None = None
        if directory is not None:
            atexit.register(self.close)
            os.register_at_fork(after_in_child=self._reset_after_fork)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        default: Path = paths.PREDICTION_LOG_DIR,
        **options: object,
    ) -> PredictionLog:
        """The log named by $PHISHGUARD_PREDICTION_LOG (a directory; `off` disables it),
        else `default`."""
        value = (os.environ if environ is None else environ).get(LOG_ENV, "").strip()
        if value.lower() == DISABLED:
            return cls(None, **options)  # type: ignore[arg-type]
        return cls(Path(value) if value else default, **options)  # type: ignore[arg-type]

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    @property
    def dropped(self) -> dict[str, int]:
        """Records not logged, by cause: `queue_full`, `write_error`, `closed`."""
        with self._lock:
            return dict(self._dropped)

    @property
    def written(self) -> int:
        """Records written so far."""
        with self._lock:
            return self._written

    def record(
        self,
        features: np.ndarray | pd.DataFrame,
        probabilities: np.ndarray,
        threshold: float,
        *,
        source: Source,
        request_id: str,
        model_version: str,
        model_sha256: str,
        indexes: np.ndarray | None = None,
        caller: str | None = None,
    ) -> bool:
        """Queue one scored batch (the 30 features in canonical order, one probability per row).
        Row i is prediction `<request_id>-<indexes[i]>` (default: `<request_id>-<i>`), scored
        for `caller` (an API key's name) if given. True when queued; False when disabled or
        dropped. Never raises on a logging problem."""
        if self.directory is None:
            return False
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        matrix = features.loc[:, list(FEATURES)] if isinstance(features, pd.DataFrame) else features
        batch = LoggedBatch(
            time=datetime.now(UTC),
            request_id=request_id,
            source=source,
            model_version=model_version,
            model_sha256=model_sha256,
            # Copies: the caller may reuse its buffers once we return.
            features=np.array(matrix, dtype=np.int8),
            probabilities=np.array(probabilities),  # the model's float32, or float64
            threshold=float(threshold),
            indexes=None if indexes is None else np.array(indexes, dtype=np.int64),
            caller=caller,
        )
        rows = len(batch.probabilities)
        with self._lock:
            self._start_writer_if_needed()
            if self._closed:
                cause = "closed"
            elif self._pending_rows + rows > self.max_pending_rows:
                cause = "queue_full"
            else:
                self._queue.append(batch)
                self._pending_rows += rows
                # Wake the writer for the first batch of a flush and when the queue fills up;
                # it gathers the rest itself (a wake-up per request would cost a context
                # switch per request).
                if len(self._queue) == 1 or self._pending_rows >= self.max_pending_rows // 2:
                    self._lock.notify()
                return True
        self._drop(cause, rows, f"{self.max_pending_rows} records already waiting")
        return False

    def flush(self, timeout_s: float = 5.0) -> None:
        """Write what is queued now, waiting up to `timeout_s` (for a reader that needs this
        process's latest records: `POST /feedback` naming a prediction just made)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            if self._thread is None or not self._pending_rows:
                return
            self._flush_now = True
            self._lock.notify()
            while self._pending_rows and (remaining := deadline - time.monotonic()) > 0:
                self._flushed.wait(remaining)

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is queued, then stop the writer thread. Idempotent."""
        with self._lock:
            self._closed = True
            self._lock.notify()
            thread = self._thread
        if thread is not None and thread.ident is not None:
            thread.join(timeout_s)
        self._close_handle()

    def _reset_after_fork(self) -> None:
        """In a forked child: the parent's thread, queue, file and lock (which the parent's
        writer may have held at the fork) are not ours; start afresh, with our own file."""
        self._lock = threading.Condition()
        self._flushed = threading.Condition(self._lock)
        self._queue = deque()
        self._pending_rows, self._thread, self._flush_now = 0, None, False
        if isinstance(self._handle, _ParquetPart):
            self._handle.abandon()  # the parent's open file: never finish it from here
        self._handle, self._handle_path = None, None
        self._pid, self._token = os.getpid(), secrets.token_hex(3)

    def _start_writer_if_needed(self) -> None:
        """Called with the lock held."""
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(
                target=self._write_forever, name="prediction-log", daemon=True
            )
            self._thread.start()

    def _write_forever(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._lock.wait()
                # Gather for up to FLUSH_SECONDS: one write (one JSON text) for many requests,
                # not one per request, which on a busy worker cost as much as scoring.
                deadline = time.monotonic() + FLUSH_SECONDS
                while (
                    not self._closed
                    and not self._flush_now
                    and self._pending_rows < self.max_pending_rows // 2
                ):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._lock.wait(remaining)
                if not self._queue:
                    return
                batches = list(self._queue)
                self._queue.clear()
                self._flush_now = False
            try:
                self._write(batches)
            except Exception as error:  # the thread must outlive any one bad batch
                self._drop("write_error", sum(len(b.probabilities) for b in batches), str(error))
            finally:
                with self._lock:
                    self._pending_rows -= sum(len(b.probabilities) for b in batches)
                    self._flushed.notify_all()

    def _write(self, batches: list[LoggedBatch]) -> None:
        by_file: dict[Path, list[LoggedBatch]] = {}
        for batch in batches:
            by_file.setdefault(self._file_for(batch.time), []).append(batch)
        for path, group in by_file.items():
            rows = sum(len(b.probabilities) for b in group)
            records = records_table(group) if self.format == "parquet" else records_jsonl(group)
            try:
                handle = self._open(path)
                handle.write(records)  # type: ignore[arg-type]
                handle.flush()
            except OSError as error:
                self._close_handle()
                self._drop("write_error", rows, f"{path}: {error.strerror or error}")
                continue
            with self._lock:
                self._written += rows

    def _file_for(self, time: datetime) -> Path:
        assert self.directory is not None
        stamp = time.strftime(PERIOD_FORMATS[self.period])
        host = socket.gethostname().replace("-", "_") or "host"
        name = f"predictions-{stamp}-{host}-{self._pid}-{self._token}.{self.format}"
        return self.directory / name

    def _open(self, path: Path) -> IO[bytes] | _ParquetPart:
        if self._handle_path != path or self._handle is None:
            self._close_handle()
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = _ParquetPart(path) if self.format == "parquet" else path.open("ab")
            self._handle_path = path
        return self._handle

    def _close_handle(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError, pa.ArrowException):
                self._handle.close()
        self._handle, self._handle_path = None, None

    def _drop(self, cause: str, rows: int, detail: str) -> None:
        with self._lock:
            first = self._dropped[cause] == 0
            self._dropped[cause] += rows
        if first:  # one warning per cause; the counter keeps the total
            log.warning(
                "prediction log (%s): %s; records are being dropped (%s)",
                self.directory,
                cause.replace("_", " "),
                detail,
            )


class _ParquetPart:
    """A Parquet log file being written: row groups go to a hidden `.part` file, renamed to
    its name when closed, so a reader never meets a file without its footer (a run that dies
    leaves only the hidden part, which `read_log` does not read)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.part = path.with_name(f".{path.name}.part")
        self.file = self.part.open("wb")
        self.writer = pq.ParquetWriter(self.file, PARQUET_SCHEMA)

    def abandon(self) -> None:
        """In a forked child: point this process's copy of the file descriptor at /dev/null,
        so that nothing the child does with the inherited writer (its footer, written when the
        object is freed or the child exits) lands in the parent's file."""
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, self.file.fileno())
        finally:
            os.close(null)

    def write(self, table: pa.Table) -> None:
        self.writer.write_table(table)

    def flush(self) -> None:
        """Nothing: a Parquet file is readable once closed."""

    def close(self) -> None:
        self.writer.close()
        self.file.close()
        self.part.replace(self.path)
