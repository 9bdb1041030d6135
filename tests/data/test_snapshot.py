"""The training snapshot (`data.feedback: true`): the real base rows, then synthetic verdicts;
byte-stable, carried through ingest and validate with its origin, and reported by part."""

from __future__ import annotations

from pathlib import Path

import mongomock_ng
import numpy as np
import pandas as pd
import pytest

from phishguard.config.params import ParamsError
from phishguard.contract.problems import SchemaError
from phishguard.contract.schema import COLUMNS, FEATURES
from phishguard.data import mongo
from phishguard.data.ingest import ingest_file
from phishguard.data.landing import fetch
from phishguard.data.load import load_files
from phishguard.data.origin import (
    BASE,
    FEEDBACK,
    FEEDBACK_COLUMNS,
    ORIGIN,
    RECEIVED_AT,
    SUBMITTER,
    VERDICT_ID,
)
from phishguard.data.quarantine_file import quarantine_file
from phishguard.data.snapshot import NO_SUBMITTER, base_source_of, parts_report, snapshot_table
from phishguard.feedback.store import FEEDBACK_DIR_ENV, open_store
from tests.support import synthetic_rows
from tests.support.verdicts import verdict_frame


def land(tmp_path: Path, base: Path, verdicts: pd.DataFrame, feedback: bool = True) -> Path:
    data = {"name": "uci", "url": str(base), "feedback": feedback}
    landed, _ = fetch(data, tmp_path / "landing", source=str(base), verdicts=lambda: verdicts)
    return landed


def test_snapshot_is_base_rows_in_order_then_verdicts_by_time(tmp_path, dataset_path):
    verdicts = verdict_frame(synthetic_rows(40, seed=1), minutes=[7, 3] * 20)
    landed = land(tmp_path, dataset_path, verdicts.sample(frac=1, random_state=0))
    table = pd.read_parquet(landed)
    base = pd.read_csv(dataset_path)

    assert landed.name == "phishing_websites.parquet"
    assert base_source_of(landed) == "phishing_websites.csv"
    assert list(table.columns) == [*COLUMNS, ORIGIN, *FEEDBACK_COLUMNS]
    assert (table[ORIGIN] == BASE).sum() == len(base) and (table[ORIGIN] == FEEDBACK).sum() == 40
    head = table.iloc[: len(base)]
    assert np.array_equal(head[list(COLUMNS)].to_numpy(), base[list(COLUMNS)].to_numpy())
    assert head[[RECEIVED_AT, SUBMITTER, VERDICT_ID]].isna().all().all()
    tail = table.iloc[len(base) :]
    keys = list(zip(tail[RECEIVED_AT], tail[VERDICT_ID], strict=True))
    assert keys == sorted(keys) and tail[RECEIVED_AT].iloc[0] < tail[RECEIVED_AT].iloc[-1]
    assert (tail[list(COLUMNS)].dtypes == np.int8).all()


def test_fetching_again_gives_the_same_bytes_and_leaves_the_file_alone(tmp_path, dataset_path):
    verdicts = verdict_frame(synthetic_rows(25, seed=2))
    landed = land(tmp_path, dataset_path, verdicts)
    first, stamp = landed.read_bytes(), landed.stat().st_mtime_ns
    # The same verdicts again (a re-send changes nothing in the store), in another order.
    again = land(tmp_path, dataset_path, verdicts.iloc[::-1])
    assert again.read_bytes() == first and again.stat().st_mtime_ns == stamp
    other = land(tmp_path / "other", dataset_path, verdicts)
    assert other.read_bytes() == first
    grown = land(tmp_path, dataset_path, verdict_frame(synthetic_rows(26, seed=2)))
    assert grown.read_bytes() != first
    assert sorted(p.name for p in (tmp_path / "landing").iterdir()) == [grown.name]


def test_feedback_false_lands_the_source_file_as_before(tmp_path, dataset_path):
    landed = land(tmp_path, dataset_path, verdict_frame(synthetic_rows(3)), feedback=False)
    assert landed.name == "phishing_websites.csv"
    assert landed.read_bytes() == dataset_path.read_bytes()


def test_feedback_must_be_a_boolean(tmp_path, dataset_path):
    data = {"name": "uci", "url": str(dataset_path), "feedback": "yes"}
    with pytest.raises(ParamsError, match=r"data\.feedback"):
        fetch(data, tmp_path / "landing", verdicts=lambda: verdict_frame(synthetic_rows(1)))


def test_empty_store_validates_to_exactly_todays_base_rows(tmp_path, dataset_path):
    """The snapshot of an empty store, through ingest and validate, gives the same valid rows
    in the same order as the CSV itself (so the same split and the same model)."""
    landed = land(tmp_path, dataset_path, verdict_frame(synthetic_rows(0)))
    valid, hashes = {}, {}
    for name, source in (("snapshot", landed), ("csv", dataset_path)):
        raw = tmp_path / f"{name}.parquet"
        summary = ingest_file(source, raw)
        counts = quarantine_file(raw, tmp_path / f"{name}-valid.parquet", tmp_path / "q.csv")
        valid[name] = pd.read_parquet(tmp_path / f"{name}-valid.parquet")
        assert counts.input_rows == counts.valid_rows == 11_055
        hashes[name] = summary.content_sha256
        if name == "snapshot":
            hashes["base part"] = parts_report(pd.read_parquet(raw))["part_sha256"][BASE]
    # The base part's hash is the hash of the base data landed without feedback.
    assert hashes["base part"] == hashes["csv"] != hashes["snapshot"]
    assert (valid["snapshot"][ORIGIN] == BASE).all()
    pd.testing.assert_frame_equal(valid["snapshot"][list(COLUMNS)], valid["csv"])


def test_feedback_rows_are_judged_by_the_same_engine_and_counted(tmp_path, dataset_path):
    verdicts = verdict_frame(synthetic_rows(10, seed=3))
    verdicts.loc[[2, 5], "SFH"] = 7  # out of the domain {-1, 0, 1}
    landed = land(tmp_path, dataset_path, verdicts)
    ingest_file(landed, tmp_path / "raw.parquet")
    counts = quarantine_file(
        tmp_path / "raw.parquet", tmp_path / "valid.parquet", tmp_path / "quarantine.csv"
    )
    report = counts.report()
    assert report["input_rows"] == 11_065 == report["valid_rows"] + report["quarantined_rows"]
    assert report["quarantined_rows"] == 2
    assert report["quarantined_by_origin"] == {BASE: 0, FEEDBACK: 2}
    quarantined = pd.read_csv(tmp_path / "quarantine.csv")
    assert list(quarantined["row"]) == [11_055 + 3, 11_055 + 6]
    assert quarantined["reason"].str.contains("SFH").all()
    assert (quarantined[ORIGIN] == FEEDBACK).all()
    valid = pd.read_parquet(tmp_path / "valid.parquet")
    assert (valid[ORIGIN] == FEEDBACK).sum() == 8
    kept = valid[valid[ORIGIN] == FEEDBACK]
    assert set(kept[VERDICT_ID]) == set(verdicts.drop(index=[2, 5])[VERDICT_ID])


def test_parts_report_counts_sources_and_submitters_and_hashes_each_part(dataset_path):
    base = pd.read_csv(dataset_path, dtype=str)
    by_alice = verdict_frame(synthetic_rows(6, seed=4), submitter="alice")
    anonymous = verdict_frame(synthetic_rows(3, seed=5), minutes=[9, 10, 11], submitter=None)
    verdicts = pd.concat([by_alice, anonymous], ignore_index=True)
    report = parts_report(snapshot_table(base, verdicts))
    assert report["by_source"] == {BASE: 11_055, FEEDBACK: 9}
    assert report["by_submitter"] == {NO_SUBMITTER: 3, "alice": 6}
    fewer = parts_report(snapshot_table(base, by_alice))
    # More feedback changes the feedback part's hash only.
    assert fewer["part_sha256"][BASE] == report["part_sha256"][BASE]
    assert fewer["part_sha256"][FEEDBACK] != report["part_sha256"][FEEDBACK]


def test_a_missing_base_column_stays_a_schema_error(tmp_path):
    rows = synthetic_rows(20).drop(columns=["SFH"])
    rows.to_csv(tmp_path / "base.csv", index=False)
    landed = land(tmp_path, tmp_path / "base.csv", verdict_frame(synthetic_rows(2)))
    assert "SFH" not in pd.read_parquet(landed).columns
    assert set(FEATURES) - {"SFH"} <= set(pd.read_parquet(landed).columns)
    ingest_file(landed, tmp_path / "raw.parquet")
    with pytest.raises(SchemaError, match="SFH"):
        quarantine_file(tmp_path / "raw.parquet", tmp_path / "v.parquet", tmp_path / "q.csv")


def test_resending_to_the_store_leaves_the_snapshot_bytes_unchanged(
    tmp_path, dataset_path, monkeypatch
):
    """`fetch`'s default verdicts are the feedback store's (here its SQLite file); the same
    submitter re-sending its verdicts changes nothing (another's would confirm them)."""
    monkeypatch.delenv("MONGODB_URI", raising=False)
    monkeypatch.setenv(FEEDBACK_DIR_ENV, str(tmp_path / "feedback"))
    data = {"name": "uci", "url": str(dataset_path), "feedback": True}
    rows = synthetic_rows(30, seed=6)
    store = open_store()
    try:
        assert store.add(rows, source="test", submitter="alice").accepted == 30
        landed, origin = fetch(data, tmp_path / "landing")
        first = landed.read_bytes()
        stored = store.verdicts()
        again = store.add(rows.iloc[::-1], source="other", submitter="alice")
        assert (again.accepted, again.already_present) == (0, 30)
        pd.testing.assert_frame_equal(store.verdicts(), stored)
    finally:
        store.close()
    assert fetch(data, tmp_path / "landing")[0].read_bytes() == first
    assert origin.endswith("+ 30 feedback verdicts")
    table = pd.read_parquet(landed)
    assert set(table.loc[table[ORIGIN] == FEEDBACK, SUBMITTER]) == {"alice"}


class _KeptOpen:
    """A mongomock_ng client whose close() keeps the data (its own close wipes it)."""

    def __init__(self, client: mongomock_ng.MongoClient) -> None:
        self.client = client

    def __getitem__(self, name: str):
        return self.client[name]

    def close(self) -> None:
        pass


def test_a_mongodb_base_gets_the_feedback_collection_appended(tmp_path, monkeypatch):
    server = mongomock_ng.MongoClient()
    base = synthetic_rows(40, seed=7)
    base.to_csv(tmp_path / "base.csv", index=False)
    load_files([str(tmp_path / "base.csv")], server, "phishguard", "websites")
    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:9")  # read, never dialled here
    monkeypatch.setattr(mongo, "connect", lambda uri: _KeptOpen(server))
    store = open_store()
    store.add(synthetic_rows(5, seed=8), source="test", submitter="carol")
    store.close()
    data = {"name": "mongodb", "database": "phishguard", "collection": "websites"}
    landed, origin = fetch({**data, "filter": {}, "feedback": True}, tmp_path / "landing")
    table = pd.read_parquet(landed)
    assert origin == "MongoDB ($MONGODB_URI): 40 documents + 5 feedback verdicts"
    assert base_source_of(landed) == "mongodb"
    assert list(table[ORIGIN].value_counts().sort_index()) == [40, 5]
    assert set(table.loc[table[ORIGIN] == FEEDBACK, SUBMITTER]) == {"carol"}
