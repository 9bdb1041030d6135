"""MongoDB at the edges: connecting with a bounded timeout, and reading a collection back.

Everything that talks to a database takes the client (or collection) as a parameter, so
tests pass an in-process `mongomock_ng` client (which raises pymongo's own exception types)
and production passes `pymongo.MongoClient`. pymongo is imported only when needed (~0.8 s).
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from phishguard import PhishguardError, first_line
from phishguard.contract.schema import COLUMNS
from phishguard.data.ingest import canonical_table
from phishguard.io import CHUNK_ROWS, atomic_path

URI_ENV = "MONGODB_URI"
QUARANTINE_SUFFIX = "_quarantine"
SERVER_TIMEOUT_MS = 5_000
DUPLICATE_KEY = 11000


class MongoError(PhishguardError, RuntimeError):
    """MongoDB cannot be reached or refused an operation; the message says which and where."""


def redact(uri: str) -> str:
    """`uri` with its password and secret options replaced by `***`, safe to print.

    A rule that no character in a secret can fool (a URL parser stops at `/ ? #`, which an
    unescaped password may hold): the user information is everything between `://` and the
    LAST `@`, and everything after its first `:` is hidden; and every option whose name holds
    a secret (`authMechanismProperties`, `tlsCertificateKeyFilePassword`, ...) hides the rest
    of the URI. When in doubt, more is hidden, never less.
    """
    scheme, rest = _split_scheme(uri)
    shown, end = [scheme], 0
    for start, stop in _secret_spans(rest):
        shown += [rest[end:start], "***"]
        end = stop
    return "".join(shown) + rest[end:]


def _split_scheme(uri: str) -> tuple[str, str]:
    """(`mongodb://`, the rest): split at the first `://`, if any."""
    scheme, separator, rest = uri.partition("://")
    return (scheme + separator, rest) if separator else ("", uri)


_SECRET_OPTION = re.compile(r"password|passphrase|secret|token|authmechanismproperties", re.I)
_OPTION = re.compile(r"[?&;]([^=&;?]*)=")


def _secret_spans(rest: str) -> list[tuple[int, int]]:
    """Sorted, non-overlapping (start, stop) spans of `rest` (the URI after `://`) to hide."""
    spans = []
    at = rest.rfind("@")
    colon = rest.find(":", 0, max(at, 0))
    if at >= 0 and colon >= 0:
        spans.append((colon + 1, at))
    for option in _OPTION.finditer(rest):
        if _SECRET_OPTION.search(option.group(1)):
            spans.append((option.end(), len(rest)))
            break
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, stop in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(stop, merged[-1][1]))
        else:
            merged.append((start, stop))
    return merged


def scrub(text: str, uri: str) -> str:
    """`text` (say, a driver's error) with any secret of `uri` replaced by `***`, as written in
    the URI, percent-decoded, or in part (a driver may quote one piece of a secret option)."""
    _, rest = _split_scheme(uri)
    pieces = set()
    for start, stop in _secret_spans(rest):
        secret = rest[start:stop]
        for form in (secret, urllib.parse.unquote_plus(secret)):
            pieces |= {form, *re.split(r"[,:&=@]", form)}
    for piece in sorted((p for p in pieces if len(p) >= 3), key=len, reverse=True):
        text = text.replace(piece, "***")
    return text


def uri_from_env(uri: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """`uri` if given, else `$MONGODB_URI`; a clear error when neither is set."""
    chosen = (uri or environ.get(URI_ENV, "")).strip()
    if not chosen:
        raise MongoError(f"no MongoDB URI: pass --uri or set {URI_ENV}=mongodb://host:27017")
    return chosen


def connect(uri: str, timeout_ms: int = SERVER_TIMEOUT_MS) -> Any:
    """A `pymongo.MongoClient` for `uri` that has answered a ping within `timeout_ms`.

    Fails with `MongoError` (one line, password redacted) instead of hanging for pymongo's
    default 30 s or printing a traceback.
    """
    # pymongo costs ~0.8 s of import: paid only by the commands that talk to MongoDB.
    import pymongo
    from pymongo.errors import ConfigurationError, PyMongoError

    try:
        client = pymongo.MongoClient(
            uri,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=max(timeout_ms, 30_000),
        )
    except (ConfigurationError, ValueError) as error:
        problem = scrub(first_line(error), uri)
        raise MongoError(f"invalid MongoDB URI {redact(uri)}: {problem}") from None
    try:
        client.admin.command("ping")
    except PyMongoError as error:
        client.close()
        raise MongoError(
            f"cannot reach MongoDB at {redact(uri)} within {timeout_ms / 1000:g} s "
            f"({scrub(first_line(error), uri).split(' (configured timeouts')[0]})"
        ) from None
    return client


def insert_absent(collection: Any, documents: list[dict[str, Any]]) -> int:
    """Insert the `documents` whose `_id` is not in `collection` yet; return how many.

    One unordered `bulk_write`; a duplicate `_id` (error 11000) means "already present".
    This is an upsert with `$setOnInsert` on `_id`, written as an insert: the result is the
    same on MongoDB, and the in-process stand-in (mongomock_ng) resolves an upsert's filter
    by scanning the whole collection, which made loading the real file take minutes.
    """
    return sum(inserted_flags(collection, documents))


def inserted_flags(collection: Any, documents: list[dict[str, Any]]) -> list[bool]:
    """`insert_absent`, telling for each document whether it was inserted (False: its `_id`
    was already present, or came earlier in `documents`)."""
    # pymongo costs ~0.8 s of import: paid only by the commands that talk to MongoDB.
    from pymongo import InsertOne
    from pymongo.errors import BulkWriteError

    if not documents:
        return []
    try:
        collection.bulk_write([InsertOne(d) for d in documents], ordered=False)
    except BulkWriteError as error:
        details = error.details
        errors = details.get("writeErrors", [])
        others = [e for e in errors if e.get("code") != DUPLICATE_KEY]
        if others or details.get("writeConcernErrors"):
            first = (others or details["writeConcernErrors"])[0]
            raise MongoError(
                f"{collection.database.name}.{collection.name}: write failed "
                f"({first.get('errmsg', first)})"
            ) from None
        present = {int(e["index"]) for e in errors}
        return [index not in present for index in range(len(documents))]
    return [True] * len(documents)


def read_collection(
    collection: Any,
    query: Mapping[str, Any] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[pd.DataFrame]:
    """The documents matching `query`, sorted by `_id`, as DataFrames of the canonical columns.

    Provenance and any other field are left out; a missing column is a missing value, for
    validation to judge. Sorting by the content-hash `_id` makes the order, and so the
    snapshot's bytes, depend only on the content.
    """
    projection = {name: 1 for name in COLUMNS}
    cursor = collection.find(dict(query or {}), projection, sort=[("_id", 1)])
    rows: list[dict[str, Any]] = []
    for document in cursor:
        rows.append({name: document.get(name) for name in COLUMNS})
        if len(rows) >= chunk_rows:
            yield pd.DataFrame.from_records(rows, columns=list(COLUMNS))
            rows = []
    if rows:
        yield pd.DataFrame.from_records(rows, columns=list(COLUMNS))


def snapshot(
    collection: Any, destination: Path, query: Mapping[str, Any] | None = None
) -> tuple[Path, int]:
    """Write the matching documents to `destination` (Parquet), deterministically.

    The same content gives the same bytes, and an unchanged file is not rewritten, so the
    `ingest` stage that depends on it re-runs only when the collection's content changed.
    Returns the path and the number of rows.
    """
    chunks = list(read_collection(collection, query))
    if not chunks:
        raise MongoError(
            f"{collection.database.name}.{collection.name}: no documents match {dict(query or {})}; "
            "load some with `phishguard load FILE`"
        )
    table = canonical_table(pd.concat(chunks, ignore_index=True))
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(arrow, sink)
    data = sink.getvalue().to_pybytes()
    if not (destination.exists() and destination.read_bytes() == data):
        with atomic_path(destination) as part:
            part.write_bytes(data)
    return destination, len(table)


@dataclass(frozen=True)
class MongoSource:
    """The `data` section of params.yaml when the data comes from MongoDB (`data=mongodb`).

    The URI is never a parameter: it comes from `$MONGODB_URI`, because it may hold a password.
    """

    name: str
    database: str
    collection: str
    filter: dict[str, Any] = field(default_factory=dict)
