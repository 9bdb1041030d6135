"""The feedback store: analysts' verdicts, append-only and idempotent.

A verdict is the 30 features and a `Result` (UCI coding: -1 phishing, 1 legitimate). Its id is
the content hash `phishguard load` gives a row (`phishguard.data.load.content_ids`), so the same
verdict sent twice is stored once, and the first arrival (its time, source, submitter) is kept.
Nothing is ever updated or deleted: there is no API for it.

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
from phishguard.data.origin import RECEIVED_AT, SUBMITTER, VERDICT_ID
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

    def close(self) -> None: ...


def store_settings(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The variables of `environ` that `open_store` reads (to open the store later as now)."""
    names = (mongo.URI_ENV, DATABASE_ENV, FEEDBACK_DIR_ENV)
    return {name: environ[name] for name in names if name in environ}


def open_store(environ: Mapping[str, str] = os.environ) -> FeedbackStore:
    """The store this environment names: MongoDB with `$MONGODB_URI`, else the SQLite file."""
    if environ.get(mongo.URI_ENV, "").strip():
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


def _rows(verdicts: pd.DataFrame) -> tuple[list[str], list[list[int]], dict[str, list[Any]]]:
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


def _result(ids: list[str], new: list[bool]) -> AddResult:
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
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS verdicts (verdict_id TEXT PRIMARY KEY, {features}, "
                "received_at TEXT NOT NULL, source TEXT NOT NULL, note TEXT, submitter TEXT, "
                "prediction_id TEXT, schema_version INTEGER NOT NULL)"
            )

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

    def add(self, verdicts: pd.DataFrame, source: str, submitter: str | None = None) -> AddResult:
        """Store the verdicts not stored yet, in one transaction; see `AddResult`."""
        ids, values, optional = _rows(verdicts)
        received = iso_text(received_now())
        names = ", ".join(f'"{name}"' for name in (VERDICT_ID, *COLUMNS, *PROVENANCE))
        marks = ", ".join("?" * (len(COLUMNS) + 1 + len(PROVENANCE)))
        statement = f"INSERT OR IGNORE INTO verdicts ({names}) VALUES ({marks})"
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
                    cursor = self._db.execute(statement, (verdict_id, *row, *provenance))
                    new.append(cursor.rowcount == 1)
                self._db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # a failed COMMIT may have ended it
                    self._db.execute("ROLLBACK")
                raise
        return _result(ids, new)

    def verdicts(self) -> pd.DataFrame:
        """Every stored verdict; see `VERDICT_COLUMNS`."""
        names = ", ".join(f'"{name}"' for name in VERDICT_COLUMNS)
        with self._lock:
            cursor = self._db.execute(f"SELECT {names} FROM verdicts")
            records = [dict(zip(VERDICT_COLUMNS, row, strict=True)) for row in cursor]
        return verdict_frame(records)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _no_space_left(folder: Path) -> bool:
    try:
        stat = os.statvfs(folder)
    except OSError:
        return False
    return stat.f_bavail * stat.f_frsize < NEARLY_FULL_BYTES


class MongoFeedbackStore:
    """The store as a MongoDB collection (a `pymongo` collection, or `mongomock_ng`'s)."""

    def __init__(self, collection: Any, client: Any | None = None) -> None:
        self.collection = collection
        self.where = f"{collection.database.name}.{collection.name}"
        self._client = client

    def add(self, verdicts: pd.DataFrame, source: str, submitter: str | None = None) -> AddResult:
        """Insert the verdicts whose `_id` is absent (`mongo.inserted_flags`)."""
        ids, values, optional = _rows(verdicts)
        received = received_now()
        documents = [
            {
                "_id": verdict_id,
                **dict(zip(COLUMNS, row, strict=True)),
                "provenance": {
                    SOURCE: optional[SOURCE][index] or source,
                    RECEIVED_AT: received,
                    "schema_version": SCHEMA_VERSION,
                    "submitter": submitter,
                    NOTE: optional[NOTE][index],
                    PREDICTION_ID: optional[PREDICTION_ID][index],
                },
            }
            for index, (verdict_id, row) in enumerate(zip(ids, values, strict=True))
        ]
        return _result(ids, mongo.inserted_flags(self.collection, documents))

    def verdicts(self) -> pd.DataFrame:
        """Every stored verdict; see `VERDICT_COLUMNS`."""
        records = []
        for document in self.collection.find({}):
            provenance = document.get("provenance", {})
            records.append(
                {
                    **{name: document[name] for name in COLUMNS},
                    VERDICT_ID: document["_id"],
                    RECEIVED_AT: iso_text(provenance[RECEIVED_AT]),
                    "source": provenance.get("source"),
                    NOTE: provenance.get(NOTE),
                    "submitter": provenance.get("submitter"),
                    PREDICTION_ID: provenance.get(PREDICTION_ID),
                    "schema_version": provenance.get("schema_version", SCHEMA_VERSION),
                }
            )
        return verdict_frame(records)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
