"""Who may call what (issue 18): API keys checked by one small ASGI middleware, `ApiKeyAuth`.

`PHISHGUARD_AUTH` chooses what is protected:
- `writes` (the default): the write routes (`WRITE_ROUTES`, today /feedback), for the
  `analyst` role, and /feedback/review (`REVIEW_ROUTES`) for the `reviewer` role. Scoring stays open, and costs one set lookup per request;
- `all`: every route but the open ones (`OPEN_ROUTES`: health, readiness, metrics, the API
  docs and the /ui page) needs a key; scoring takes a `scorer` or an `analyst` key. A route
  added later is protected until it is declared open;
- `off`: nothing is checked, for local use only; each worker logs a warning at start.

A request sends `Authorization: Bearer <key>`. No key or a malformed header → 401 with
`WWW-Authenticate: Bearer`; a wrong or revoked key → 401; a valid key of the wrong role → 403;
each with a JSON `{"error": ...}`. On success the key's name goes to
`scope["state"]["api_key_name"]` (the request's `state` for the endpoint: the audit trail).

Timing: the key's id (`pg_<id>_<secret>`) selects the entry; an unknown or revoked id is
checked against a dummy entry of the same cost, and the derived hash is compared with
`hmac.compare_digest`. So the time to refuse a key of the right shape does not depend on
whether its id exists, and ids are random, so no name can be probed. A verified key is cached
(by its SHA-256) until the store changes, so a protected request pays PBKDF2 only once per key.

Revocation needs no restart: before checking a key the middleware looks at the store at most
once per `RELOAD_SECONDS` (1 s: a file's inode, mtime and size, or the ids and revocations in
MongoDB) and reloads it when it changed. A store that became unreadable fails closed: the
protected routes answer 503 until it is fixed. Last use is recorded at most once per
`USE_RECORD_SECONDS` (60 s) per worker, in a background thread (see
`phishguard.serving.key_stores`).

Writes are rate-limited per key (`write_rate`); past the rate, 429 with `Retry-After`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from phishguard import PhishguardError
from phishguard.serving.key_stores import KeyStore, open_key_store
from phishguard.serving.keys import ITERATIONS, ApiKey, KeyStoreError, matches, parse_key
from phishguard.serving.request_limits import ASGIApp, Receive, Scope, Send, send_error
from phishguard.serving.write_rate import TokenBuckets, WriteRate

LOG = logging.getLogger("bentoml.phishguard")
AUTH_ENV = "PHISHGUARD_AUTH"
MODES = ("writes", "all", "off")
RELOAD_SECONDS = 1.0
USE_RECORD_SECONDS = 60.0
CACHE_LIMIT = 1024

WRITE_ROUTES = frozenset({"/feedback"})
REVIEW_ROUTES = frozenset({"/feedback/review"})  # the disputed queue's decisions (issue 27)
SCORING_ROUTES = frozenset({"/predict", "/explain", "/predict_csv", "/metadata"})
OPEN_ROUTES = frozenset(
    {"/", "/healthz", "/livez", "/readyz", "/metrics", "/docs", "/docs.json", "/schema.json"}
)
OPEN_PREFIXES = ("/ui", "/static_content/")  # the web page; the docs page's files
ANALYST = ("analyst",)
REVIEWER = ("reviewer",)
ANY_ROLE = ("scorer", "analyst")


def auth_mode(environ: Mapping[str, str] = os.environ) -> str:
    """`PHISHGUARD_AUTH`, checked: writes (default), all or off."""
    mode = environ.get(AUTH_ENV, "").strip().lower() or "writes"
    if mode not in MODES:
        raise PhishguardError(f"{AUTH_ENV} must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


class Keyring:
    """The store's active keys by id, reloaded when the store changes; verifies keys."""

    def __init__(
        self, store: KeyStore, clock: Callable[[], float], reload_seconds: float = RELOAD_SECONDS
    ) -> None:
        self.store = store
        self.clock = clock
        self.reload_seconds = reload_seconds
        salt = secrets.token_bytes(16)
        # Checked when the id is unknown or revoked, so that refusing costs the same either way.
        self._dummy = ApiKey("-", "-", "-", salt.hex(), secrets.token_hex(32), ITERATIONS, "-")
        self._by_id: dict[str, ApiKey] = {}
        self._cache: dict[bytes, ApiKey] = {}
        self._version: object = None
        self._checked_at = -math.inf
        self.broken: str | None = None
        self._used: dict[str, str] = {}
        self._recorded_at = -math.inf
        self._recording: set[asyncio.Future] = set()
        self._load(store.version())
        if self.broken:
            raise KeyStoreError(self.broken)

    @property
    def entries(self) -> list[ApiKey]:
        return list(self._by_id.values())

    def refresh(self) -> None:
        """Reload the store if it changed, checking at most once per `reload_seconds`."""
        now = self.clock()
        if now - self._checked_at < self.reload_seconds:
            return
        self._checked_at = now
        version = self.store.version()
        if version != self._version or self.broken:
            self._load(version)

    def _load(self, version: object) -> None:
        try:
            entries = self.store.load()
        except KeyStoreError as error:
            if self.broken != str(error):
                LOG.error("API keys refused until the store is fixed: %s", error)
            self.broken = str(error)
            return
        self._by_id = {e.key_id: e for e in entries if e.active}
        self._cache.clear()
        self._version, self.broken = version, None

    def verify(self, key: str) -> ApiKey | None:
        """The active entry whose key is `key`, else None."""
        parsed = parse_key(key)
        if parsed is None:
            return None
        digest = hashlib.sha256(key.encode()).digest()
        if (hit := self._cache.get(digest)) is not None:
            return hit
        key_id, secret = parsed
        entry = self._by_id.get(key_id)
        candidate = entry if entry is not None else self._dummy
        if not matches(candidate, secret) or entry is None:
            return None
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[digest] = entry
        return entry

    def touch(self, name: str) -> None:
        """Note that `name` was used; hand the notes to the store at most once a minute."""
        self._used[name] = datetime.now(UTC).isoformat(timespec="seconds")
        now = self.clock()
        if now - self._recorded_at < USE_RECORD_SECONDS:
            return
        self._recorded_at = now
        used, self._used = self._used, {}
        future = asyncio.get_running_loop().run_in_executor(None, self._record, used)
        self._recording.add(future)  # keep a reference until it is done
        future.add_done_callback(self._recording.discard)

    def _record(self, used: dict[str, str]) -> None:
        try:
            self.store.record_use(used)
        except Exception as error:  # last use is a hint: it never fails a request
            LOG.warning(
                "could not record the last use of API keys in %s: %s", self.store.where, error
            )


class ApiKeyAuth:
    """ASGI middleware: the API-key check of `PHISHGUARD_AUTH` (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        environ: Mapping[str, str] | None = None,
        store: KeyStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        reload_seconds: float = RELOAD_SECONDS,
    ) -> None:
        environ = os.environ if environ is None else environ
        self.app = app
        self.mode = auth_mode(environ)
        self.buckets = TokenBuckets(WriteRate.from_env(environ), clock)
        self.keyring: Keyring | None = None
        if self.mode == "off":
            LOG.warning(
                "API keys are off (%s=off): anyone who reaches this service may write; "
                "for local use only",
                AUTH_ENV,
            )
            return
        self.keyring = Keyring(store or open_key_store(environ), clock, reload_seconds)
        if not any(e.role == "analyst" for e in self.keyring.entries):
            LOG.warning(
                "no active analyst API key in %s: every write is refused until one is added "
                "with `phishguard keys add NAME --role analyst`",
                self.keyring.store.where,
            )

    def roles_for(self, path: str) -> tuple[str, ...] | None:
        """The roles that may call `path`, or None when it is open in this mode."""
        if self.mode == "off":
            return None
        route = path.rstrip("/") or "/"
        if route in WRITE_ROUTES:
            return ANALYST
        if route in REVIEW_ROUTES:
            return REVIEWER
        if self.mode == "writes" or route in OPEN_ROUTES or route.startswith(OPEN_PREFIXES):
            return None
        return ANY_ROLE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        roles = self.roles_for(scope["path"])
        if roles is None:
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope, roles)
        if refusal is not None:
            await refusal(send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope, roles: tuple[str, ...]) -> Callable | None:
        """The answer refusing this request, or None once it is allowed (state set)."""
        assert self.keyring is not None
        path = scope["path"]
        headers = [v for k, v in scope["headers"] if k == b"authorization"]
        if not headers:
            need = " or ".join(roles)
            return _unauthorized(
                path,
                f"{path} needs an API key ({need}): send 'Authorization: Bearer <key>'; "
                f"an operator creates one with `phishguard keys add NAME --role {roles[-1]}`",
            )
        scheme, _, key = headers[0].decode("latin-1").strip().partition(" ")
        if len(headers) > 1 or scheme.lower() != "bearer" or not key.strip():
            return _unauthorized(path, "malformed Authorization header: send 'Bearer <key>'")
        self.keyring.refresh()
        if self.keyring.broken:
            return _answer(path, 503, "the API key store cannot be read; see the server log")
        entry = self.keyring.verify(key.strip())
        if entry is None:
            return _unauthorized(path, "invalid or revoked API key", invalid=True)
        if entry.role not in roles:
            return _answer(
                path,
                403,
                f"the API key {entry.name!r} has the role {entry.role!r}; "
                f"{path} needs {' or '.join(roles)}",
            )
        if roles in (ANALYST, REVIEWER) and (wait := self.buckets.take(entry.name)):
            rate = self.buckets.rate
            return _answer(
                path,
                429,
                f"too many writes with the API key {entry.name!r}: {rate.limits}; retry later",
                [(b"retry-after", str(max(1, math.ceil(round(wait, 6)))).encode())],
            )
        scope.setdefault("state", {})["api_key_name"] = entry.name
        self.keyring.touch(entry.name)
        return None


def _unauthorized(path: str, message: str, invalid: bool = False) -> Callable:
    challenge = b'Bearer realm="phishguard"' + (b', error="invalid_token"' if invalid else b"")
    return _answer(path, 401, message, [(b"www-authenticate", challenge)])


def _answer(
    path: str, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> Callable:
    """A sender of `status` with `{"error": message}`, logged as one line. The connection is
    closed: the request's body, if any, was not read."""
    LOG.warning("Refused %s: HTTP %d: %s", path[:200], status, message)

    async def respond(send: Send) -> None:
        await send_error(send, status, message, headers=tuple(headers or ()))

    return respond


def check_at_start(environ: Mapping[str, str] = os.environ) -> None:
    """Check the settings and read the key store once, before serving: a bad setting or a
    corrupt store raises a one-line PhishguardError."""
    mode = auth_mode(environ)
    WriteRate.from_env(environ)
    WriteRate.verdicts_from_env(environ)
    if mode != "off":
        open_key_store(environ).load()
