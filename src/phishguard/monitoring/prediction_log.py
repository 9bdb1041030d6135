"""The prediction log: every scored record, appended to files (`PredictionLog.record`).

The service and the batch CLI call `PredictionLog.record` once per scored batch; it never
raises. Each process appends to files of its own and period
(`predictions-<UTC period>-<host>-<pid>-<token>.<jsonl|parquet>`), so several workers, or
several machines sharing the directory, never write to the same file. A full queue or an
unwritable directory drops the batch: one warning per cause, and a counter (`dropped`, also
pushed to `on_drop` at once, for /metrics).

Two formats, the same columns. The service writes JSONL, synchronously (`sync=True`): when
`record` returns, the batch's lines have been handed to the operating system (`write`
returned), so a response sent after it survives a crash of the process (kill -9). The writes
of concurrent callers are grouped: the first caller to take the write lock writes every batch
queued by then (group commit), and the others find theirs written. The files are fsynced every
`log_writer.FSYNC_SECONDS` from a background thread, so a machine crash (power loss) loses at most the
records of the last second plus the disk's own cache. The JSONL files are indexed
(`monitoring.log_index`) for `POST /feedback`; their writes end on whole records even on a
full disk (`monitoring.log_files`); retention and a size cap delete whole old segments.

A batch run (`phishguard predict`) writes Parquet in the background (`sync=False`): a row
group per write into a hidden `.part` file, renamed into place when the run closes the log.

The records are flat: time (UTC, ISO 8601), request_id, prediction_id (`<request_id>-<index>`:
the index in the request, or the batch CLI's input row; what `POST /feedback` takes), source
(api|csv|batch), model_version, model_sha256, the 30 features, probability, decision and
threshold; and `caller` (the API key's name) when the service knows who called. They are
formatted in `monitoring.log_records` and read back by `monitoring.log_reader`.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from phishguard import paths
from phishguard.contract.schema import FEATURES
from phishguard.io import remove_stale_parts
from phishguard.monitoring.log_files import Retention
from phishguard.monitoring.log_records import FORMATS, LoggedBatch
from phishguard.monitoring.log_writer import PERIOD_FORMATS, SegmentWriter

log = logging.getLogger(__name__)

LOG_ENV = "PHISHGUARD_PREDICTION_LOG"
DISABLED = "off"
SOURCES = ("api", "csv", "batch")
FLUSH_SECONDS = 0.5
"""How long the background writer (`sync=False`) gathers queued records before one write."""
INDEX_SECONDS = 0.2
"""How often written batches are added to the index (one transaction for all of them: a
commit per request would cost more than the write); a lookup reads the rest from the log."""

Source = Literal["api", "csv", "batch"]
Period = Literal["day", "hour"]
Format = Literal["jsonl", "parquet"]


class PredictionLog:
    """Append scored records to `directory` (`None`: disabled).

    `sync` (default: for JSONL) writes each batch before `record` returns; otherwise a thread
    writes it within `FLUSH_SECONDS`. `max_pending_rows` bounds the records queued and not yet
    written; a batch that would exceed it is dropped. `close()` (also run at exit) writes what
    is queued. Threads start at the first record, in the process that records (so an instance
    made before a fork still writes from each worker, to that worker's own file).
    """

    def __init__(
        self,
        directory: Path | None,
        *,
        max_pending_rows: int = 100_000,
        period: Period = "day",
        format: Format = "jsonl",
        sync: bool | None = None,
        retention: Retention | None = None,
    ) -> None:
        if period not in PERIOD_FORMATS:
            raise ValueError(f"period must be one of {', '.join(PERIOD_FORMATS)}, got {period!r}")
        if format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
        self.directory = directory
        self.format = format
        self.sync = format == "jsonl" if sync is None else sync
        self.max_pending_rows = max_pending_rows
        self.period = period
        self.retention = Retention() if retention is None else retention
        self.on_drop: Callable[[dict[str, int]], None] | None = None
        self._dropped: Counter[str] = Counter()
        self._written = 0
        self._closed = False
        self._reset()
        if directory is not None:
            atexit.register(self.close)
            os.register_at_fork(after_in_child=self._reset_after_fork)

    def _reset(self) -> None:
        self._lock = threading.Condition()
        self._flushed = threading.Condition(self._lock)  # flush() waits here, not the writer
        self._write_lock = threading.Lock()  # one writer at a time: the group's leader
        self._queue: deque[LoggedBatch] = deque()
        self._pending_rows = self._queued = self._taken = 0
        self._flush_now = False
        self._thread: threading.Thread | None = None
        self._writer = SegmentWriter(
            self.directory, self.format, self.period, self.retention, self._drop
        )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        default: Path = paths.PREDICTION_LOG_DIR,
        **options: object,
    ) -> PredictionLog:
        """The log named by $PHISHGUARD_PREDICTION_LOG (a directory; `off` disables it),
        else `default`, kept as $PHISHGUARD_PREDICTION_LOG_RETENTION_DAYS and _MAX_BYTES say."""
        environ = os.environ if environ is None else environ
        value = environ.get(LOG_ENV, "").strip()
        options.setdefault("retention", Retention.from_env(environ))  # type: ignore[arg-type]
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
        """Log one scored batch (the 30 features in canonical order, one probability per row).
        Row i is prediction `<request_id>-<indexes[i]>` (default: `<request_id>-<i>`), scored
        for `caller` (an API key's name) if given. True when written (`sync`) or queued; False
        when disabled or dropped. Never raises on a logging problem."""
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
            self._start_threads_if_needed()
            if self._closed:
                cause = "closed"
            elif self._pending_rows + rows > self.max_pending_rows:
                cause = "queue_full"
            else:
                self._queue.append(batch)
                self._pending_rows += rows
                self._queued += 1
                ticket = self._queued
                # Wake the background writer for the first batch of a flush and when the
                # queue fills up; it gathers the rest itself.
                if not self.sync and (
                    len(self._queue) == 1 or self._pending_rows >= self.max_pending_rows // 2
                ):
                    self._lock.notify()
                cause = ""
        if cause:
            self._drop(cause, rows, f"{self.max_pending_rows} records already waiting")
            return False
        if self.sync:
            self._write_queued(until=ticket)
        return True

    def flush(self, timeout_s: float = 5.0) -> None:
        """Write what is queued now, waiting up to `timeout_s` (a reader that needs this
        process's latest records; with `sync` they are written already)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            if self._thread is None or not self._pending_rows:
                return
            self._flush_now = True
            self._lock.notify()
            while self._pending_rows and (remaining := deadline - time.monotonic()) > 0:
                self._flushed.wait(remaining)

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is queued, then stop the threads. Idempotent."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
            thread = self._thread
        if thread is not None and thread.ident is not None:
            thread.join(timeout_s)
        self._write_queued()
        with self._write_lock:
            self._writer.close()
        if self.format == "parquet" and self.directory is not None and self._written:
            remove_stale_parts(self.directory, ".predictions-*.parquet.part")

    def _reset_after_fork(self) -> None:
        """In a forked child: the parent's threads, queue, file and locks (which the parent's
        writer may have held at the fork) are not ours; start afresh, with our own file."""
        self._writer.abandon()  # the parent's open file: never finish it from here
        self._reset()

    def _start_threads_if_needed(self) -> None:
        """Called with the lock held: the background writer (`sync=False`) or the fsync and
        retention thread (`sync=True`)."""
        if self._thread is None and not self._closed:
            target = self._sync_forever if self.sync else self._write_forever
            self._thread = threading.Thread(target=target, name="prediction-log", daemon=True)
            self._thread.start()

    def _write_forever(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._lock.wait()
                # Gather for up to FLUSH_SECONDS: one write for many batches.
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
                if not self._queue and self._closed:
                    return
                self._flush_now = False
            self._write_queued()

    def _sync_forever(self) -> None:
        while True:
            with self._lock:
                if not self._closed:
                    self._lock.wait(INDEX_SECONDS)
                if self._closed:
                    return
            self._writer.maintain(self._write_lock)

    def _write_queued(self, until: int | None = None) -> None:
        """Write every queued batch (as the leader of a group), unless batch number `until`
        was written meanwhile by another caller's group."""
        with self._write_lock:
            with self._lock:
                if (until is not None and self._taken >= until) or not self._queue:
                    return
                batches = list(self._queue)
                self._queue.clear()
                self._taken = self._queued
            rows = sum(len(b.probabilities) for b in batches)
            try:
                written = self._writer.write(batches)
                with self._lock:
                    self._written += written
            except Exception as error:  # the log must outlive any one bad batch
                self._drop("write_error", rows, str(error))
            finally:
                with self._lock:
                    self._pending_rows -= rows
                    self._flushed.notify_all()
        if not self.sync:
            self._writer.flush_index()

    def _drop(self, cause: str, rows: int, detail: str) -> None:
        with self._lock:
            first = self._dropped[cause] == 0
            self._dropped[cause] += rows
            counts = dict(self._dropped)
        if self.on_drop is not None:
            with contextlib.suppress(Exception):
                self.on_drop(counts)
        if first:  # one warning per cause; the counter keeps the total
            log.warning(
                "prediction log (%s): %s; records are being dropped (%s)",
                self.directory,
                cause.replace("_", " "),
                detail,
            )
