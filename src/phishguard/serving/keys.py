"""API keys (issue 18): make them, keep only their salted hashes, look them up, revoke them.

A key reads `pg_<id>_<secret>`: `id` (12 hex digits) names the stored entry, `secret` is
`secrets.token_urlsafe(32)` (256 random bits). It is printed once by `phishguard keys add` and
never stored: an entry keeps the name, the role, the id, a random per-key salt, the derived
hash and the creation time (`revoked_at` once revoked; a revoked name stays taken, so a name in
the audit trail always means one key).

Where the entries live (`open_key_store`): the JSON file `$PHISHGUARD_KEYS` if set, else the
MongoDB collection `phishguard.api_keys` if `$MONGODB_URI` is set, else `paths.KEYS_FILE`
(.phishguard/api_keys.json, git-ignored, mode 0600). The file is rewritten atomically, under a
lock beside it (`.<store>.lock`) so that two `keys add` at once both land; a corrupt one is a
one-line `KeyStoreError` naming the file and the problem.

Last use is kept apart from the keys: the service records it at most once a minute per worker
(`record_use`), in the side file `<store>.last_used.json` or in the MongoDB entries, so serving
never rewrites the key file (whose change is what makes the service reload the keys).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from phishguard import PhishguardError, paths
from phishguard.io import atomic_path, exclusive_lock

KEYS_ENV = "PHISHGUARD_KEYS"
MONGO_DATABASE = "phishguard"
MONGO_COLLECTION = "api_keys"
ROLES = ("analyst", "scorer")
PREFIX = "pg_"
ID_HEX_DIGITS = 12
SECRET_BYTES = 32
FORMAT_VERSION = 1
# PBKDF2-HMAC-SHA256 with a per-key 16-byte random salt, and few iterations on purpose. Slow
# key derivation protects guessable secrets (passwords); a key's secret is 256 random bits,
# which no number of iterations makes harder or easier to guess. The salt still makes equal
# hashes impossible across stores, and a leaked store useless for precomputed tables. Every
# protected request derives once (`Keyring` caches hits), so the cost must stay small: 1,000
# iterations ≈ 0.4 ms on this machine; scrypt's defaults ≈ 80 ms, a CPU-exhaustion lever for
# anyone sending wrong keys. The count is stored per key, so it can be raised later.
ITERATIONS = 1_000
SALT_BYTES = 16

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_KEY = re.compile(rf"{PREFIX}([0-9a-f]{{{ID_HEX_DIGITS}}})_([A-Za-z0-9_-]{{43}})")
_HEX = re.compile(r"(?:[0-9a-f]{2})+")


class KeyStoreError(PhishguardError):
    """The key store cannot be read or changed; the message names the store and the problem."""


@dataclass(frozen=True)
class ApiKey:
    """One stored key: everything but the key itself."""

    name: str
    role: str
    key_id: str
    salt: str  # hex
    hash: str  # hex: derive(secret, salt, iterations)
    iterations: int
    created_at: str  # UTC ISO-8601
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def derive(secret: str, salt: bytes, iterations: int) -> bytes:
    """The stored hash of a key's secret."""
    return hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, iterations)


def parse_key(key: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed key, else None."""
    match = _KEY.fullmatch(key)
    return (match.group(1), match.group(2)) if match else None


def matches(entry: ApiKey, secret: str) -> bool:
    """Whether `secret` is the secret of `entry` (constant time in the secret)."""
    derived = derive(secret, bytes.fromhex(entry.salt), entry.iterations)
    return hmac.compare_digest(derived, bytes.fromhex(entry.hash))


def new_entry(name: str, role: str, taken: list[ApiKey]) -> tuple[ApiKey, str]:
    """A new entry named `name` and its key (shown once), refusing a bad or taken name."""
    check_name(name)
    if role not in ROLES:
        raise KeyStoreError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if any(entry.name == name for entry in taken):
        raise KeyStoreError(
            f"an API key named {name!r} already exists (names are never reused, revoked or "
            "not); choose another name"
        )
    ids = {entry.key_id for entry in taken}
    key_id = secrets.token_hex(ID_HEX_DIGITS // 2)
    while key_id in ids:
        key_id = secrets.token_hex(ID_HEX_DIGITS // 2)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    salt = secrets.token_bytes(SALT_BYTES)
    entry = ApiKey(
        name=name,
        role=role,
        key_id=key_id,
        salt=salt.hex(),
        hash=derive(secret, salt, ITERATIONS).hex(),
        iterations=ITERATIONS,
        created_at=now(),
    )
    return entry, f"{PREFIX}{key_id}_{secret}"


def check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise KeyStoreError(
            f"invalid key name {name!r}: 1-64 letters, digits, '.', '_', '-' or '@', "
            "starting with a letter or digit"
        )


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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


def revocable(entries: list[ApiKey], name: str, where: str) -> ApiKey:
    """The active entry named `name`, or a clear error."""
    for entry in entries:
        if entry.name == name:
            if not entry.active:
                raise KeyStoreError(
                    f"the API key {name!r} was already revoked at {entry.revoked_at}"
                )
            return entry
    known = ", ".join(e.name for e in entries if e.active) or "none"
    raise KeyStoreError(f"no API key named {name!r} in {where} (active keys: {known})")


def checked_entries(documents: list[Any]) -> list[ApiKey]:
    """The entries of `documents`, or ValueError naming the first bad one and what is wrong."""
    entries, names, ids = [], set(), set()
    for index, document in enumerate(documents):
        where = f"entry {index}"
        if not isinstance(document, dict):
            raise ValueError(f"{where} is not an object")
        expected = set(ApiKey.__dataclass_fields__)
        if missing := expected - {"revoked_at"} - set(document):
            raise ValueError(f"{where} lacks {', '.join(sorted(missing))}")
        if unknown := set(document) - expected:
            raise ValueError(f"{where} has unknown fields {', '.join(sorted(unknown))}")
        entry = ApiKey(**document)
        where = f"entry {index} ({entry.name!r})"
        text_fields = (entry.name, entry.role, entry.key_id, entry.salt, entry.hash)
        if not all(isinstance(v, str) for v in (*text_fields, entry.created_at)):
            raise ValueError(f"{where}: name, role, key_id, salt, hash and created_at are text")
        if not _NAME.fullmatch(entry.name):
            raise ValueError(f"{where}: invalid name")
        if entry.role not in ROLES:
            raise ValueError(f"{where}: unknown role {entry.role!r}")
        if not re.fullmatch(f"[0-9a-f]{{{ID_HEX_DIGITS}}}", entry.key_id):
            raise ValueError(f"{where}: key_id must be {ID_HEX_DIGITS} hex digits")
        if not (_HEX.fullmatch(entry.salt) and _HEX.fullmatch(entry.hash)):
            raise ValueError(f"{where}: salt and hash must be hex")
        if type(entry.iterations) is not int or entry.iterations < 1:
            raise ValueError(f"{where}: iterations must be a positive integer")
        if entry.revoked_at is not None and not isinstance(entry.revoked_at, str):
            raise ValueError(f"{where}: revoked_at must be text or null")
        if entry.name in names or entry.key_id in ids:
            raise ValueError(f"{where}: the name or key_id appears twice")
        names.add(entry.name)
        ids.add(entry.key_id)
        entries.append(entry)
    return entries


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
