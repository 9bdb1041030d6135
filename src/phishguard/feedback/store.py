"""The feedback store: analysts' verdicts, append-only and idempotent.

A verdict is the 30 features and a `Result` (UCI coding: -1 phishing, 1 legitimate). Its id is
the content hash `phishguard load` gives a row (`phishguard.data.load.content_ids`), so the same
verdict sent twice is stored once, and the first arrival (its time, source, submitter, and the
served model's `champion_phishing` then) is kept. Besides, the store keeps who asserted each
verdict and when last (`assertions()`: one row per verdict and submitter, so a second
submitter's confirmation and a submitter's re-sent verdict count), and reviewers' decisions
(`review`). Verdicts are never updated or deleted; `phishguard.feedback.trust` weighs them.

Two backends, one interface (`FeedbackStore`), chosen by `open_store`:

- by default an embedded SQLite file, `data/feedback/verdicts.sqlite3` (`$PHISHGUARD_FEEDBACK_DIR`
  names another folder): `verdict_id` is the primary key, rows go in with `INSERT OR IGNORE`, in
  WAL mode with a busy timeout, so several service workers (processes) can write at once;
- with `$MONGODB_URI` set, the MongoDB collection `feedback` (database `phishguard`, or
  `$PHISHGUARD_MONGODB_DATABASE`): `_id` is the verdict id, inserted only if absent, the
  features at the top level as `phishguard load` writes them, with the same provenance
  (source, time, schema version) plus submitter, note and prediction id.

Rows given to `add` must already be checked (`phishguard.feedback.intake`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from phishguard import StorageError, paths
from phishguard.contract.schema import COLUMNS, SCHEMA_VERSION
from phishguard.data import mongo
from phishguard.data.load import content_ids
from phishguard.data.origin import CHAMPION_PHISHING, RECEIVED_AT, REVIEW, SUBMITTER, VERDICT_ID
from phishguard.io import ensure_folder

FEEDBACK_DIR_ENV = "PHISHGUARD_FEEDBACK_DIR"
DATABASE_ENV = "PHISHGUARD_MONGODB_DATABASE"
DEFAULT_DATABASE = "phishguard"
COLLECTION = "feedback"
SQLITE_NAME = "verdicts.sqlite3"
BUSY_TIMEOUT_S = 30.0
NEARLY_FULL_BYTES = 1024 * 1024
"""Free space under which an SQLite I/O error is taken for a full disk (it gives no errno)."""

SOURCE = "source"
NOTE = "note"
PREDICTION_ID = "prediction_id"
# Per-row fields `add` takes from its DataFrame when present (a row's `source`, when given,
# overrides the call's); `submitter` is per call.
OPTIONAL_FIELDS = (NOTE, SOURCE, PREDICTION_ID)
PROVENANCE = (RECEIVED_AT, SOURCE, NOTE, SUBMITTER, PREDICTION_ID, "schema_version")
VERDICT_COLUMNS = (*COLUMNS, VERDICT_ID, *PROVENANCE)
"""The columns of `FeedbackStore.verdicts()`, in order."""
ASSERTION_COLUMNS = (*COLUMNS, VERDICT_ID, RECEIVED_AT, SUBMITTER, CHAMPION_PHISHING, REVIEW)
"""The columns of `FeedbackStore.assertions()`: `received_at` is the submitter's latest."""
NO_SUBMITTER = "(none)"
APPROVED, REJECTED = "approved", "rejected"
DECISIONS = {"approve": APPROVED, "reject": REJECTED}


@dataclass(frozen=True)
class AddResult:
    """What `add` did: `accepted` new verdicts, `already_present` ones (stored before, or
    repeated within the call), and the verdict id and whether it was new, row by row."""

    accepted: int
    already_present: int
    ids: list[str]
    new: list[bool]


class FeedbackStore(Protocol):
    """An append-only store of verdicts; see the module's docstring."""

    where: str

    def add(
        self, verdicts: pd.DataFrame, source: str, submitter: str | None = None
    ) -> AddResult: ...

    def verdicts(self) -> pd.DataFrame: ...

    def assertions(self) -> pd.DataFrame: ...

    def review(self, decisions: Mapping[str, str], reviewer: str) -> list[str]: ...

    def close(self) -> None: ...


def store_settings(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The variables of `environ` that `open_store` reads (to open the store later as now)."""
    names = (mongo.URI_ENV, DATABASE_ENV, FEEDBACK_DIR_ENV)
    return {name: environ[name] for name in names if name in environ}


def open_store(environ: Mapping[str, str] = os.environ) -> FeedbackStore:
    """The store this environment names: MongoDB with `$MONGODB_URI`, else the SQLite file."""
    if environ.get(mongo.URI_ENV, "").strip():
        # Imported here: the MongoDB backend builds on this module's row helpers.
        from phishguard.feedback.mongo_store import MongoFeedbackStore

        client = mongo.connect(mongo.uri_from_env(None, environ))
        database = environ.get(DATABASE_ENV, "").strip() or DEFAULT_DATABASE
        return MongoFeedbackStore(client[database][COLLECTION], client)
    folder = Path(environ.get(FEEDBACK_DIR_ENV, "").strip() or paths.FEEDBACK_DIR)
    return SqliteFeedbackStore(folder / SQLITE_NAME)


def received_now() -> datetime:
    """The arrival time of a batch: UTC, cut to milliseconds (what MongoDB keeps)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def iso_text(moment: datetime) -> str:
    """`2026-11-30T22:31:05.123Z`: sorts as time does."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def row_values(verdicts: pd.DataFrame) -> tuple[list[str], list[list[int]], dict[str, list[Any]]]:
    """(ids, the 31 values of each row as ints, the optional per-row fields or Nones)."""
    ids = content_ids(verdicts)
    values = verdicts.loc[:, list(COLUMNS)].to_numpy(dtype=np.int64).tolist()
    optional = {
        name: [
            None if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
            for value in verdicts[name].tolist()
        ]
        if name in verdicts.columns
        else [None] * len(verdicts)
        for name in OPTIONAL_FIELDS
    }
    return ids, values, optional


def champion_scores(verdicts: pd.DataFrame) -> list[float | None]:
    """Each row's `champion_phishing` (None when the table has none, or a row's is NaN)."""
    if CHAMPION_PHISHING not in verdicts.columns:
        return [None] * len(verdicts)
    return [None if pd.isna(v) else float(v) for v in verdicts[CHAMPION_PHISHING].tolist()]


def assertion_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """`assertions()`'s table, ordered by the submitter's latest time, then id, then submitter."""
    table = pd.DataFrame.from_records(records, columns=list(ASSERTION_COLUMNS))
    for name in COLUMNS:
        table[name] = table[name].astype(np.int8)
    table[CHAMPION_PHISHING] = pd.to_numeric(table[CHAMPION_PHISHING]).astype(float)
    for name in (VERDICT_ID, RECEIVED_AT, SUBMITTER, REVIEW):
        table[name] = table[name].astype(object).where(table[name].notna(), None)
    order = [RECEIVED_AT, VERDICT_ID, SUBMITTER]
    return table.sort_values(order, kind="stable", ignore_index=True)


def add_result(ids: list[str], new: list[bool]) -> AddResult:
    """The `AddResult` of a call that stored the verdicts `ids` (`new`: each one was absent)."""
    accepted = sum(new)
    return AddResult(accepted, len(ids) - accepted, ids, new)


def verdict_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The verdicts as `FeedbackStore.verdicts()` returns them, ordered by arrival then id."""
    table = pd.DataFrame.from_records(records, columns=list(VERDICT_COLUMNS))
    for name in COLUMNS:
        table[name] = table[name].astype(np.int8)
    table["schema_version"] = table["schema_version"].astype(np.int64)
    for name in (RECEIVED_AT, SOURCE, NOTE, SUBMITTER, PREDICTION_ID, VERDICT_ID):
        table[name] = table[name].astype(object).where(table[name].notna(), None)
    return table.sort_values([RECEIVED_AT, VERDICT_ID], kind="stable", ignore_index=True)


class SqliteFeedbackStore:
    """The embedded store: one SQLite file, safe for several threads and processes."""

    def __init__(self, path: Path) -> None:
        ensure_folder(path.parent, path)
        self.path = path
        self.where = str(path)
        # One connection per store, shared by the service's worker threads under a lock;
        # other processes open their own, and SQLite's file locks order their writes.
        self._lock = threading.Lock()
        features = ", ".join(f'"{name}" INTEGER NOT NULL' for name in COLUMNS)
        with self._storage():
            self._db = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            self._use_wal()
            # One transaction: processes opening a new or older store at once take turns.
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS verdicts (verdict_id TEXT PRIMARY KEY, {features}, "
                "received_at TEXT NOT NULL, source TEXT NOT NULL, note TEXT, submitter TEXT, "
                "prediction_id TEXT, schema_version INTEGER NOT NULL)"
            )
            self._upgrade()
            self._db.execute("COMMIT")

    def _use_wal(self) -> None:
        """WAL mode, which the file keeps once set. Switching takes an exclusive lock, for which
        SQLite may answer "database is locked" at once instead of waiting (another process is
        opening the same new store): retry within the busy timeout."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                if self._db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @contextmanager
    def _storage(self) -> Iterator[None]:
        """SQLite's errors of a full or failing disk as one `StorageError` naming the file:
        SQLite reports no errno, so a full disk is its SQLITE_FULL, or an I/O error while
        the folder has no space left."""
        try:
            yield
        except sqlite3.OperationalError as error:
            name = getattr(error, "sqlite_errorname", "")
            if not name.startswith(("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY")):
                raise
            if name.startswith("SQLITE_FULL") or _no_space_left(self.path.parent):
                code = errno.ENOSPC
            else:
                code = errno.EROFS if name.startswith("SQLITE_READONLY") else errno.EIO
            raise StorageError(self.path, code, f"{os.strerror(code)}: sqlite: {error}") from None

    def _upgrade(self) -> None:
        """Add what a store from before issue 27 lacks: the champion's score per verdict, the
        assertions (filled from each verdict's first arrival, once) and the reviews. Runs in
        the opening transaction, so two processes never both add a column."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(verdicts)")}
        if CHAMPION_PHISHING not in columns:
            self._db.execute(f"ALTER TABLE verdicts ADD COLUMN {CHAMPION_PHISHING} REAL")
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master")}
        if "assertions" not in tables:
            self._db.execute(
                "CREATE TABLE assertions (verdict_id TEXT NOT NULL, submitter TEXT NOT NULL, "
                "asserted_at TEXT NOT NULL, PRIMARY KEY (verdict_id, submitter))"
            )
            self._db.execute(
                "INSERT OR IGNORE INTO assertions SELECT verdict_id, COALESCE(submitter, ?), "
                "received_at FROM verdicts",
                (NO_SUBMITTER,),
            )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS reviews (verdict_id TEXT PRIMARY KEY, reviewer TEXT "
            "NOT NULL, decision TEXT NOT NULL, reviewed_at TEXT NOT NULL)"
        )

    def add(self, verdicts: pd.DataFrame, source: str, submitter: str | None = None) -> AddResult:
        """Store the verdicts not stored yet, in one transaction; see `AddResult`."""
        ids, values, optional = row_values(verdicts)
        received = iso_text(received_now())
        names = ", ".join(f'"{name}"' for name in (VERDICT_ID, *COLUMNS, *PROVENANCE))
        marks = ", ".join("?" * (len(COLUMNS) + 1 + len(PROVENANCE)))
        statement = (
            f"INSERT OR IGNORE INTO verdicts ({names}, {CHAMPION_PHISHING}) VALUES ({marks}, ?)"
        )
        # A verdict sent again moves its time forward only when the same submitter has sent a
        # newer, other verdict on the same record since ("newest wins": L, P, L again leaves L
        # in force); a plain re-send changes nothing, so the snapshot's bytes stay as they were.
        same_record = " AND ".join(f'w."{name}" = ?' for name in COLUMNS[:-1])
        asserted = (
            "INSERT INTO assertions VALUES (?, ?, ?) ON CONFLICT (verdict_id, submitter) "
            "DO UPDATE SET asserted_at = excluded.asserted_at WHERE EXISTS (SELECT 1 FROM "
            "assertions o JOIN verdicts w ON w.verdict_id = o.verdict_id WHERE "
            "o.submitter = excluded.submitter AND o.verdict_id != excluded.verdict_id AND "
            f"o.asserted_at > assertions.asserted_at AND {same_record})"
        )
        scores = champion_scores(verdicts)
        new = []
        with self._lock, self._storage():
            self._db.execute("BEGIN IMMEDIATE")  # take the write lock now, not half-way
            try:
                for index, (verdict_id, row) in enumerate(zip(ids, values, strict=True)):
                    provenance = (
                        received,
                        optional[SOURCE][index] or source,
                        optional[NOTE][index],
                        submitter,
                        optional[PREDICTION_ID][index],
                        SCHEMA_VERSION,
                    )
                    cursor = self._db.execute(
                        statement, (verdict_id, *row, *provenance, scores[index])
                    )
                    new.append(cursor.rowcount == 1)
                    who = submitter or NO_SUBMITTER
                    self._db.execute(asserted, (verdict_id, who, received, *row[:-1]))
                self._db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # a failed COMMIT may have ended it
                    self._db.execute("ROLLBACK")
                raise
        return add_result(ids, new)

    def verdicts(self) -> pd.DataFrame:
        """Every stored verdict; see `VERDICT_COLUMNS`."""
        names = ", ".join(f'"{name}"' for name in VERDICT_COLUMNS)
        with self._lock:
            cursor = self._db.execute(f"SELECT {names} FROM verdicts")
            records = [dict(zip(VERDICT_COLUMNS, row, strict=True)) for row in cursor]
        return verdict_frame(records)

    def assertions(self) -> pd.DataFrame:
        """Every verdict once per submitter who sent it; see `ASSERTION_COLUMNS`."""
        values = ", ".join(f'v."{name}"' for name in COLUMNS)
        query = (
            f"SELECT {values}, v.verdict_id, a.asserted_at, a.submitter, v.{CHAMPION_PHISHING}, "
            "r.decision FROM assertions a JOIN verdicts v USING (verdict_id) "
            "LEFT JOIN reviews r USING (verdict_id)"
        )
        with self._lock:
            rows = self._db.execute(query).fetchall()
        return assertion_frame([dict(zip(ASSERTION_COLUMNS, row, strict=True)) for row in rows])

    def review(self, decisions: Mapping[str, str], reviewer: str) -> list[str]:
        """Record `reviewer`'s decisions (verdict id → approve | reject; the latest decision on
        a verdict stands); return the ids not in the store (then nothing is recorded)."""
        verdict_ids = list(decisions)
        reviewed = iso_text(received_now())
        with self._lock, self._storage():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                marks = ", ".join("?" * len(verdict_ids))
                query = f"SELECT verdict_id FROM verdicts WHERE verdict_id IN ({marks})"
                known = {row[0] for row in self._db.execute(query, verdict_ids)}
                unknown = [i for i in verdict_ids if i not in known]
                if not unknown:
                    self._db.executemany(
                        "INSERT OR REPLACE INTO reviews VALUES (?, ?, ?, ?)",
                        [(i, reviewer, DECISIONS[d], reviewed) for i, d in decisions.items()],
                    )
                self._db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # a failed COMMIT may have ended it
                    self._db.execute("ROLLBACK")
                raise
        return unknown

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _no_space_left(folder: Path) -> bool:
    try:
        stat = os.statvfs(folder)
    except OSError:
        return False
    return stat.f_bavail * stat.f_frsize < NEARLY_FULL_BYTES
