"""Where each logged request's records are: an index of the JSONL prediction log, so that
`POST /feedback` finds a `prediction_id` in a few reads whatever the size of the log.

One SQLite file per log directory (`INDEX_NAME`, hidden; WAL, so the writers of several worker
processes and the readers share it). Per written batch, one row: its request id, the index of
its first prediction, its row count, and the file and byte offset of its first line; per log
file, how many of its bytes the index covers (`covered`). The index is a cache of the log and
never its only copy: it is written without fsync, a batch whose row could not be added (a busy
or full disk) is found by reading the uncovered end of its file, a log file written before the
index existed is indexed by one pass over it the first time it is searched, and an index file
that cannot be opened is rebuilt. A hit is always checked against the record it points at, so
a forged id can never name another record.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

INDEX_NAME = ".prediction-index-v1.sqlite"
WRITER_BUSY_MS = 50
"""A writer waits this long for the index, then leaves the batch to the uncovered-end read."""
READER_BUSY_MS = 2_000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    request_id TEXT NOT NULL, first INTEGER NOT NULL, last INTEGER NOT NULL,
    rows INTEGER NOT NULL, file TEXT NOT NULL, offset INTEGER NOT NULL,
    PRIMARY KEY (request_id, first)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS files (file TEXT PRIMARY KEY, covered INTEGER NOT NULL);
"""
# One line of the log as the writer formats it: its request id, then its prediction id.
_LINE_IDS = re.compile(rb'"request_id":("(?:[^"\\]|\\.)*"),"prediction_id":"(?:[^"\\]|\\.)*-(\d+)"')


@dataclass(frozen=True)
class Entry:
    """One batch's place in a log file."""

    request_id: str
    first: int
    last: int
    """The batch's first and last prediction index (an id beyond them is not in it)."""
    rows: int
    offset: int


class LogIndex:
    """The index of the log files in `directory` (names relative to it)."""

    def __init__(self, directory: Path, busy_ms: int) -> None:
        self.directory = directory
        self.path = directory / INDEX_NAME
        self._db = self._connect(busy_ms)

    def _connect(self, busy_ms: int) -> sqlite3.Connection:
        for attempt in range(2):
            db = sqlite3.connect(self.path, timeout=busy_ms / 1000, check_same_thread=False)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=OFF")  # a cache: rebuilt, never trusted blindly
                db.executescript(_SCHEMA)
                return db
            except sqlite3.DatabaseError as error:
                db.close()
                if attempt or isinstance(error, sqlite3.OperationalError):
                    raise
                log.warning("%s: unreadable (%s); rebuilding it from the log", self.path, error)
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        raise AssertionError("unreachable")

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    def add(self, writes: Iterable[tuple[str, Iterable[Entry], int]]) -> None:
        """Index, in one transaction, each write's `entries` of `file`, which then ended at
        byte `covered`: an iterable of (file, entries, covered)."""
        with self._db:
            for file, entries, covered in writes:
                self._db.executemany(
                    "INSERT OR REPLACE INTO batches VALUES (?, ?, ?, ?, ?, ?)",
                    ((e.request_id, e.first, e.last, e.rows, file, e.offset) for e in entries),
                )
                self._db.execute("INSERT OR REPLACE INTO files VALUES (?, ?)", (file, covered))

    def forget(self, files: Iterable[str]) -> None:
        """Drop the entries of deleted log files."""
        with self._db:
            for file in files:
                self._db.execute("DELETE FROM batches WHERE file = ?", (file,))
                self._db.execute("DELETE FROM files WHERE file = ?", (file,))

    def covered(self) -> dict[str, int]:
        """Per indexed file, how many of its bytes the index covers."""
        return dict(self._db.execute("SELECT file, covered FROM files"))

    def locate(
        self, wanted: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], tuple[str, int, int]]:
        """For each (request id, prediction index), the (file, offset, rows) of the batch that
        may hold it: the batch of that request with the largest first index not above it,
        if its last index is not below it."""
        found = {}
        query = (
            "SELECT file, offset, rows, last FROM batches WHERE request_id = ? AND first <= ? "
            "ORDER BY first DESC LIMIT 1"
        )
        for key in wanted:
            row = self._db.execute(query, key).fetchone()
            if row is not None and row[3] >= key[1]:
                found[key] = row[:3]
        return found

    def index_file(self, file: str, data: bytes, start: int = 0) -> None:
        """Index the complete lines of `data` (the bytes of `file` from `start`): one pass,
        for a file the index does not cover (written before it existed)."""
        end = data.rfind(b"\n") + 1
        self.add([(file, _entries(data[:end], start), start + end)])


def _entries(data: bytes, start: int) -> Iterator[Entry]:
    """One entry per run of consecutive lines of one request (a batch as it was written)."""
    current: list = []
    at = 0
    while at < len(data):
        end = data.find(b"\n", at)
        found = _LINE_IDS.search(data, at, end)
        if found is not None:
            request_id, number = found.group(1), int(found.group(2))
            if current and current[0] == request_id:
                current[3] += 1
                current[4] = max(current[4], number)
            else:
                if current:
                    yield _entry(current)
                current = [request_id, number, start + at, 1, number]
        at = end + 1
    if current:
        yield _entry(current)


def _entry(run: list) -> Entry:
    request_id, first, offset, rows, last = run
    return Entry(json.loads(request_id), first, last, rows, offset)
