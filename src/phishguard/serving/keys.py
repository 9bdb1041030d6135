"""API keys (issue 18): make them, check them, validate stored entries.

A key reads `pg_<id>_<secret>`: `id` (12 hex digits) names the stored entry, `secret` is
`secrets.token_urlsafe(32)` (256 random bits). It is printed once by `phishguard keys add` and
never stored: an entry keeps the name, the role, the id, a random per-key salt, the derived
hash and the creation time (`revoked_at` once revoked; a revoked name stays taken, so a name in
the audit trail always means one key). Where the entries live is `key_stores`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from phishguard import PhishguardError

ROLES = ("analyst", "scorer", "reviewer")
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
