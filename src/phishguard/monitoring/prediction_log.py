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
which on this machine's disk is the difference between the log costing half the model and a
tenth of it.

The records are flat, so any records reader sees the 30 features as columns: time (UTC, ISO
8601), request_id, prediction_id (`<request_id>-<index>`: the index in the request, or the
batch CLI's input row; what `POST /feedback` takes to refer to a prediction), source
(api|csv|batch), model_version, model_sha256, the 30 features, probability, decision (the
class name at the threshold) and threshold; and `caller` (the API key's name) when the
service knows who called.

`read_log` loads a log directory (both formats) or any records file the pipeline reads into a
DataFrame; `logged_features` finds given predictions without loading it (`POST /feedback`).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import itertools
import json
import logging
import mmap
import os
import secrets
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import IO, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from phishguard import DataSourceError, paths
from phishguard.contract.schema import CLASS_NAMES, FEATURES
from phishguard.data.sources import is_url, read_table

log = logging.getLogger(__name__)

LOG_ENV = "PHISHGUARD_PREDICTION_LOG"
DISABLED = "off"
FORMATS = ("jsonl", "parquet")
FILE_PATTERNS = tuple(f"predictions-*.{suffix}" for suffix in FORMATS)
SOURCES = ("api", "csv", "batch")
PERIOD_FORMATS = {"day": "%Y%m%d", "hour": "%Y%m%dT%H"}
FLUSH_SECONDS = 0.5
"""How long the writer gathers queued records before one write (close() writes at once)."""

Source = Literal["api", "csv", "batch"]
Period = Literal["day", "hour"]
Format = Literal["jsonl", "parquet"]


@dataclass(frozen=True)
class _Batch:
    time: datetime
    request_id: str
    source: str
    model_version: str
    model_sha256: str
    features: np.ndarray
    probabilities: np.ndarray
    threshold: float
    indexes: np.ndarray | None = None
    caller: str | None = None


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
        self._queue: deque[_Batch] = deque()
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
        batch = _Batch(
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

    def _write(self, batches: list[_Batch]) -> None:
        by_file: dict[Path, list[_Batch]] = {}
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
        self.writer = pq.ParquetWriter(self.part, PARQUET_SCHEMA)

    def write(self, table: pa.Table) -> None:
        self.writer.write_table(table)

    def flush(self) -> None:
        """Nothing: a Parquet file is readable once closed."""

    def close(self) -> None:
        self.writer.close()
        self.part.replace(self.path)


PARQUET_SCHEMA = pa.schema(
    [
        *((name, pa.string()) for name in ("time", "request_id", "prediction_id", "source")),
        ("model_version", pa.string()),
        ("model_sha256", pa.string()),
        *((name, pa.int8()) for name in FEATURES),
        ("probability", pa.float64()),
        ("decision", pa.string()),
        ("threshold", pa.float64()),
        ("caller", pa.string()),
    ]
)
"""The Parquet log's columns: those of a JSONL record, `caller` null when not known."""


def records_table(batches: list[_Batch]) -> pa.Table:
    """The batches' records as an Arrow table of `PARQUET_SCHEMA` (no per-row Python)."""
    counts = [len(batch.probabilities) for batch in batches]
    at = pa.array(np.repeat(np.arange(len(batches)), counts))

    def per_batch(values: list[str | None]) -> pa.Array:
        return pa.array(values, pa.string()).take(at)

    indexes = np.concatenate(
        [
            np.arange(count) if batch.indexes is None else batch.indexes
            for batch, count in zip(batches, counts, strict=True)
        ]
    )
    features = np.concatenate([batch.features for batch in batches])
    probabilities = np.concatenate([batch.probabilities for batch in batches]).astype(np.float64)
    thresholds = np.repeat(np.array([batch.threshold for batch in batches]), counts)
    prefix = per_batch([f"{batch.request_id}-" for batch in batches])
    numbers = pa.array(indexes.astype(np.int64).astype("S20"), pa.binary()).cast(pa.string())
    columns = {
        "time": per_batch([_utc_text(batch.time) for batch in batches]),
        "request_id": per_batch([batch.request_id for batch in batches]),
        "prediction_id": pc.binary_join_element_wise(prefix, numbers, ""),
        "source": per_batch([batch.source for batch in batches]),
        "model_version": per_batch([batch.model_version for batch in batches]),
        "model_sha256": per_batch([batch.model_sha256 for batch in batches]),
        **{name: pa.array(features[:, j]) for j, name in enumerate(FEATURES)},
        "probability": pa.array(probabilities),
        "decision": _DECISION_NAMES.take(pa.array((probabilities >= thresholds).view(np.int8))),
        "threshold": pa.array(thresholds),
        "caller": per_batch([batch.caller for batch in batches]),
    }
    return pa.table(columns, schema=PARQUET_SCHEMA)


def records_jsonl(batches: list[_Batch]) -> memoryview:
    """The JSONL bytes of the batches' records, one object per scored row.

    Built column by column with Arrow, not row by row: each row is the element-wise join of a
    few byte columns (the per-batch text, the prediction index, the features taken from
    precomputed texts of `_GROUP` features at a time, the probability, the decision), and the
    joined column's data buffer is the file's text. About 1 µs a row, against 11 µs for a
    DataFrame's `to_json`, which made the log cost more than the model. Probabilities are
    written as the shortest text that reads back to the same float (the model's float32).
    """
    counts = [len(batch.probabilities) for batch in batches]
    single = len(batches) == 1

    def per_batch(texts: list[str]) -> pa.Scalar | pa.Array:
        """One text per batch, repeated over its rows (a scalar for one batch)."""
        if single:
            return pa.scalar(texts[0].encode(), pa.binary())
        return pa.array(texts, pa.binary()).take(np.repeat(np.arange(len(texts)), counts))

    def concat(arrays: list[np.ndarray]) -> np.ndarray:
        return arrays[0] if single else np.concatenate(arrays)

    probabilities = concat([batch.probabilities for batch in batches])
    thresholds = np.repeat(np.array([batch.threshold for batch in batches]), counts)
    features = concat([batch.features for batch in batches])
    if ((features < -1) | (features > 1)).any():  # scored rows are valid; never mis-write one
        raise ValueError("a feature value outside {-1, 0, 1}")
    indexes = concat(
        [
            np.arange(count) if batch.indexes is None else batch.indexes
            for batch, count in zip(batches, counts, strict=True)
        ]
    )
    parts: list[pa.Scalar | pa.Array] = [
        per_batch(
            [
                f'{{"time":"{_utc_text(batch.time)}","request_id":{_json(batch.request_id)},'
                f'"prediction_id":{_json(batch.request_id)[:-1]}-'
                for batch in batches
            ]
        ),
        pa.array(indexes.astype(np.int64).astype("S20"), pa.binary()),
        per_batch(
            [
                f'","source":{_json(batch.source)},"model_version":{_json(batch.model_version)},'
                f'"model_sha256":{_json(batch.model_sha256)}'
                for batch in batches
            ]
        ),
    ]
    for columns, texts in _feature_texts():
        codes = np.zeros(len(features), dtype=np.int64)
        for column in columns:  # the group's values as one base-3 number
            codes *= 3
            codes += features[:, column] + 1
        parts.append(texts.take(codes))
    parts.append(pa.scalar(b',"probability":'))
    parts.append(pa.array(probabilities.astype("S32"), pa.binary()))
    parts.append(_DECISIONS.take((probabilities >= thresholds).view(np.int8)))
    tail = [repr(batch.threshold) for batch in batches]
    if any(batch.caller is not None for batch in batches):
        tail = [f'{t},"caller":{_json(b.caller)}' for t, b in zip(tail, batches, strict=True)]
    parts.append(per_batch([f"{t}}}\n" for t in tail]))
    joined = pc.binary_join_element_wise(*parts, pa.scalar(b""))
    if not len(joined):
        return memoryview(b"")
    end = int(np.frombuffer(joined.buffers()[1], np.int32, 1, 4 * len(joined))[0])
    return memoryview(joined.buffers()[2])[:end]


_GROUP = 6
"""Features formatted together: 3**6 = 729 precomputed texts per group of six."""
_DECISION_NAMES = pa.array([CLASS_NAMES[0], CLASS_NAMES[1]], pa.string())
_DECISIONS = pa.array(
    [f',"decision":"{CLASS_NAMES[flag]}","threshold":'.encode() for flag in (0, 1)], pa.binary()
)


@cache
def _feature_texts() -> list[tuple[list[int], pa.Array]]:
    """Per group of `_GROUP` features: their positions, and the text `,"name":value` of every
    combination of their values in {-1, 0, 1}, indexed by the values read as a base-3 number."""
    groups = []
    for start in range(0, len(FEATURES), _GROUP):
        names = FEATURES[start : start + _GROUP]
        texts = [
            "".join(f',"{name}":{value}' for name, value in zip(names, values, strict=True))
            for values in itertools.product((-1, 0, 1), repeat=len(names))
        ]
        groups.append((list(range(start, start + len(names))), pa.array(texts, pa.binary())))
    return groups


def _json(value: object) -> str:
    return json.dumps(value)


def _utc_text(time: datetime) -> str:
    return time.isoformat(timespec="microseconds").replace("+00:00", "Z")


def read_log(source: str | Path) -> pd.DataFrame:
    """A prediction-log directory (every `predictions-*.jsonl` below it, in time order) or any
    records file the pipeline reads, as one DataFrame.

    A log file's last line without its newline (a writer killed mid-line) is skipped with a
    warning; any other malformed line is an error naming the file.
    """
    path = Path(source)
    if not path.is_dir():
        if not is_url(str(source)) and not path.exists():
            raise DataSourceError(f"{path}: no such file or directory")
        return read_table(source)
    files = sorted(file for pattern in FILE_PATTERNS for file in path.rglob(pattern))
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
    for path in (file for pattern in FILE_PATTERNS for file in directory.rglob(pattern)):
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
