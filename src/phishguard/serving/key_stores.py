"""Where the API keys' entries live, and the `phishguard keys` commands.

`open_key_store`: the JSON file `$PHISHGUARD_KEYS` if set, else the MongoDB collection
`phishguard.api_keys` if `$MONGODB_URI` is set, else `paths.KEYS_FILE` (.phishguard/api_keys.json,
git-ignored, mode 0600). The file is rewritten atomically, under a lock beside it
(`.<store>.lock`) so that two `keys add` at once both land; a corrupt one is a one-line
`KeyStoreError` naming the file and the problem.

Last use is kept apart from the keys: the service records it at most once a minute per worker
(`record_use`), in the side file `<store>.last_used.json` or in the MongoDB entries, so serving
never rewrites the key file (whose change is what makes the service reload the keys).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from phishguard import paths
from phishguard.io import atomic_path, exclusive_lock
from phishguard.serving.keys import (
    FORMAT_VERSION,
    ApiKey,
    KeyStoreError,
    checked_entries,
    new_entry,
    now,
    revocable,
)

KEYS_ENV = "PHISHGUARD_KEYS"
MONGO_DATABASE = "phishguard"
MONGO_COLLECTION = "api_keys"


class KeyStore(Protocol):
    """Where the entries live: a JSON file or a MongoDB collection."""

    where: str

    def load(self) -> list[ApiKey]: ...
    def version(self) -> object: ...
    def add(self, name: str, role: str) -> str: ...
    def revoke(self, name: str) -> ApiKey: ...
    def record_use(self, used: Mapping[str, str]) -> None: ...
    def last_used(self) -> dict[str, str]: ...


class FileKeyStore:
    """The entries in one JSON file, rewritten atomically with mode 0600."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        self.used_path = self.path.with_name(f"{self.path.stem}.last_used.json")
        self.lock_path = self.path.with_name(f".{self.path.name}.lock")

    def version(self) -> object:
        """Changes whenever the file is replaced or edited (None while it does not exist)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def load(self) -> list[ApiKey]:
        """The entries; none while the file does not exist."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as error:
            raise self._corrupt(f"cannot read it ({error})") from None
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise self._corrupt(f"not JSON ({error})") from None
        if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
            raise self._corrupt(f'expected an object with "version": {FORMAT_VERSION}')
        if not isinstance(document.get("keys"), list):
            raise self._corrupt('"keys" must be a list')
        try:
            return checked_entries(document["keys"])
        except ValueError as error:
            raise self._corrupt(str(error)) from None

    def add(self, name: str, role: str) -> str:
        with exclusive_lock(self.lock_path):  # two `keys add` at once must both land
            entries = self.load()
            entry, key = new_entry(name, role, entries)
            self._write([*entries, entry])
        return key

    def revoke(self, name: str) -> ApiKey:
        with exclusive_lock(self.lock_path):
            entries = self.load()
            entry = revocable(entries, name, self.where)
            revoked = ApiKey(**{**asdict(entry), "revoked_at": now()})
            self._write([revoked if e.name == name else e for e in entries])
        return revoked

    def record_use(self, used: Mapping[str, str]) -> None:
        """Merge `used` (name → time) into the side file, keeping the latest time per name."""
        with exclusive_lock(self.lock_path):  # service workers write it too
            merged = self.last_used()
            for name, when in used.items():
                merged[name] = max(when, merged.get(name, ""))
            with atomic_path(self.used_path) as part:
                part.write_text(json.dumps(merged, indent=1, sort_keys=True), encoding="utf-8")

    def last_used(self) -> dict[str, str]:
        try:
            used = json.loads(self.used_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # missing or damaged: last use is a hint, not a record
            return {}
        if not isinstance(used, dict):
            return {}
        return {str(k): v for k, v in used.items() if isinstance(v, str)}

    def _write(self, entries: list[ApiKey]) -> None:
        document = {"version": FORMAT_VERSION, "keys": [asdict(e) for e in entries]}
        with atomic_path(self.path) as part:
            part.chmod(0o600)
            part.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")

    def _corrupt(self, what: str) -> KeyStoreError:
        return KeyStoreError(
            f"{self.path}: corrupt API key store: {what}; restore it from a backup, or move "
            "it away and add the keys again with `phishguard keys add`"
        )


class MongoKeyStore:
    """The entries in a MongoDB collection, one document per key with `_id` = its name."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection
        self.where = f"MongoDB {collection.database.name}.{collection.name}"

    def version(self) -> object:
        """Changes when a key is added, removed or revoked (one small projection query)."""
        fields = {"key_id": 1, "revoked_at": 1}
        found = self.collection.find({}, fields, sort=[("_id", 1)])
        return tuple((d["_id"], d.get("key_id"), d.get("revoked_at")) for d in found)

    def load(self) -> list[ApiKey]:
        documents = [
            {k: v for k, v in d.items() if k not in ("_id", "last_used_at")}
            for d in self.collection.find({}, sort=[("_id", 1)])
        ]
        try:
            return checked_entries(documents)
        except ValueError as error:
            raise KeyStoreError(f"{self.where}: corrupt API key store: {error}") from None

    def add(self, name: str, role: str) -> str:
        from pymongo.errors import DuplicateKeyError  # pymongo: ~0.8 s, only with MongoDB

        entry, key = new_entry(name, role, self.load())
        try:
            self.collection.insert_one({"_id": name, **asdict(entry)})
        except DuplicateKeyError:  # added by someone else meanwhile
            raise KeyStoreError(f"an API key named {name!r} already exists") from None
        return key

    def revoke(self, name: str) -> ApiKey:
        entry = revocable(self.load(), name, self.where)
        revoked = ApiKey(**{**asdict(entry), "revoked_at": now()})
        self.collection.update_one({"_id": name}, {"$set": {"revoked_at": revoked.revoked_at}})
        return revoked

    def record_use(self, used: Mapping[str, str]) -> None:
        for name, when in used.items():
            self.collection.update_one({"_id": name}, {"$max": {"last_used_at": when}})

    def last_used(self) -> dict[str, str]:
        found = self.collection.find({"last_used_at": {"$exists": True}}, {"last_used_at": 1})
        return {d["_id"]: d["last_used_at"] for d in found}


def open_key_store(environ: Mapping[str, str] = os.environ, mongo_client: Any = None) -> KeyStore:
    """The store configured by the environment (see the module docstring)."""
    configured = environ.get(KEYS_ENV, "").strip()
    if configured:
        return FileKeyStore(Path(configured))
    if mongo_client is None and environ.get("MONGODB_URI", "").strip():
        # data.mongo brings pandas and pyarrow (~1.5 s): imported only when MongoDB is used.
        from phishguard.data.mongo import connect, uri_from_env

        mongo_client = connect(uri_from_env(None, environ))
    if mongo_client is not None:
        collection = mongo_client[MONGO_DATABASE][MONGO_COLLECTION]
        collection.create_index("key_id", unique=True)
        return MongoKeyStore(collection)
    return FileKeyStore(paths.KEYS_FILE)


def add_command(name: str, role: str) -> None:
    """`phishguard keys add`: print the new key (once) on stdout, the advice on stderr."""
    store = open_key_store()
    key = store.add(name, role)
    print(key)
    print(
        f"phishguard: added the {role} key {name!r} to {store.where}; it is shown only now: "
        "send it as 'Authorization: Bearer <key>'",
        file=sys.stderr,
    )


def list_command() -> None:
    """`phishguard keys list`: name, role, created, last used and status; never keys or hashes."""
    store = open_key_store()
    entries, used = store.load(), store.last_used()
    if not entries:
        print(f"no API keys in {store.where}; add one with `phishguard keys add NAME`")
        return
    rows = [("NAME", "ROLE", "CREATED", "LAST USED", "STATUS")]
    for entry in entries:
        status = "active" if entry.active else f"revoked {entry.revoked_at}"
        rows.append(
            (entry.name, entry.role, entry.created_at, used.get(entry.name, "never"), status)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)]
        print("  ".join([*cells, row[4]]))


def revoke_command(name: str) -> None:
    """`phishguard keys revoke`: the key stops working within the service's reload interval."""
    store = open_key_store()
    store.revoke(name)
    print(f"phishguard: revoked the API key {name!r} in {store.where}", file=sys.stderr)
