"""Every reader yields the same canonical table; bad files get one readable line."""

import functools
import http.server
import json
import threading
from pathlib import Path

import pandas as pd
import pytest

from phishguard.contract.schema import COLUMNS, DOMAINS, content_sha256
from phishguard.data.ingest import canonical_table, ingest_file
from phishguard.data.landing import DATA_ENV, choose_source, fetch, fetch_file, landed_file
from phishguard.data.sources import DataSourceError, iter_chunks, read_table
from tests.support import synthetic_rows


def write_arff(table: pd.DataFrame, path: Path) -> None:
    """Write `table` as ARFF with nominal attributes, the way UCI publishes the dataset."""
    lines = ["@relation phishing", ""]
    for name in table.columns:
        lines.append(f"@attribute {name} {{ {','.join(map(str, DOMAINS[name]))} }}")
    lines += ["", "@data"]
    lines += table.astype(str).agg(",".join, axis=1).tolist()
    path.write_text("\n".join(lines) + "\n")


def ingested(path: Path, chunk_rows: int = 50_000) -> pd.DataFrame:
    """What the ingest stage writes for `path`, read back."""
    out = path.with_name(path.name + ".raw.parquet")
    summary = ingest_file(path, out, chunk_rows)
    table = pd.read_parquet(out)
    assert summary.rows == len(table)
    assert summary.columns == list(table.columns)
    assert summary.content_sha256 == content_sha256(table)
    return table


def write_all_formats(table: pd.DataFrame, directory: Path) -> dict[str, Path]:
    paths = {
        suffix: directory / f"data.{suffix}"
        for suffix in ("csv", "json", "jsonl", "arff", "parquet")
    }
    table.to_csv(paths["csv"], index=False)
    paths["json"].write_text(json.dumps(table.to_dict(orient="records")))
    table.to_json(paths["jsonl"], orient="records", lines=True)
    write_arff(table, paths["arff"])
    table.to_parquet(paths["parquet"], index=False)
    return paths


def test_all_formats_give_the_identical_canonical_table(tmp_path, real_table):
    table = real_table.astype("int64")
    hashes = set()
    for path in write_all_formats(table, tmp_path).values():
        canonical = ingested(path)
        assert canonical.equals(canonical_table(read_table(path)))
        assert list(canonical.columns) == list(COLUMNS)
        assert len(canonical) == 11_055
        assert (canonical.dtypes == "int8").all()
        hashes.add(content_sha256(canonical))
    assert len(hashes) == 1


def test_same_rows_in_another_format_give_identical_raw_bytes(tmp_path):
    table = synthetic_rows(300)
    written = {}
    for suffix, path in write_all_formats(table, tmp_path).items():
        out = tmp_path / f"raw-{suffix}.parquet"
        ingest_file(path, out)
        written[suffix] = out.read_bytes()
    assert len(set(written.values())) == 1


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_ingest_in_chunks_gives_the_whole_file_canonical_table(tmp_path, suffix):
    table = synthetic_rows(1000).astype(object)
    table.loc[950, "SFH"] = "x"  # a text value in the last chunk makes the whole column text
    table.loc[10, "port"] = "1.0"
    path = tmp_path / f"rows.{suffix}"
    if suffix == "csv":
        table.to_csv(path, index=False)
    elif suffix == "jsonl":
        table.to_json(path, orient="records", lines=True)
    else:
        table.astype("string").to_parquet(path, index=False, row_group_size=100)
    whole = canonical_table(read_table(path))
    assert whole["SFH"].dtype == "string" and whole["port"].dtype == "int8"
    chunked = ingested(path, chunk_rows=128)
    pd.testing.assert_frame_equal(chunked, whole, check_dtype=False)
    assert [str(t) for t in chunked.dtypes] == [str(t) for t in whole.dtypes]


def test_a_column_missing_from_early_chunks_is_text_with_missing_cells(tmp_path):
    records = synthetic_rows(6).to_dict(orient="records")
    records[5]["comment"] = "late"
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    table = ingested(path, chunk_rows=2)
    assert list(table.columns) == [*COLUMNS, "comment"]
    assert table["comment"].isna().sum() == 5 and table.at[5, "comment"] == "late"


def test_csv_is_read_in_chunks(tmp_path):
    synthetic_rows(1000).to_csv(tmp_path / "d.csv", index=False)
    sizes = [len(c) for c in iter_chunks(tmp_path / "d.csv", chunk_rows=300)]
    assert sizes == [300, 300, 300, 100]


def test_canonical_table_keeps_bad_values_as_text_and_orders_columns():
    rows = synthetic_rows(4).astype(object)
    rows.loc[0, "SFH"] = "abc"
    rows = rows[list(reversed(rows.columns))].assign(extra="z")
    canonical = canonical_table(rows)
    assert list(canonical.columns) == [*COLUMNS, "extra"]
    assert canonical["SFH"].dtype == "string"
    assert canonical["SFH"].iloc[0] == "abc"
    assert canonical["Result"].dtype == "int8"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "the file is empty"),
        ("blank.csv", b"\n\n  \n", "the file is empty"),
        ("junk.csv", bytes(range(256)) * 4, "binary"),
        ("semi.csv", b"a;b;c\n1;2;3\n", "';'-delimited"),
        ("nul.csv", b"a,b\n" + b"1,2\n" * 300_000 + b"1,\0\0\n", "a NUL byte on line 300002"),
        ("bad-header.csv", b'a,"b\n1,2\n', "the header is not valid CSV"),
        ("long-header.csv", b"a" * (2 << 20), "the first line is over"),
        ("data.txt", b"a,b\n1,2\n", "unknown file type '.txt'"),
        ("noext", b"a,b\n", "unknown file type '(no extension)'"),
        ("bad.json", b"{not json", "not valid JSON"),
        ("obj.json", b'{"a": 1}', "expected a JSON array of objects"),
        ("bad.jsonl", b'{"a": 1}\n[1, 2]\n', "line 2 is not a JSON object"),
        ("bad.arff", b"@relation x\n@attribute a {0,1}\n", "no @data section"),
        (
            "short.arff",
            b"@attribute a {0,1}\n@attribute b {0,1}\n@data\n1\n",
            "has 1 values, expected 2",
        ),
        ("bad.parquet", b"PAR1 this is not parquet", "not a readable Parquet file"),
        ("latin.csv", b"a,b\n\xe9\xe9,1\n", "not UTF-8"),
    ],
)
def test_bad_files_get_one_clear_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataSourceError) as raised:
        read_table(path)
    text = str(raised.value)
    assert message in text
    assert str(path) in text
    assert "\n" not in text


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataSourceError, match="no such file"):
        read_table(tmp_path / "absent.csv")


def test_bom_and_crlf_are_fine(tmp_path):
    path = tmp_path / "bom.csv"
    text = synthetic_rows(5).to_csv(index=False, lineterminator="\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    table = canonical_table(read_table(path))
    assert list(table.columns) == list(COLUMNS)
    assert len(table) == 5


@pytest.fixture
def http_server(tmp_path):
    """A static file server on 127.0.0.1 serving tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_downloads_over_http(tmp_path, http_server):
    root, base = http_server
    write_arff(synthetic_rows(40), root / "Training Dataset.arff")
    landing = tmp_path / "landing"
    landed = fetch_file(f"{base}/Training%20Dataset.arff", landing)
    assert landed == landing / "phishing_websites.arff"
    assert landed_file(landing) == landed
    assert len(ingested(landed)) == 40


def test_fetch_reports_http_errors_and_names_the_variable(tmp_path, http_server):
    _, base = http_server
    with pytest.raises(DataSourceError) as raised:
        fetch_file(f"{base}/missing.arff", tmp_path / "landing")
    assert "HTTP 404" in str(raised.value)
    assert DATA_ENV in str(raised.value)


def test_fetch_unreachable_names_the_variable(tmp_path):
    with pytest.raises(DataSourceError) as raised:
        fetch_file("http://127.0.0.1:9/data.arff", tmp_path / "landing")
    assert "unreachable" in str(raised.value)
    assert DATA_ENV in str(raised.value)


def test_fetch_keeps_exactly_one_landed_file(tmp_path):
    rows = synthetic_rows(10)
    rows.to_csv(tmp_path / "a.csv", index=False)
    rows.to_parquet(tmp_path / "a.parquet", index=False)
    landing = tmp_path / "landing"
    fetch_file(str(tmp_path / "a.csv"), landing)
    fetch_file(str(tmp_path / "a.parquet"), landing)
    assert [p.name for p in landing.iterdir()] == ["phishing_websites.parquet"]
    assert landed_file(landing).suffix == ".parquet"


def test_empty_landing_says_what_to_do(tmp_path):
    with pytest.raises(DataSourceError, match="make data"):
        landed_file(tmp_path)


def test_environment_variable_wins_over_the_configured_url():
    assert choose_source("https://example.invalid/x.arff", {DATA_ENV: "/d/x.csv"}) == "/d/x.csv"
    assert choose_source("https://example.invalid/x.arff", {}) == "https://example.invalid/x.arff"


def test_header_only_file_is_an_error(tmp_path):
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "phishing_websites.csv").write_text(",".join(COLUMNS) + "\n")
    with pytest.raises(DataSourceError, match="a header but no rows"):
        ingest_file(landed_file(tmp_path / "landing"), tmp_path / "raw.parquet")
    assert not (tmp_path / "raw.parquet").exists()


def test_fetch_dispatches_over_the_sources_in_order(tmp_path, monkeypatch):
    rows = synthetic_rows(5)
    given, configured = tmp_path / "given.csv", tmp_path / "configured.csv"
    rows.to_csv(given, index=False)
    rows.to_csv(configured, index=False)
    data = {"name": "uci", "url": str(configured)}
    landing = tmp_path / "landing"
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert fetch(data, landing) == (landing / "phishing_websites.csv", f"{configured} (data.url)")
    monkeypatch.setenv(DATA_ENV, str(given))
    assert fetch(data, landing)[1] == f"{given} ({DATA_ENV})"
    assert fetch(data, landing, source=str(configured))[1] == str(configured)


def test_a_wrong_path_on_the_command_line_does_not_blame_phishing_data(tmp_path, monkeypatch):
    """`phishguard fetch <wrong path>` with PHISHING_DATA never set (issue 29)."""
    monkeypatch.delenv(DATA_ENV, raising=False)
    missing = str(tmp_path / "typo.csv")
    with pytest.raises(DataSourceError) as raised:
        fetch({"url": "https://example.invalid/x.arff"}, tmp_path / "landing", missing)
    assert DATA_ENV not in str(raised.value)
    assert str(raised.value).startswith(f"{missing}: no such file; give the path of")


def test_a_wrong_phishing_data_is_named_with_what_to_do(tmp_path, monkeypatch):
    missing = str(tmp_path / "typo.csv")
    monkeypatch.setenv(DATA_ENV, missing)
    with pytest.raises(DataSourceError, match=f"{DATA_ENV}={missing}: no such file; point"):
        fetch({"url": "https://example.invalid/x.arff"}, tmp_path / "landing")
