"""The prediction log's files: appending whole records, the Parquet part file, retention.

A JSONL segment (`JsonlSegment`) is appended with `os.write` on an `O_APPEND` descriptor, so
every byte a call hands over is in the operating system's page cache when it returns. A write
that fails part-way (ENOSPC, EIO) is cut back with `ftruncate` to the end of the last whole
record it wrote, so the file always ends on a whole line; the records after that point are the
ones lost, and only those are counted. If even the truncation fails the segment is abandoned
(the next write starts a new one), and the reader skips the one damaged line.

Retention (`PHISHGUARD_PREDICTION_LOG_RETENTION_DAYS`) and the size cap
(`PHISHGUARD_PREDICTION_LOG_MAX_BYTES`) are enforced by deleting whole segments, oldest first
(`enforce_retention`); a segment is closed and a new one started at `segment_bytes`, so the cap
never has to cut into the file being written.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from phishguard import PhishguardError
from phishguard.monitoring.log_records import FILE_PATTERNS, PARQUET_SCHEMA

RETENTION_ENV = "PHISHGUARD_PREDICTION_LOG_RETENTION_DAYS"
MAX_BYTES_ENV = "PHISHGUARD_PREDICTION_LOG_MAX_BYTES"
SETTINGS = {
    RETENTION_ENV: (
        30,
        "days a prediction-log segment is kept (it holds what clients sent); 0 keeps it forever",
    ),
    MAX_BYTES_ENV: (
        10 * 2**30,
        "bytes the prediction-log directory may hold; the oldest whole segments are deleted "
        "beyond it; 0 means no cap",
    ),
}
"""The log's retention settings: environment variable → (default, help)."""
SEGMENT_BYTES = 256 * 2**20
"""A JSONL segment is closed at this size (or a quarter of the cap, if smaller)."""
DAY_S = 86_400


@dataclass(frozen=True)
class Retention:
    """How long and how much of the log is kept (0: no limit)."""

    days: float = SETTINGS[RETENTION_ENV][0]
    max_bytes: int = SETTINGS[MAX_BYTES_ENV][0]

    @classmethod
    def from_env(cls, environ: dict[str, str] | os._Environ[str] | None = None) -> Retention:
        """The settings of `SETTINGS`, from the environment (an empty value: the default)."""
        environ = os.environ if environ is None else environ
        values = {}
        for name, (default, _) in SETTINGS.items():
            text = environ.get(name, "").strip()
            if text and not text.isdigit():
                raise PhishguardError(f"{name} must be a whole number ≥ 0, got {text!r}")
            values[name] = int(text) if text else default
        return cls(days=values[RETENTION_ENV], max_bytes=values[MAX_BYTES_ENV])

    @property
    def segment_bytes(self) -> int:
        return min(SEGMENT_BYTES, self.max_bytes // 4) if self.max_bytes else SEGMENT_BYTES


class JsonlSegment:
    """A JSONL log file open for appending whole records."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.size = os.fstat(self.fd).st_size
        self.broken = False

    def append(self, data: memoryview, row_ends: np.ndarray) -> tuple[int, OSError | None]:
        """Write `data` (records ending at the byte offsets `row_ends`); how many records are
        now in the file, and the error that stopped the others (None: all written)."""
        start, done = self.size, 0
        try:
            while done < len(data):
                done += os.write(self.fd, data[done:])
        except OSError as error:
            kept = int(np.searchsorted(row_ends, done, side="right"))
            keep = int(row_ends[kept - 1]) if kept else 0
            try:
                os.ftruncate(self.fd, start + keep)
                self.size = start + keep
            except OSError:
                self.broken = True  # it may end on a fragment: the next write starts a new file
                self.size = start + done
            return kept, error
        self.size = start + done
        return len(row_ends), None

    def sync(self) -> None:
        """fsync, on a descriptor of its own (the writer may close ours meanwhile)."""
        with contextlib.suppress(OSError):
            fd = os.dup(self.fd)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class ParquetPart:
    """A Parquet log file being written: row groups go to a hidden `.part` file, renamed to
    its name when closed, so a reader never meets a file without its footer (a run that dies
    leaves only the hidden part, which `read_log` does not read, and which the next run that
    closes a Parquet log in the directory removes: it is no longer locked)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.part = path.with_name(f".{path.name}.part")
        self.file = self.part.open("wb")
        fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)  # "still being written"
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

    def write(self, table) -> None:
        self.writer.write_table(table)

    def close(self) -> None:
        self.writer.close()
        self.file.close()
        self.part.replace(self.path)


def log_files(directory: Path) -> list[Path]:
    """Every prediction-log file below `directory`, of either format."""
    return [file for pattern in FILE_PATTERNS for file in directory.rglob(pattern)]


def enforce_retention(directory: Path, retention: Retention, keep: set[Path]) -> list[Path]:
    """Delete the log files of `directory` older than the retention, then the oldest until
    the rest fit the cap, never one in `keep` (being written); the deleted files."""
    stamped = []
    for path in log_files(directory):
        with contextlib.suppress(OSError):
            info = path.stat()
            stamped.append((info.st_mtime, info.st_size, path))
    stamped.sort(key=lambda item: (item[0], str(item[2])))
    total = sum(size for _, size, _ in stamped)
    cutoff = time.time() - retention.days * DAY_S if retention.days else None
    deleted = []
    for mtime, size, path in stamped:
        too_old = cutoff is not None and mtime < cutoff
        too_big = bool(retention.max_bytes) and total > retention.max_bytes
        if path in keep or not (too_old or too_big):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        total -= size
        deleted.append(path)
    return deleted
