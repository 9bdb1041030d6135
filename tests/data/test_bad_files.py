"""A corpus of malformed inputs through the pipeline's file path (ingest → validate).

Each case either fails with one clear line naming the file, or is quarantined with a reason,
and the row counts always add up. The corpus is generated here, never copied from the data.
"""

import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phishguard.contract.csv_reader import BLOCK_BYTES
from phishguard.contract.problems import SchemaError
from phishguard.contract.schema import COLUMNS, MAX_CELL_CHARS
from phishguard.data.ingest import ingest_file
from phishguard.data.quarantine_file import quarantine_file
from phishguard.data.sources import DataSourceError
from phishguard.data.validate import ValidationResult
from phishguard.io import spreadsheet_safe
from tests.support import synthetic_rows

HEADER = ",".join(COLUMNS)


def good_lines(n: int, seed: int = 1) -> list[str]:
    return synthetic_rows(n, seed).astype(str).agg(",".join, axis=1).tolist()


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def validate_file(path: Path) -> tuple[int, ValidationResult]:
    """What the ingest and validate stages make of `path`: rows read, valid and quarantined."""
    raw, valid, bad = (path.with_name(name) for name in ("raw.parquet", "v.parquet", "q.csv"))
    ingested = ingest_file(path, raw, chunk_rows=3)
    counts = quarantine_file(raw, valid, bad, chunk_rows=2)
    quarantined = pd.read_csv(bad, dtype=str, keep_default_na=False).astype({"row": int})
    assert ingested.rows == counts.input_rows == counts.valid_rows + counts.quarantined_rows
    assert counts.quarantined_rows == len(quarantined)
    return ingested.rows, ValidationResult(pd.read_parquet(valid), quarantined)


def with_cell(line: str, column: str, value: str) -> str:
    cells = line.split(",")
    cells[COLUMNS.index(column)] = value
    return ",".join(cells)


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("URL_Length", "2", "URL_Length=2 not in {-1, 0, 1}"),
        ("port", "-2", "port=-2 not in {-1, 1}"),
        ("SFH", "0.5", "SFH=0.5 not in {-1, 0, 1}"),
        ("Redirect", "", "Redirect is missing"),
        ("Redirect", "NaN", "Redirect='NaN' is not a number"),
        ("Favicon", "yes", "Favicon='yes' is not a number"),
        ("Favicon", "True", "Favicon='True' is not a number"),
        ("Result", "99999999999999999999", "Result=99999999999999999999 not in {-1, 1}"),
    ],
)
def test_out_of_domain_cells_are_quarantined_with_the_reason(tmp_path, column, value, reason):
    lines = good_lines(9)
    lines[4] = with_cell(lines[4], column, value)
    read, result = validate_file(write(tmp_path, "d.csv", "\n".join([HEADER, *lines]) + "\n"))
    assert read == len(result.valid) + len(result.quarantined) == 9
    assert result.quarantined["row"].tolist() == [5]
    assert result.quarantined["reason"].tolist() == [reason]


def test_quoted_numbers_crlf_and_bom_are_valid(tmp_path):
    lines = [",".join(f'"{v}"' for v in line.split(",")) for line in good_lines(6)]
    text = "\ufeff" + "\r\n".join([HEADER, *lines]) + "\r\n"
    read, result = validate_file(write(tmp_path, "d.csv", text))
    assert read == len(result.valid) == 6


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.integers(min_value=1), newline=st.booleans())
def test_a_last_line_cut_anywhere_stops_ingest_with_one_line(tmp_path, cut, newline):
    """Cut inside the last line, including just after a comma (the count then matches)."""
    lines = good_lines(5)
    last = lines[-1][: 1 + cut % (lines[-1].rindex(",") + 1)]  # up to the last comma
    if newline and not last.endswith(","):
        last += "\n"  # a short last line is a cut even with its line break
    directory = Path(tempfile.mkdtemp(dir=tmp_path))
    path = write(directory, "d.csv", "\n".join([HEADER, *lines[:-1], last]))
    with pytest.raises(DataSourceError) as raised:
        validate_file(path)
    assert "the last line is truncated" in str(raised.value)
    assert "\n" not in str(raised.value)
    assert sorted(p.name for p in directory.iterdir()) == ["d.csv"]


def ragged(line: str, draw_extra: int, at: int) -> str:
    """`line` with `draw_extra` cells inserted at `at` (or, when negative, cells removed)."""
    cells = line.split(",")
    if draw_extra > 0:
        cells[at:at] = ["1"] * draw_extra
    else:
        del cells[at : at - draw_extra]
    return ",".join(cells)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    changes=st.dictionaries(
        st.integers(0, 8),
        st.tuples(st.integers(-30, 40).filter(bool), st.integers(0, 30)),
        min_size=1,
        max_size=5,
    )
)
def test_rows_with_extra_or_missing_cells_are_quarantined_never_shifted(tmp_path, changes):
    lines = good_lines(10, seed=7)
    expected = {}
    for index, (extra, at) in changes.items():
        lines[index] = ragged(lines[index], extra, min(at, 31 + min(extra, 0)))
        expected[index + 1] = f"has {31 + extra} fields but the header has 31"
    read, result = validate_file(
        write(Path(tempfile.mkdtemp(dir=tmp_path)), "d.csv", "\n".join([HEADER, *lines]) + "\n")
    )
    assert read == 10
    assert (
        dict(zip(result.quarantined["row"], result.quarantined["reason"], strict=True)) == expected
    )
    untouched = [i for i in range(10) if i + 1 not in expected]
    valid = result.valid.astype(str).agg(",".join, axis=1).tolist()
    assert valid == [lines[i] for i in untouched]  # every other row keeps its own values


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(column=st.sampled_from(COLUMNS), length=st.integers(MAX_CELL_CHARS + 1, 3 * BLOCK_BYTES))
def test_a_long_cell_is_quarantined_naming_row_and_field(tmp_path, column, length):
    lines = good_lines(6)
    lines[2] = with_cell(lines[2], column, "9" * length)
    read, result = validate_file(
        write(Path(tempfile.mkdtemp(dir=tmp_path)), "d.csv", "\n".join([HEADER, *lines]) + "\n")
    )
    assert read == 6 and result.quarantined["row"].tolist() == [3]
    reason = result.quarantined["reason"].iloc[0]
    assert (
        reason.startswith(f"field {column!r} has ") and f"the limit is {MAX_CELL_CHARS}" in reason
    )
    assert len(reason) < 200


def test_nul_bytes_after_a_valid_prefix_stop_ingest(tmp_path):
    prefix = "\n".join([HEADER, *good_lines(20_000)]) + "\n"  # 1.8 MB: past the first block
    path = write(tmp_path, "d.csv", prefix.encode() + b"\0" * (3 * BLOCK_BYTES))
    with pytest.raises(DataSourceError, match="a NUL byte on line 20002; the file is binary"):
        ingest_file(path, tmp_path / "raw.parquet")
    assert not (tmp_path / "raw.parquet").exists()


@pytest.mark.parametrize(
    ("name", "text", "error", "message"),
    [
        ("header.csv", HEADER + "\n", DataSourceError, "a header but no rows"),
        (
            "dup.csv",
            HEADER + ",SFH\n" + "\n".join(good_lines(2)),
            DataSourceError,
            "duplicated column(s) SFH",
        ),
        ("wrong.csv", "a,b,c\n1,2,3\n", SchemaError, "missing column having_IP_Address"),
        (
            "extra.csv",
            HEADER + ",note\n" + "\n".join(f"{x},hi" for x in good_lines(2)),
            SchemaError,
            "unexpected column(s) 'note'",
        ),
        (
            "fewer.csv",
            "\n".join(line.replace(",Iframe", "") for line in [HEADER, HEADER]),
            SchemaError,
            "missing column Iframe",
        ),
        ("semicolons.csv", HEADER.replace(",", ";") + "\n", DataSourceError, "';'-delimited"),
        ("junk.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", DataSourceError, "binary"),
        ("data.xlsx", "whatever", DataSourceError, "unknown file type '.xlsx'"),
    ],
)
def test_file_level_problems_are_one_clear_error(tmp_path, name, text, error, message):
    path = write(tmp_path, name, text)
    with pytest.raises(error) as raised:
        validate_file(path)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
    assert not {"v.parquet", "q.csv"} & {p.name for p in tmp_path.iterdir()}  # nothing validated


def test_json_booleans_and_nulls_are_quarantined(tmp_path):
    import json

    records = synthetic_rows(4).to_dict(orient="records")
    records[1]["Favicon"] = True
    records[2]["SFH"] = None
    records[3]["port"] = "1"
    read, result = validate_file(write(tmp_path, "d.json", json.dumps(records, default=int)))
    assert read == 4
    assert dict(zip(result.quarantined["row"], result.quarantined["reason"], strict=True)) == {
        2: "Favicon='True' is not a number",
        3: "SFH is missing",
    }


formula_cells = st.builds(
    str.__add__, st.sampled_from(["=", "+", "-", "@", "\t"]), st.text(min_size=1, max_size=20)
).filter(
    # A NUL makes the whole file binary: a different class, refused as a whole (tested above).
    lambda cell: (
        "\n" not in cell and "\r" not in cell[1:] and "\0" not in cell and cell.strip(" ") == cell
    )
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cell=st.one_of(
        formula_cells, st.sampled_from(["=cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0"])
    )
)
def test_formula_cells_are_escaped_in_the_quarantine_file(tmp_path, cell):
    """OWASP CSV injection: a quarantined cell that a spreadsheet would run gets a leading '."""
    lines = good_lines(4)
    lines[1] = with_cell(lines[1], "SFH", '"' + cell.replace('"', '""') + '"')
    directory = Path(tempfile.mkdtemp(dir=tmp_path))
    path = write(directory, "d.csv", "\n".join([HEADER, *lines]) + "\n")
    raw, valid, bad = (directory / name for name in ("raw.parquet", "v.parquet", "q.csv"))
    ingest_file(path, raw)
    quarantine_file(raw, valid, bad)
    written = pd.read_csv(bad, dtype=str, keep_default_na=False)
    if cell.strip().lstrip("+-").replace(".", "", 1).isdigit():
        return  # a plain number (e.g. "-2"): not a formula, written as is
    assert written.at[0, "SFH"] == "'" + cell
    other = written.drop(columns=["row", "SFH", "reason"]).iloc[0]
    assert set(other) <= {"-1", "0", "1"}  # numbers such as -1 are never escaped


def test_spreadsheet_safe_escapes_text_formulas_but_not_numbers():
    table = pd.DataFrame(
        {
            "cell": [
                "=1+1",
                "@SUM(A1)",
                "+cmd",
                "-cmd",
                "\t=1",
                "\r=1",
                "-1",
                "+1",
                "-0.5",
                "1e5",
                "x",
            ]
        }
    )
    assert spreadsheet_safe(table)["cell"].tolist() == [
        "'=1+1", "'@SUM(A1)", "'+cmd", "'-cmd", "'\t=1", "'\r=1", "-1", "+1", "-0.5", "1e5", "x"
    ]  # fmt: skip
