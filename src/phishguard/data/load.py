"""`phishguard load`: the idempotent ETL of data files into MongoDB.

Files are read in chunks by the same readers as `ingest` and judged by the same schema as
`validate`. A valid row becomes a document whose `_id` is the hash of its content (the 30
features and the label), inserted only if that `_id` is absent (an upsert that sets fields
on insert only, see `insert_absent`): loading a file twice adds nothing the second time, and
a load interrupted half-way is completed, not duplicated, by running it again. A document
keeps the provenance of its first load. Invalid rows go to the quarantine collection with their
reasons, under an `_id` derived from their source file and row, so they are not duplicated
either.

Every file is checked (readable, known format, right header, at least one row, not cut off)
before anything is written, so a bad file in the list stops the load with nothing written.
A row with too few fields before the last line is a bad row (quarantined: "... is missing");
a short last line means the file was cut off, and stops the load.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pymongo.errors import PyMongoError
from tqdm import tqdm

from phishguard import first_line
from phishguard.contract.problems import SchemaError
from phishguard.contract.schema import COLUMNS, SCHEMA_VERSION
from phishguard.data import mongo
from phishguard.data.mongo import QUARANTINE_SUFFIX, MongoError, insert_absent
from phishguard.data.source_checks import check_file, expand_sources
from phishguard.data.sources import DataSourceError, iter_chunks
from phishguard.data.validate import REASON, ROW, DuplicateCounter, quarantine
from phishguard.io import CHUNK_ROWS

BATCH_SIZE = 1_000


@dataclass
class LoadCounts:
    """What a load did. `read == inserted + already_present + quarantined`, always."""

    read: int = 0
    inserted: int = 0
    already_present: int = 0
    quarantined: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def content_ids(valid: pd.DataFrame) -> list[str]:
    """The `_id` of each valid row: sha256 of its 31 values, comma-joined in schema order."""
    values = valid.loc[:, list(COLUMNS)].to_numpy(dtype=np.int64).tolist()
    return [hashlib.sha256(",".join(map(str, row)).encode()).hexdigest() for row in values]


def _quarantine_id(source: str, row: int, values: dict[str, str | None]) -> str:
    text = json.dumps([source, row, values], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class _Chunk:
    """One chunk of one file, judged: valid rows with their row numbers, quarantined rows."""

    valid: pd.DataFrame
    valid_rows: np.ndarray
    quarantined: pd.DataFrame
    read: int


def _judged_chunks(path: Path, chunk_rows: int) -> Iterator[_Chunk]:
    offset = 0
    for chunk in iter_chunks(path, chunk_rows):
        try:
            result = quarantine(chunk)
        except SchemaError as error:
            raise DataSourceError(f"{path}: rows after {offset}: {error}") from None
        bad = result.quarantined[ROW].to_numpy(dtype=np.int64) - 1
        keep = np.ones(len(chunk), dtype=bool)
        keep[bad] = False
        quarantined = result.quarantined.copy()
        quarantined[ROW] = quarantined[ROW].astype(np.int64) + offset
        yield _Chunk(result.valid, np.flatnonzero(keep) + offset + 1, quarantined, len(chunk))
        offset += len(chunk)


class _Sink:
    """Where judged rows go: MongoDB collections, or (dry run) a count of distinct rows seen."""

    def __init__(self, client: Any | None, database: str, collection: str) -> None:
        self.dry_run = client is None
        self.seen = DuplicateCounter()  # dry run: 16 bytes per distinct row, no hashing
        if client is not None:
            self.documents = client[database][collection]
            self.quarantine = client[database][collection + QUARANTINE_SUFFIX]
        self.where = f"{database}.{collection}"

    def put_valid(self, ids: list[str], documents: list[dict[str, Any]]) -> tuple[int, int]:
        """Write one batch of valid rows; return (inserted, already present)."""
        first: dict[str, dict[str, Any]] = {}
        for content_id, document in zip(ids, documents, strict=True):
            first.setdefault(content_id, {"_id": content_id, **document})
        inserted = insert_absent(self.documents, list(first.values()))
        return inserted, len(ids) - inserted

    def put_quarantined(self, documents: list[dict[str, Any]]) -> None:
        if not documents:
            return
        insert_absent(self.quarantine, documents)


def load_files(
    patterns: Iterable[str],
    client: Any | None,
    database: str,
    collection: str,
    chunk_rows: int = CHUNK_ROWS,
    batch_size: int = BATCH_SIZE,
    now: datetime | None = None,
    progress: bool | None = None,
    check: bool = True,
) -> LoadCounts:
    """Load every file named by `patterns` into `client[database][collection]`.

    `client` is a `pymongo.MongoClient` (or a compatible stand-in such as `mongomock_ng`);
    `None` is a dry run that validates and counts, where `inserted` means "would insert"
    (new to this run). Raises `DataSourceError` for a bad file and `MongoError` for a
    database failure, each as one line. `check=False` skips `check_file` (already done).
    """
    paths = expand_sources(patterns)
    for path in paths if check else ():
        check_file(path, chunk_rows)
    sink = _Sink(client, database, collection)
    loaded_at = now or datetime.now(UTC)
    show = sys.stderr.isatty() if progress is None else progress
    counts = LoadCounts()
    for path in paths:
        source = str(path.resolve())
        try:
            _load_file(path, source, sink, counts, loaded_at, chunk_rows, batch_size, show)
        except PyMongoError as error:
            raise MongoError(
                f"{sink.where}: writing rows of {path} failed ({first_line(error)}); "
                "re-running the same load is safe: stored rows are skipped"
            ) from None
    return counts


def _load_file(
    path: Path,
    source: str,
    sink: _Sink,
    counts: LoadCounts,
    loaded_at: datetime,
    chunk_rows: int,
    batch_size: int,
    show_progress: bool,
) -> None:
    provenance = {"source": source, "loaded_at": loaded_at, "schema_version": SCHEMA_VERSION}
    with tqdm(
        desc=path.name, unit=" rows", file=sys.stderr, disable=not show_progress, leave=False
    ) as bar:
        for judged in _judged_chunks(path, chunk_rows):
            counts.read += judged.read
            counts.quarantined += len(judged.quarantined)
            bar.update(judged.read)
            if sink.dry_run:
                new = sink.seen.add(judged.valid)
                counts.inserted += new
                counts.already_present += len(judged.valid) - new
                continue
            ids = content_ids(judged.valid)
            records = judged.valid.to_dict("records")
            for start in range(0, len(ids), batch_size):
                stop = start + batch_size
                documents = [
                    {
                        **{k: int(v) for k, v in record.items()},
                        "provenance": {**provenance, "row": int(row)},
                    }
                    for record, row in zip(
                        records[start:stop], judged.valid_rows[start:stop], strict=True
                    )
                ]
                inserted, present = sink.put_valid(ids[start:stop], documents)
                counts.inserted += inserted
                counts.already_present += present
            sink.put_quarantined(_quarantine_documents(judged.quarantined, provenance))


def _quarantine_documents(
    quarantined: pd.DataFrame, provenance: dict[str, Any]
) -> list[dict[str, Any]]:
    documents = []
    for record in quarantined.to_dict("records"):
        values = {name: None if pd.isna(record[name]) else str(record[name]) for name in COLUMNS}
        row = int(record[ROW])
        documents.append(
            {
                "_id": _quarantine_id(provenance["source"], row, values),
                "values": values,
                "reason": str(record[REASON]),
                **provenance,
                "row": row,
            }
        )
    return documents


def summary(counts: LoadCounts, where: str, dry_run: bool) -> str:
    """The one-line summary printed at the end of a load."""
    verb = "would be inserted" if dry_run else "inserted"
    target = f" into {where}" if not dry_run else " (dry run, no database)"
    return (
        f"read {counts.read} rows{target}: {counts.inserted} {verb}, "
        f"{counts.already_present} already present, {counts.quarantined} quarantined"
    )


def counts_json(counts: LoadCounts) -> str:
    """The `--json` output: one object with read, inserted, already_present, quarantined."""
    return json.dumps(counts.as_dict())


def command(
    files: list[str],
    uri: str | None,
    database: str,
    collection: str,
    dry_run: bool,
    as_json: bool,
    connect: Callable[[str], Any] | None = None,
) -> LoadCounts:
    """What `phishguard load` does: check the files, connect, load, print the outcome.

    `connect` turns a URI into a client (default: `phishguard.data.mongo.connect`, a real
    pymongo client with a bounded timeout); tests pass one returning a `mongomock_ng` client.
    """
    for path in expand_sources(files):
        check_file(path)
    client = None
    if not dry_run:
        client = (connect or mongo.connect)(mongo.uri_from_env(uri))
    try:
        counts = load_files(files, client, database, collection, check=False)
    finally:
        if client is not None:
            client.close()
    line = summary(counts, f"{database}.{collection}", dry_run)
    if as_json:
        print(line, file=sys.stderr)
        print(counts_json(counts))
    else:
        print(line)
    return counts
