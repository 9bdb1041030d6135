"""API keys for the tests, made at run time in a temporary store (never committed)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from phishguard.serving.key_stores import FileKeyStore
from phishguard.serving.keys import parse_key


@dataclass(frozen=True)
class TestKeys:
    """A store with an analyst, a scorer, a reviewer and a revoked analyst key, and two wrong keys of the
    right shape: the analyst's id with another secret, and an id the store does not hold."""

    __test__ = False  # not a test class

    store: Path
    analyst: str
    scorer: str
    reviewer: str
    revoked: str
    wrong: str
    unknown: str

    def environ(self, mode: str, **settings: str) -> dict[str, str]:
        """The settings of a service in auth `mode` that reads this store."""
        return {"PHISHGUARD_AUTH": mode, "PHISHGUARD_KEYS": str(self.store), **settings}


def make_keys(folder: Path) -> TestKeys:
    store = FileKeyStore(folder / "api_keys.json")
    analyst = store.add("alice", "analyst")
    scorer = store.add("sam", "scorer")
    reviewer = store.add("rita", "reviewer")
    revoked = store.add("rex", "analyst")
    store.revoke("rex")
    key_id, _ = parse_key(analyst)
    return TestKeys(
        store=store.path,
        analyst=analyst,
        scorer=scorer,
        reviewer=reviewer,
        revoked=revoked,
        wrong=f"pg_{key_id}_{secrets.token_urlsafe(32)}",
        unknown=f"pg_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}",
    )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def with_bearer(app, key: str):
    """`app` with `Authorization: Bearer <key>` added to every HTTP request that has none, for
    clients that build their own requests (schemathesis)."""
    header = (b"authorization", f"Bearer {key}".encode())

    async def keyed(scope: Mapping, receive, send) -> None:
        if scope["type"] == "http" and not any(k == b"authorization" for k, _ in scope["headers"]):
            scope = {**scope, "headers": [*scope["headers"], header]}
        await app(scope, receive, send)

    return keyed
