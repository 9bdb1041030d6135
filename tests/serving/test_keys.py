"""API keys and their stores (phishguard.serving.keys, key_stores) and the `phishguard keys` command.

Keys are made at run time, in temporary stores; none is committed.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mongomock_ng
import pytest

from phishguard import paths
from phishguard.cli import main
from phishguard.data import mongo
from phishguard.serving import keys
from phishguard.serving.key_stores import FileKeyStore, MongoKeyStore, open_key_store
from phishguard.serving.keys import KeyStoreError


@pytest.fixture(params=["file", "mongomock_ng", "real server"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """An empty store: a JSON file, a MongoDB collection in the stand-in, or the real server at
    MONGODB_URI (skipped without one)."""
    if request.param == "file":
        yield FileKeyStore(tmp_path / "keys" / "api_keys.json")
        return
    if request.param == "mongomock_ng":
        yield open_key_store({}, mongomock_ng.MongoClient())
        return
    uri = os.environ.get("MONGODB_URI", "").strip()
    if not uri:
        pytest.skip("MONGODB_URI is not set: no real MongoDB server (mongomock_ng covers it)")
    client = mongo.connect(uri)
    collection = client[f"phishguard_test_{uuid.uuid4().hex[:12]}"]["api_keys"]
    yield MongoKeyStore(collection)
    client.drop_database(collection.database.name)
    client.close()


def test_a_key_is_shown_once_and_only_its_salted_hash_is_kept(store) -> None:
    key = store.add("alice", "analyst")
    key_id, secret = keys.parse_key(key)
    assert key.startswith("pg_") and len(secret) == 43
    [entry] = store.load()
    assert (entry.name, entry.role, entry.key_id, entry.active) == (
        "alice",
        "analyst",
        key_id,
        True,
    )
    assert secret not in json.dumps(entry.__dict__) and entry.hash != secret
    assert keys.matches(entry, secret)
    assert not keys.matches(entry, secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    # the same secret under another salt hashes differently: a per-key salt
    other = keys.derive(secret, os.urandom(16), entry.iterations)
    assert other.hex() != entry.hash


def test_two_keys_differ_and_a_taken_name_is_refused(store) -> None:
    first, second = store.add("alice", "analyst"), store.add("bob", "scorer")
    assert first != second
    with pytest.raises(KeyStoreError, match="'alice' already exists"):
        store.add("alice", "scorer")
    with pytest.raises(KeyStoreError, match="unknown role 'admin'"):
        store.add("carol", "admin")
    with pytest.raises(KeyStoreError, match="invalid key name"):
        store.add("no spaces please", "scorer")
    assert [e.name for e in store.load()] == ["alice", "bob"]


def test_revoke_keeps_the_name_taken_and_refuses_unknown_names(store) -> None:
    store.add("alice", "analyst")
    store.add("bob", "scorer")
    store.revoke("alice")
    entries = {e.name: e for e in store.load()}
    assert not entries["alice"].active and entries["bob"].active
    with pytest.raises(KeyStoreError, match="already revoked"):
        store.revoke("alice")
    with pytest.raises(KeyStoreError, match=r"no API key named 'carol'.*active keys: bob"):
        store.revoke("carol")
    with pytest.raises(KeyStoreError, match="already exists"):
        store.add("alice", "analyst")


def test_last_use_is_kept_apart_and_only_moves_forward(store) -> None:
    store.add("alice", "analyst")
    version = store.version()
    store.record_use({"alice": "2026-11-30T10:00:00+00:00"})
    store.record_use({"alice": "2026-11-30T09:00:00+00:00"})
    assert store.last_used() == {"alice": "2026-11-30T10:00:00+00:00"}
    if isinstance(store, FileKeyStore):  # recording use does not make the service reload
        assert store.version() == version
    assert [e.name for e in store.load()] == ["alice"]


def test_the_file_is_private_and_written_atomically(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "api_keys.json")
    assert store.load() == [] and store.version() is None
    store.add("alice", "analyst")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    before = store.version()
    store.add("bob", "scorer")
    assert store.version() != before
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [".api_keys.json.lock", "api_keys.json"]  # no .part left


def valid_document(tmp_path: Path) -> dict:
    store = FileKeyStore(tmp_path / "valid.json")
    store.add("alice", "analyst")
    return json.loads(store.path.read_text())


CORRUPTIONS = [
    ("not JSON", lambda d: "{", "not JSON"),
    ("a list", lambda d: [], '"version": 1'),
    ("another version", lambda d: {**d, "version": 2}, '"version": 1'),
    ("keys not a list", lambda d: {**d, "keys": {}}, '"keys" must be a list'),
    ("entry not an object", lambda d: {**d, "keys": [1]}, "entry 0 is not an object"),
    ("no hash", lambda d: {**d, "keys": [{**d["keys"][0], "hash": ...}]}, "lacks hash"),
    ("extra field", lambda d: {**d, "keys": [{**d["keys"][0], "key": "x"}]}, "unknown fields key"),
    ("bad role", lambda d: {**d, "keys": [{**d["keys"][0], "role": "root"}]}, "unknown role"),
    ("bad salt", lambda d: {**d, "keys": [{**d["keys"][0], "salt": "zz"}]}, "must be hex"),
    ("bad id", lambda d: {**d, "keys": [{**d["keys"][0], "key_id": "1"}]}, "12 hex digits"),
    ("iterations", lambda d: {**d, "keys": [{**d["keys"][0], "iterations": "9"}]}, "iterations"),
    ("twice", lambda d: {**d, "keys": d["keys"] * 2}, "appears twice"),
]


def _add_keys(path: Path, prefix: str, count: int, start: Any) -> None:
    start.wait()
    store = FileKeyStore(path)
    for index in range(count):
        store.add(f"{prefix}{index}", "scorer")


def test_keys_added_by_two_processes_at_once_all_land(tmp_path: Path) -> None:
    """The file store's read-modify-write is locked: without the lock, two writers that read
    the same entries each write their own list and one's keys are lost."""
    path = tmp_path / "api_keys.json"
    context = multiprocessing.get_context("fork")
    start = context.Barrier(2)
    writers = [
        context.Process(target=_add_keys, args=(path, prefix, 100, start)) for prefix in "ab"
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
    assert [writer.exitcode for writer in writers] == [0, 0]
    names = {entry.name for entry in FileKeyStore(path).load()}
    assert names == {f"{prefix}{index}" for prefix in "ab" for index in range(100)}


@pytest.mark.parametrize(
    ("change", "fragment"), [c[1:] for c in CORRUPTIONS], ids=[c[0] for c in CORRUPTIONS]
)
def test_a_corrupt_file_is_one_line_naming_it_and_the_problem(tmp_path, change, fragment) -> None:
    document = change(valid_document(tmp_path))
    if isinstance(document, dict) and document.get("keys"):
        document["keys"] = [
            {k: v for k, v in e.items() if v is not ...} if isinstance(e, dict) else e
            for e in document["keys"]
        ]
    path = tmp_path / "api_keys.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    with pytest.raises(KeyStoreError) as error:
        FileKeyStore(path).load()
    message = str(error.value)
    assert message.startswith(f"{path}: corrupt API key store: ") and fragment in message
    assert "\n" not in message


def test_the_environment_chooses_the_store(tmp_path: Path) -> None:
    named = open_key_store({"PHISHGUARD_KEYS": str(tmp_path / "k.json")})
    assert isinstance(named, FileKeyStore) and named.path == tmp_path / "k.json"
    assert open_key_store({}).path == paths.KEYS_FILE
    client = mongomock_ng.MongoClient()
    in_mongo = open_key_store({}, client)
    assert in_mongo.where == "MongoDB phishguard.api_keys"
    # an explicit file wins over MongoDB
    assert isinstance(open_key_store({"PHISHGUARD_KEYS": "k.json"}, client), FileKeyStore)


def test_the_keys_file_is_git_ignored() -> None:
    from tests.support import REPO, run_tool

    result = run_tool(["git", "check-ignore", "-q", str(paths.KEYS_FILE)], REPO, check=False)
    assert result.returncode == 0


def test_keys_command_add_list_revoke(tmp_path: Path, monkeypatch, capsys) -> None:
    path = tmp_path / "api_keys.json"
    monkeypatch.setenv("PHISHGUARD_KEYS", str(path))
    main(["keys", "add", "alice", "--role", "analyst"])
    out, err = capsys.readouterr()
    key = out.strip()
    assert keys.parse_key(key) is not None and "shown only now" in err
    main(["keys", "add", "bob"])  # the default role: the least privilege
    capsys.readouterr()
    main(["keys", "list"])
    listing = capsys.readouterr().out
    lines = listing.splitlines()
    assert lines[0].split() == ["NAME", "ROLE", "CREATED", "LAST", "USED", "STATUS"]
    assert lines[1].split()[:2] == ["alice", "analyst"] and lines[1].split()[-2:] == [
        "never",
        "active",
    ]
    assert lines[2].split()[:2] == ["bob", "scorer"]
    entry = FileKeyStore(path).load()[0]
    for secret in (key, key.split("_", 2)[2], entry.salt, entry.hash):
        assert secret not in listing
    main(["keys", "revoke", "alice"])
    assert "revoked the API key 'alice'" in capsys.readouterr().err
    main(["keys", "list"])
    assert "revoked 20" in capsys.readouterr().out.splitlines()[1]
    for argv, message in [
        (["keys", "revoke", "carol"], "no API key named 'carol'"),
        (["keys", "add", "bob"], "'bob' already exists"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 1
        err = capsys.readouterr().err
        assert (
            err.startswith("phishguard: error: ") and message in err and len(err.splitlines()) == 1
        )


def test_keys_command_on_a_corrupt_store_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    path = tmp_path / "api_keys.json"
    path.write_text('{"version": 1, "keys": [')
    monkeypatch.setenv("PHISHGUARD_KEYS", str(path))
    with pytest.raises(SystemExit):
        main(["keys", "list"])
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and f"{path}: corrupt API key store: not JSON" in err
