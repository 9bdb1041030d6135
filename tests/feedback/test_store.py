"""The feedback store: append-only, idempotent by content, in SQLite or MongoDB."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mongomock_ng
import numpy as np
import pytest

from phishguard.contract.schema import COLUMNS, FEATURES, SCHEMA_VERSION
from phishguard.data import mongo
from phishguard.data.load import content_ids
from phishguard.feedback import mongo_store
from phishguard.feedback import store as store_module
from phishguard.feedback.mongo_store import MongoFeedbackStore
from phishguard.feedback.store import (
    COLLECTION,
    FEEDBACK_DIR_ENV,
    SQLITE_NAME,
    VERDICT_COLUMNS,
    FeedbackStore,
    SqliteFeedbackStore,
    open_store,
)
from tests.support import REPO, synthetic_rows, tool_env


@pytest.fixture(params=["sqlite", "mongomock_ng", "real server"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FeedbackStore]:
    """Each backend: the SQLite file, MongoDB in-process, and a real server at MONGODB_URI."""
    if request.param == "sqlite":
        opened: FeedbackStore = SqliteFeedbackStore(tmp_path / SQLITE_NAME)
        yield opened
        opened.close()
        return
    database = f"phishguard_test_{uuid.uuid4().hex[:12]}"
    if request.param == "mongomock_ng":
        yield MongoFeedbackStore(mongomock_ng.MongoClient()[database][COLLECTION])
        return
    uri = os.environ.get("MONGODB_URI", "").strip()
    if not uri:
        pytest.skip("MONGODB_URI is not set: no real MongoDB server (mongomock_ng run covers it)")
    client = mongo.connect(uri)
    yield MongoFeedbackStore(client[database][COLLECTION])
    client.drop_database(database)
    client.close()


def test_the_same_verdict_twice_is_stored_once_and_the_first_arrival_kept(store) -> None:
    rows = synthetic_rows(6, seed=1)
    first = store.add(rows, "api", "alice")
    assert (first.accepted, first.already_present) == (6, 0) and all(first.new)
    assert first.ids == content_ids(rows)
    again = store.add(rows.iloc[[4, 1, 1]], "cli", "bob")
    assert (again.accepted, again.already_present) == (0, 3) and not any(again.new)
    stored = store.verdicts()
    assert list(stored.columns) == list(VERDICT_COLUMNS) and len(stored) == 6
    assert set(stored["submitter"]) == {"alice"} and set(stored["source"]) == {"api"}
    assert (stored["schema_version"] == SCHEMA_VERSION).all()
    assert sorted(stored["verdict_id"]) == sorted(first.ids)
    assert stored[list(COLUMNS)].dtypes.eq(np.int8).all()
    by_id = stored.set_index("verdict_id").loc[first.ids, list(COLUMNS)]
    np.testing.assert_array_equal(by_id.to_numpy(), rows[list(COLUMNS)].to_numpy())


def test_a_repeat_within_one_call_counts_as_already_present(store) -> None:
    rows = synthetic_rows(3, seed=2).iloc[[0, 1, 0, 2]]
    added = store.add(rows, "api")
    assert added.new == [True, True, False, True]
    assert (added.accepted, added.already_present) == (3, 1)


def test_a_different_label_is_a_different_verdict(store) -> None:
    rows = synthetic_rows(1, seed=3)
    flipped = rows.assign(Result=-rows["Result"])
    assert store.add(rows, "api").accepted == 1 and store.add(flipped, "api").accepted == 1
    assert len(store.verdicts()) == 2


def test_verdicts_are_ordered_by_arrival_then_id_with_row_fields(store) -> None:
    early = synthetic_rows(3, seed=4).assign(note=["a", None, "c"], source=[None, "ui", None])
    late = synthetic_rows(2, seed=5).assign(prediction_id=["r-0", "r-1"])
    store.add(early, "api", None)
    store.add(late, "cli", "carol")
    stored = store.verdicts()
    assert stored["received_at"].is_monotonic_increasing
    assert stored["received_at"].str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$").all()
    first_three = stored.iloc[:3]
    assert first_three["verdict_id"].is_monotonic_increasing
    notes = dict(zip(first_three["verdict_id"], first_three["note"], strict=True))
    assert notes == dict(zip(content_ids(early), ["a", None, "c"], strict=True))
    sources = dict(zip(first_three["verdict_id"], first_three["source"], strict=True))
    assert sources == dict(zip(content_ids(early), ["api", "ui", "api"], strict=True))
    assert stored.iloc[3:]["prediction_id"].tolist() == sorted(
        ["r-0", "r-1"], key=dict(zip(["r-0", "r-1"], content_ids(late), strict=True)).get
    )


def test_resending_changes_neither_rows_nor_the_sqlite_files(tmp_path: Path) -> None:
    store = open_store({FEEDBACK_DIR_ENV: str(tmp_path)})
    rows = synthetic_rows(50, seed=6)
    store.add(rows, "api")

    def data_files() -> dict[str, str]:  # the -shm file is SQLite's shared-memory index
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in tmp_path.iterdir()
            if not p.name.endswith("-shm")
        }

    before = data_files()
    assert store.add(rows, "api").accepted == 0
    assert data_files() == before  # not even the write-ahead log grew
    store.close()  # checkpoints the log into the database file
    closed = data_files()
    reopened = open_store({FEEDBACK_DIR_ENV: str(tmp_path)})
    assert reopened.add(rows.iloc[::-1], "cli").accepted == 0
    assert len(reopened.verdicts()) == 50
    reopened.close()
    assert data_files() == closed


def test_the_mongodb_document_carries_load_s_provenance() -> None:
    collection = mongomock_ng.MongoClient()["phishguard"][COLLECTION]
    rows = synthetic_rows(1, seed=7).assign(note=["looked at it"])
    MongoFeedbackStore(collection).add(rows, "api", "alice")
    document = collection.find_one({})
    assert document["_id"] == content_ids(rows)[0]
    assert {name: document[name] for name in COLUMNS} == rows[list(COLUMNS)].iloc[0].to_dict()
    provenance = document["provenance"]
    assert provenance["source"] == "api" and provenance["schema_version"] == SCHEMA_VERSION
    assert provenance["submitter"] == "alice" and provenance["note"] == "looked at it"
    assert provenance["received_at"] is not None
    assert next(mongo.read_collection(collection)).columns.tolist() == list(COLUMNS)


def test_open_store_picks_mongodb_when_the_uri_is_set(monkeypatch, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}
    client = mongomock_ng.MongoClient()

    def connect(uri: str) -> Any:
        seen["uri"] = uri
        return client

    monkeypatch.setattr(mongo, "connect", connect)
    store = open_store({"MONGODB_URI": "mongodb://127.0.0.1:1", FEEDBACK_DIR_ENV: str(tmp_path)})
    assert isinstance(store, MongoFeedbackStore) and store.where == "phishguard.feedback"
    assert seen["uri"] == "mongodb://127.0.0.1:1" and not list(tmp_path.iterdir())


_WRITER = """
import sys
from phishguard.feedback.store import open_store
from tests.support import synthetic_rows
store = open_store()
rows = synthetic_rows(400, seed=int(sys.argv[1]))
for start in range(0, 400, 20):
    store.add(rows.iloc[start:start + 20], "api", sys.argv[2])
store.close()
"""


def test_two_processes_writing_at_once_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    env = {**tool_env(), FEEDBACK_DIR_ENV: str(tmp_path)}
    # Both write the same rows (seed 8) in 20 transactions each, interleaving.
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, "8", name],
            cwd=REPO,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("one", "two")
    ]
    for writer in writers:
        _, errors = writer.communicate(timeout=120)
        assert writer.returncode == 0, errors
    store = open_store({FEEDBACK_DIR_ENV: str(tmp_path)})
    stored = store.verdicts()
    expected = set(content_ids(synthetic_rows(400, seed=8)))
    assert len(stored) == len(expected) and set(stored["verdict_id"]) == expected
    assert set(stored["submitter"]) <= {"one", "two"}
    assert stored[list(FEATURES)].notna().all().all()
    store.close()


def test_assertions_and_reviews_in_either_backend(store: FeedbackStore, monkeypatch) -> None:
    """Issue 27: a second submitter's same verdict is recorded as an assertion of its own, a
    submitter's newer other verdict on the record moves a re-sent one forward, and reviews
    are kept (latest stands; an unknown id records nothing)."""
    clock = iter(datetime(2026, 12, 1, tzinfo=UTC) + timedelta(seconds=s) for s in range(10))
    for module in (store_module, mongo_store):
        monkeypatch.setattr(module, "received_now", lambda: next(clock))
    row = synthetic_rows(1, seed=41)
    flipped = row.assign(Result=-row["Result"])
    store.add(row.assign(champion_phishing=[0.25]), "api", "alice")  # 0 s
    store.add(row, "api", "bob")  # 1 s: a confirmation, not swallowed
    store.add(flipped, "api", "alice")  # 2 s
    store.add(row, "api", "alice")  # 3 s: alice's newest again
    store.add(row, "api", "bob")  # 4 s: bob re-sends: nothing newer of his, nothing moves
    table = store.assertions().set_index(["verdict_id", "submitter"])
    first, other = content_ids(row)[0], content_ids(flipped)[0]
    assert table.loc[(first, "alice"), "received_at"] == "2026-12-01T00:00:03.000Z"
    assert table.loc[(first, "bob"), "received_at"] == "2026-12-01T00:00:01.000Z"
    assert table.loc[(other, "alice"), "received_at"] == "2026-12-01T00:00:02.000Z"
    assert table.loc[(first, "bob"), "champion_phishing"] == 0.25  # the first arrival's
    assert store.review({first: "approve", "nope": "reject"}, "rita") == ["nope"]
    assert store.assertions()["review"].isna().all()
    assert store.review({first: "reject"}, "rita") == []
    assert store.review({first: "approve"}, "rita") == []
    reviews = store.assertions().set_index(["verdict_id", "submitter"])["review"]
    assert reviews[(first, "alice")] == reviews[(first, "bob")] == "approved"
    assert reviews.isna().sum() == 1  # the flipped verdict
