"""`phishguard load` into MongoDB and the MongoDB snapshot source.

Every database test runs against the in-process `mongomock_ng` stand-in (no real mongod can
be installed here) and again against a real server when MONGODB_URI is set.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mongomock_ng
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phishguard import cli
from phishguard.contract.schema import COLUMNS, SCHEMA_VERSION
from phishguard.data import mongo
from phishguard.data.ingest import ingest_file
from phishguard.data.landing import fetch_snapshot, landed_file
from phishguard.data.load import LoadCounts, content_ids, load_files
from phishguard.data.mongo import MongoError, MongoSource, snapshot
from phishguard.data.source_checks import check_file
from phishguard.data.sources import DataSourceError
from tests.support import REPO, synthetic_rows, tool_env

HEADER = ",".join(COLUMNS)


@pytest.fixture
def database() -> str:
    """A database name of its own for each test."""
    return f"phishguard_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["mongomock_ng", "real server"])
def client(request: pytest.FixtureRequest, database: str) -> Iterator[Any]:
    """A MongoDB client: mongomock_ng in-process, or the server at MONGODB_URI."""
    if request.param == "mongomock_ng":
        yield mongomock_ng.MongoClient()
        return
    uri = os.environ.get("MONGODB_URI", "").strip()
    if not uri:
        pytest.skip("MONGODB_URI is not set: no real MongoDB server (mongomock_ng run covers it)")
    real = mongo.connect(uri)
    yield real
    real.drop_database(database)
    real.close()


def write(frame: pd.DataFrame, path: Path) -> Path:
    """Write `frame` in the format named by the suffix of `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif path.suffix == ".json":
        frame.to_json(path, orient="records")
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".arff":
        lines = ["@relation phishing"]
        lines += [f"@attribute {c} {{-1,0,1}}" for c in frame.columns]
        lines += ["@data", *(",".join(map(str, r)) for r in frame.itertuples(index=False))]
        path.write_text("\n".join(lines) + "\n")
    return path


def with_duplicates(n: int, copies: int, seed: int = 0) -> pd.DataFrame:
    """`n` distinct synthetic rows followed by `copies` repeats of the first ones."""
    rows = synthetic_rows(n, seed).drop_duplicates().reset_index(drop=True)
    return pd.concat([rows, rows.head(copies)], ignore_index=True)


class KeptOpen:
    """A client whose `close()` keeps the data: mongomock_ng's own close() wipes its store,
    whereas a real server outlives each command's client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __getitem__(self, name: str) -> Any:
        return self.client[name]

    def close(self) -> None:
        pass


def assert_adds_up(counts: LoadCounts) -> None:
    assert counts.read == counts.inserted + counts.already_present + counts.quarantined


# --- loading -------------------------------------------------------------------------------


def test_loading_twice_inserts_once(client: Any, database: str, tmp_path: Path) -> None:
    rows = with_duplicates(300, 40)
    distinct = len(rows.drop_duplicates())
    source = write(rows, tmp_path / "rows.csv")

    first = load_files([str(source)], client, database, "websites", batch_size=64)
    second = load_files([str(source)], client, database, "websites", batch_size=64)

    assert first == LoadCounts(len(rows), distinct, len(rows) - distinct, 0)
    assert second == LoadCounts(len(rows), 0, len(rows), 0)
    assert client[database]["websites"].count_documents({}) == distinct


def test_documents_carry_content_id_and_provenance(
    client: Any, database: str, tmp_path: Path
) -> None:
    rows = synthetic_rows(5, seed=3).drop_duplicates().reset_index(drop=True)
    source = write(rows, tmp_path / "few.csv")
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    load_files([str(source)], client, database, "websites", now=when)

    documents = list(client[database]["websites"].find({}, sort=[("provenance.row", 1)]))
    assert len(documents) == len(rows)
    for number, (document, row) in enumerate(zip(documents, rows.to_dict("records"), strict=True)):
        values = ",".join(str(int(row[c])) for c in COLUMNS)
        assert document["_id"] == hashlib.sha256(values.encode()).hexdigest()
        assert {c: document[c] for c in COLUMNS} == {c: int(row[c]) for c in COLUMNS}
        provenance = document["provenance"]
        assert provenance["source"] == str(source.resolve())
        assert provenance["row"] == number + 1
        assert provenance["schema_version"] == SCHEMA_VERSION
        assert provenance["loaded_at"].replace(tzinfo=UTC) == when


def test_invalid_rows_are_quarantined_with_reason_and_row(
    client: Any, database: str, tmp_path: Path
) -> None:
    rows = synthetic_rows(25, seed=5).astype(str)
    rows.loc[9, "URL_Length"] = "2"  # row 10: outside {-1, 0, 1}
    rows.loc[17, "Redirect"] = "yes"  # row 18: not a number
    rows.loc[22, "Result"] = ""  # row 23: missing label
    source = write(rows, tmp_path / "mixed.csv")

    # Chunks of 7 rows: the row numbers must count across chunks.
    counts = load_files([str(source)], client, database, "websites", chunk_rows=7)
    again = load_files([str(source)], client, database, "websites", chunk_rows=7)

    assert counts.quarantined == 3 and again.quarantined == 3
    assert_adds_up(counts)
    quarantined = {d["row"]: d for d in client[database]["websites_quarantine"].find()}
    assert sorted(quarantined) == [10, 18, 23]  # not duplicated by the second load
    assert "URL_Length=2 not in {-1, 0, 1}" in quarantined[10]["reason"]
    assert quarantined[10]["values"]["URL_Length"] == "2"
    assert "Redirect='yes' is not a number" in quarantined[18]["reason"]
    assert "Result is missing" in quarantined[23]["reason"]
    assert quarantined[23]["values"]["Result"] is None
    assert all(d["source"] == str(source.resolve()) for d in quarantined.values())
    stored_rows = {d["provenance"]["row"] for d in client[database]["websites"].find()}
    assert not stored_rows & {10, 18, 23}


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl", ".parquet", ".arff"])
def test_every_format_loads_the_same_documents(
    client: Any, database: str, tmp_path: Path, suffix: str
) -> None:
    rows = synthetic_rows(40, seed=7)
    reference = write(rows, tmp_path / "reference.csv")
    other = write(rows, tmp_path / f"same{suffix}")

    load_files([str(reference)], client, database, "websites")
    counts = load_files([str(other)], client, database, "websites")

    assert counts.read == 40 and counts.inserted == 0 and counts.quarantined == 0


def test_globs_expand_to_every_matching_file(client: Any, database: str, tmp_path: Path) -> None:
    write(synthetic_rows(30, seed=1), tmp_path / "in" / "a.csv")
    write(synthetic_rows(20, seed=2), tmp_path / "in" / "b.jsonl")

    counts = load_files([str(tmp_path / "in" / "*.*")], client, database, "websites")

    assert counts.read == 50
    assert_adds_up(counts)
    sources = client[database]["websites"].distinct("provenance.source")
    assert {Path(s).name for s in sources} == {"a.csv", "b.jsonl"}


def test_real_dataset_loads_5849_documents_then_none(
    client: Any, database: str, dataset_path: Path
) -> None:
    first = load_files([str(dataset_path)], client, database, "websites")
    second = load_files([str(dataset_path)], client, database, "websites")

    assert first == LoadCounts(read=11_055, inserted=5_849, already_present=5_206, quarantined=0)
    assert second == LoadCounts(read=11_055, inserted=0, already_present=11_055, quarantined=0)
    assert client[database]["websites"].count_documents({}) == 5_849


def test_dry_run_needs_no_database(tmp_path: Path) -> None:
    rows = with_duplicates(100, 15)
    source = write(rows, tmp_path / "rows.csv")

    counts = load_files([str(source)], None, "unused", "unused")

    distinct = len(rows.drop_duplicates())
    assert counts == LoadCounts(len(rows), distinct, len(rows) - distinct, 0)


def test_content_ids_depend_on_values_only() -> None:
    rows = synthetic_rows(4, seed=9)
    reordered = rows.loc[:, list(reversed(COLUMNS))]
    assert content_ids(rows) == content_ids(reordered)
    changed = rows.copy()
    changed.loc[0, "Result"] = -changed.loc[0, "Result"]
    assert content_ids(changed)[0] != content_ids(rows)[0]
    assert content_ids(changed)[1:] == content_ids(rows)[1:]


class FlakyClient:
    """Wraps a client; every collection's `bulk_write` fails once `fail_after` calls are made."""

    def __init__(self, client: Any, fail_after: int) -> None:
        self.client, self.calls, self.fail_after = client, 0, fail_after

    def __getitem__(self, database: str) -> Any:
        flaky = self

        class Database:
            def __getitem__(self, name: str) -> Any:
                collection = flaky.client[database][name]

                class Collection:
                    def bulk_write(self, *args: Any, **kwargs: Any) -> Any:
                        from pymongo.errors import AutoReconnect

                        flaky.calls += 1
                        if flaky.calls > flaky.fail_after:
                            raise AutoReconnect("connection reset by peer\nsecond line")
                        return collection.bulk_write(*args, **kwargs)

                return Collection()

        return Database()


def test_connection_lost_mid_load_then_rerun_completes_without_duplicates(
    tmp_path: Path,
) -> None:
    rows = with_duplicates(400, 50)
    source = write(rows, tmp_path / "rows.csv")
    database = mongomock_ng.MongoClient()
    flaky = FlakyClient(database, fail_after=2)

    with pytest.raises(
        MongoError, match=r"failed \(connection reset by peer\); re-running the same load is safe"
    ) as error:
        load_files([str(source)], flaky, "d", "websites", batch_size=100)
    assert "\n" not in str(error.value)
    partial = database["d"]["websites"].count_documents({})
    assert 0 < partial < len(rows.drop_duplicates())

    counts = load_files([str(source)], database, "d", "websites", batch_size=100)

    assert counts.inserted == len(rows.drop_duplicates()) - partial
    assert_adds_up(counts)
    assert database["d"]["websites"].count_documents({}) == len(rows.drop_duplicates())


def test_progress_bar_goes_to_stderr_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(synthetic_rows(30), tmp_path / "rows.csv")
    load_files([str(source)], None, "d", "w", progress=False)
    assert capsys.readouterr().err == ""
    load_files([str(source)], None, "d", "w", progress=True)
    captured = capsys.readouterr()
    assert "rows.csv" in captured.err and " rows" in captured.err and captured.out == ""


# --- bad files -----------------------------------------------------------------------------


def _bad_file(kind: str, directory: Path) -> tuple[Path, str]:
    """A bad input of `kind` and the text its error message must contain."""
    good = synthetic_rows(5, seed=11).to_csv(index=False)
    if kind == "empty":
        return _text(directory / "empty.csv", ""), "the file is empty"
    if kind == "header only":
        return _text(directory / "header.csv", HEADER + "\n"), "a header but no rows"
    if kind == "wrong header":
        wrong = good.replace("having_IP_Address", "ip_address", 1)
        return _text(directory / "wrong.csv", wrong), "missing column having_IP_Address"
    if kind == "binary junk":
        path = directory / "junk.csv"
        path.write_bytes(bytes(range(256)) * 8)
        return path, "binary"
    if kind == "junk Parquet":
        path = directory / "junk.parquet"
        path.write_bytes(b"PAR1" + bytes(range(200)))
        return path, "not a readable Parquet file"
    if kind == "semicolon delimiter":
        return _text(directory / "semi.csv", good.replace(",", ";")), "';'-delimited"
    if kind == "truncated last line":
        return _text(directory / "cut.csv", good[: good.rindex("\n", 0, -1) + 9]), "truncated"
    if kind == "cut just after a comma":
        return _text(directory / "cut.csv", good[: good.rstrip().rindex(",") + 1]), "truncated"
    if kind == "truncated JSON line":
        lines = synthetic_rows(3, seed=1).to_json(orient="records", lines=True)
        return _text(directory / "cut.jsonl", lines.rstrip()[:-20]), "line 3 is not valid JSON"
    if kind == "unknown extension":
        return _text(directory / "rows.xlsx", good), "unknown file type '.xlsx'"
    if kind == "missing path":
        return directory / "nowhere.csv", "no such file"
    if kind == "directory":
        (directory / "folder.csv").mkdir()
        return directory / "folder.csv", "not a file"
    raise AssertionError(kind)


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BAD_KINDS = [
    "empty",
    "header only",
    "wrong header",
    "binary junk",
    "junk Parquet",
    "semicolon delimiter",
    "truncated last line",
    "cut just after a comma",
    "truncated JSON line",
    "unknown extension",
    "missing path",
    "directory",
]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_file_is_one_line_naming_it_and_nothing_is_written(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = write(synthetic_rows(20, seed=4), tmp_path / "good.csv")
    bad, expected = _bad_file(kind, tmp_path)
    database = mongomock_ng.MongoClient()
    monkeypatch.setattr(mongo, "connect", lambda uri: KeptOpen(database))

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["load", str(good), str(bad), "--uri", "mongodb://127.0.0.1:9"])

    assert exit_info.value.code == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1, error
    assert error[0].startswith(f"phishguard: error: {bad}")
    assert expected in error[0]
    assert database["phishguard"]["websites"].count_documents({}) == 0


def test_short_row_before_the_end_is_quarantined_not_fatal(tmp_path: Path) -> None:
    lines = synthetic_rows(6, seed=12).to_csv(index=False).splitlines()
    lines[3] = ",".join(lines[3].split(",")[:10])  # row 3 has only 10 fields
    source = _text(tmp_path / "short.csv", "\n".join(lines) + "\n")
    check_file(source)
    counts = load_files([str(source)], None, "unused", "unused")
    assert counts.read == 6 and counts.quarantined == 1


def test_glob_matching_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="no file matches"):
        load_files([str(tmp_path / "*.csv")], None, "unused", "unused")


# --- the command line ----------------------------------------------------------------------


def test_json_output_adds_up_and_summary_goes_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = synthetic_rows(50, seed=13).astype(str)
    rows.loc[4, "SFH"] = "7"
    source = write(rows, tmp_path / "rows.csv")
    database = mongomock_ng.MongoClient()
    monkeypatch.setattr(mongo, "connect", lambda uri: KeptOpen(database))

    cli.main(["load", str(source), "--uri", "mongodb://x", "--json", "--database", "d"])
    cli.main(["load", str(source), "--uri", "mongodb://x", "--json", "--database", "d"])

    out, err = capsys.readouterr()
    first, second = map(json.loads, out.strip().splitlines())
    distinct = len(rows.drop(index=4).drop_duplicates())
    assert first == {
        "read": 50,
        "inserted": distinct,
        "already_present": 49 - distinct,
        "quarantined": 1,
    }
    assert second == {"read": 50, "inserted": 0, "already_present": 49, "quarantined": 1}
    assert "read 50 rows into d.websites" in err


def test_no_uri_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MONGODB_URI", raising=False)
    source = write(synthetic_rows(5), tmp_path / "rows.csv")
    with pytest.raises(SystemExit):
        cli.main(["load", str(source)])
    assert "no MongoDB URI: pass --uri or set MONGODB_URI" in capsys.readouterr().err


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_server_fails_fast_with_one_line(tmp_path: Path) -> None:
    source = write(synthetic_rows(5), tmp_path / "rows.csv")
    uri = f"mongodb://loader:s3cret@127.0.0.1:{_closed_port()}/"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "phishguard.cli", "load", str(source), "--uri", uri],
        capture_output=True,
        text=True,
        env=tool_env(),
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert "cannot reach MongoDB at mongodb://loader:***@127.0.0.1" in result.stderr
    assert "within 5 s" in result.stderr and "s3cret" not in result.stderr
    assert elapsed < 20


def test_dry_run_on_the_real_file_from_the_shell(dataset_path: Path) -> None:
    env = tool_env()
    env.pop("MONGODB_URI", None)
    result = subprocess.run(
        [sys.executable, "-m", "phishguard.cli", "load", str(dataset_path), "--dry-run", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)
    assert counts == {"read": 11_055, "inserted": 5_849, "already_present": 5_206, "quarantined": 0}


def test_redact_hides_the_password() -> None:
    assert mongo.redact("mongodb://u:pw@h:1/db?x=1") == "mongodb://u:***@h:1/db?x=1"
    assert mongo.redact("mongodb://h:1") == "mongodb://h:1"
    unescaped = "mongodb://user:" + "s3#cr3t@127.0.0.1:9/"  # split: the secrets scan is right
    assert mongo.redact(unescaped) == "mongodb://user:***@127.0.0.1:9/"


RESERVED = ":/?#[]@!$&'()*+,;=%"
# Any text, made distinctive by a marker, rich in the characters a URL parser cuts at.
secrets = st.text(
    st.sampled_from(RESERVED) | st.characters(codec="utf-8"), min_size=1, max_size=20
).map(lambda text: f"S3cr{text}3T")
users = st.text(st.sampled_from("abcxyz019_.-"), min_size=1, max_size=8)
secret_options = st.sampled_from(
    [
        "authMechanismProperties=AWS_SESSION_TOKEN:{}",
        "authMechanismProperties=SERVICE_NAME:mongo,AWS_SESSION_TOKEN:{}",
        "tlsCertificateKeyFilePassword={}",
        "tlsCertificateKeyFilePassword={}&appName=x",
        "sslPEMKeyPassword={}",
    ]
)


@settings(max_examples=300, deadline=None)
@given(user=users, password=secrets, escaped=st.booleans(), tail=st.sampled_from(["", "/", "/db"]))
def test_redact_hides_any_password(user: str, password: str, escaped: bool, tail: str) -> None:
    """As written (a URL parser would stop at `/ ? #` in it) or percent-escaped, no password
    reaches the message; escaped, the host is still shown."""
    written = urllib.parse.quote_plus(password) if escaped else password
    uri = f"mongodb://{user}:{written}@db1.example:27017,db2.example:27018{tail}?w=1"
    shown = mongo.redact(uri)
    assert password not in shown and written not in shown, shown
    if escaped:
        assert shown == f"mongodb://{user}:***@db1.example:27017,db2.example:27018{tail}?w=1"
    scrubbed = mongo.scrub(f"the driver quotes {password} or {written}", uri)
    assert password not in scrubbed and written not in scrubbed


@settings(max_examples=300, deadline=None)
@given(secret=secrets, option=secret_options, escaped=st.booleans(), user=st.booleans())
def test_redact_hides_any_secret_option(secret: str, option: str, escaped: bool, user: bool):
    written = urllib.parse.quote_plus(secret) if escaped else secret
    userinfo = "u:pw@" if user else ""
    uri = f"mongodb://{userinfo}h:1/db?authMechanism=MONGODB-AWS&{option.format(written)}"
    shown = mongo.redact(uri)
    assert secret not in shown and written not in shown, shown
    scrubbed = mongo.scrub(f"bad {secret}; {written}; AWS_SESSION_TOKEN:{secret}", uri)
    assert secret not in scrubbed and written not in scrubbed


def test_connect_errors_name_no_secret() -> None:
    uri = "mongodb://u:" + "p@ss/w#rd@127.0.0.1:1/?authMechanismProperties=AWS_SESSION_TOKEN:t0k3n"
    with pytest.raises(MongoError) as failed:
        mongo.connect(uri, timeout_ms=200)
    assert "ss/w#rd" not in str(failed.value) and "t0k3n" not in str(failed.value)
    assert str(failed.value).count("\n") == 0


# --- MongoDB as the pipeline's source --------------------------------------------------------


def test_snapshot_is_deterministic_and_tracks_content(
    client: Any, database: str, tmp_path: Path
) -> None:
    rows = synthetic_rows(60, seed=21)
    load_files([str(write(rows, tmp_path / "rows.csv"))], client, database, "websites")
    collection = client[database]["websites"]

    path, count = snapshot(collection, tmp_path / "a.parquet")
    again, _ = snapshot(collection, tmp_path / "b.parquet")
    assert path.read_bytes() == again.read_bytes()
    table = pd.read_parquet(path)
    assert list(table.columns) == list(COLUMNS) and count == len(rows.drop_duplicates())
    ids = sorted(content_ids(table))
    assert content_ids(table) == ids  # sorted by _id

    # Loading the same rows again, from another file, changes nothing.
    load_files([str(write(rows, tmp_path / "copy.jsonl"))], client, database, "websites")
    snapshot(collection, tmp_path / "b.parquet")
    assert (tmp_path / "b.parquet").read_bytes() == path.read_bytes()

    # New content changes the bytes.
    load_files(
        [str(write(synthetic_rows(3, 99), tmp_path / "new.csv"))], client, database, "websites"
    )
    snapshot(collection, tmp_path / "b.parquet")
    assert (tmp_path / "b.parquet").read_bytes() != path.read_bytes()


def test_snapshot_filter_and_landing(client: Any, database: str, tmp_path: Path) -> None:
    rows = synthetic_rows(80, seed=22)
    load_files([str(write(rows, tmp_path / "rows.csv"))], client, database, "websites")
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "phishing_websites.csv").write_text("stale")

    source = MongoSource("mongodb", database, "websites", {"Result": -1})
    path, count = fetch_snapshot(source, landing, client)

    assert sorted(p.name for p in landing.iterdir()) == ["phishing_websites.parquet"]
    assert count == len(rows.drop_duplicates().query("Result == -1"))
    landed = landed_file(landing)
    ingest_file(landed, tmp_path / "raw.parquet")
    table = pd.read_parquet(tmp_path / "raw.parquet")
    assert landed == path and (table["Result"] == -1).all() and len(table) == count


def test_empty_selection_is_a_clear_error(client: Any, database: str, tmp_path: Path) -> None:
    source = MongoSource("mongodb", database, "nothing_here", {})
    with pytest.raises(MongoError, match="no documents match"):
        fetch_snapshot(source, tmp_path, client)


def test_fetch_with_data_mongodb_snapshots_the_collection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from phishguard.config.compose import compose_params

    conf = REPO / "conf"
    params = compose_params(["data=mongodb"], conf)
    assert "name: mongodb" in params and "collection: websites" in params
    database = mongomock_ng.MongoClient()
    rows = synthetic_rows(30, seed=23)
    load_files([str(write(rows, tmp_path / "rows.csv"))], database, "phishguard", "websites")
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(params)
    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:9")
    monkeypatch.setattr(mongo, "connect", lambda uri: KeptOpen(database))

    cli.main(["fetch"])

    landed = tmp_path / "data" / "landing" / "phishing_websites.parquet"
    assert len(pd.read_parquet(landed)) == len(rows.drop_duplicates())


@pytest.mark.e2e
def test_pipeline_trains_from_a_mongodb_snapshot(
    tmp_path: Path, dataset_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """data=mongodb end to end: load, snapshot, `dvc repro`; re-fetching unchanged documents
    leaves DVC up to date, a new document makes `ingest` stale."""
    from phishguard.config.params import section
    from phishguard.data.landing import fetch as fetch_params
    from tests.support import clone_project, run_tool

    database = mongomock_ng.MongoClient()
    load_files([str(dataset_path)], database, "phishguard", "websites")
    workdir = clone_project(tmp_path / "clone")
    run_tool(["phishguard", "params", "data=mongodb"], workdir)
    data = section("data", workdir / "params.yaml")
    landing = workdir / "data" / "landing"

    def fetch() -> int:
        landed, _ = fetch_params(data, landing, connect=lambda uri: KeptOpen(database))
        return len(pd.read_parquet(landed))

    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:9")  # read, never dialled here
    # data.feedback: the feedback store is then the (empty) `feedback` collection there too
    monkeypatch.setattr(mongo, "connect", lambda uri: KeptOpen(database))
    assert fetch() == 5_849
    run_tool(["dvc", "repro"], workdir)
    report = json.loads((workdir / "reports" / "validation.json").read_text())
    assert report["input_rows"] == 5_849 and report["exact_duplicate_rows"] == 0

    fetch()
    assert "up to date" in run_tool(["dvc", "status"], workdir).stdout

    extra = synthetic_rows(1, seed=424242)
    load_files([str(write(extra, tmp_path / "extra.csv"))], database, "phishguard", "websites")
    fetch()
    status = run_tool(["dvc", "status"], workdir).stdout
    assert "ingest" in status and "modified:" in status and "data/landing" in status
