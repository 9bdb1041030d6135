"""`phishguard predict`: chunked batch scoring with rejects, same checks as the service."""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phishguard import PhishguardError
from phishguard.contract.schema import FEATURES
from phishguard.data.validate import quarantine
from phishguard.io import atomic_path
from phishguard.monitoring.log_reader import read_log
from phishguard.monitoring.prediction_log import PredictionLog
from phishguard.serving.batch import WaitingLog, predict_file, score_table
from phishguard.serving.scoring import Scorer
from tests.support import REPO, run_tool, synthetic_rows, tool_env


def dirty_table(n: int, seed: int) -> pd.DataFrame:
    """Rows as a CSV reader hands them over, with three invalid ones."""
    table = synthetic_rows(n, seed).astype(str)
    table.loc[3, "SFH"] = "2"
    table.loc[n // 2, "port"] = "x"
    table.loc[n - 1, "Redirect"] = ""
    return table


def test_counts_add_up_and_rejects_have_reasons(scorer, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    dirty_table(1000, 30).to_csv(source, index=False)
    summary = predict_file(scorer, source, tmp_path / "out.csv", tmp_path / "rej.csv", 128)
    scored = pd.read_csv(tmp_path / "out.csv")
    rejected = pd.read_csv(tmp_path / "rej.csv")
    assert (summary.rows, summary.scored, summary.rejected) == (1000, 997, 3)
    assert len(scored) + len(rejected) == 1000
    assert sorted(scored["row"].tolist() + rejected["row"].tolist()) == list(range(1, 1001))
    assert rejected["row"].tolist() == [4, 501, 1000]
    assert rejected["reason"].tolist() == [
        "SFH=2 not in {-1, 0, 1}",
        "port='x' is not a number",
        "Redirect is missing",
    ]


def test_chunking_does_not_change_results(scorer, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    dirty_table(700, 31).to_csv(source, index=False)
    predict_file(scorer, source, tmp_path / "a.csv", tmp_path / "ra.csv", 1000)
    predict_file(scorer, source, tmp_path / "b.csv", tmp_path / "rb.csv", 64)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv"))
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "ra.csv"), pd.read_csv(tmp_path / "rb.csv")
    )


def test_parquet_in_and_out_match_the_scorer(scorer, tmp_path: Path) -> None:
    table = synthetic_rows(300, 32)  # typed ints, Result included (ignored)
    table.to_parquet(tmp_path / "in.parquet", index=False)
    summary = predict_file(
        scorer, tmp_path / "in.parquet", tmp_path / "out.parquet", tmp_path / "rej.csv", 100
    )
    assert (summary.scored, summary.rejected) == (300, 0)
    out = pd.read_parquet(tmp_path / "out.parquet")
    expected = scorer.probability(table.loc[:, list(FEATURES)].to_numpy(dtype=np.float32))
    np.testing.assert_array_equal(out["phishing_probability"].to_numpy(), expected)
    assert out["row"].tolist() == list(range(1, 301))
    assert pd.read_csv(tmp_path / "rej.csv").empty


def test_wrong_columns_stop_with_a_clear_error(scorer) -> None:
    table = synthetic_rows(5, 33).rename(columns={"Favicon": "favicon_x"})
    with pytest.raises(Exception, match="missing column Favicon"):
        score_table(scorer, table)


def test_cli_end_to_end(package_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "sites.csv"
    dirty_table(50, 34).to_csv(source, index=False)
    output = tmp_path / "scores.csv"
    done = run_tool(
        ["phishguard", "predict", str(source), "-o", str(output), "--model", str(package_dir)],
        REPO,
    )
    assert "scored 47 of 50 rows" in done.stderr
    assert "\r" not in done.stderr  # no progress bar when stderr is not a terminal
    assert len(pd.read_csv(output)) == 47
    assert len(pd.read_csv(tmp_path / "scores.rejects.csv")) == 3


def test_cli_errors_are_one_line(package_dir: Path, tmp_path: Path) -> None:
    done = run_tool(
        [
            "phishguard",
            "predict",
            str(tmp_path / "nope.csv"),
            "-o",
            str(tmp_path / "o.csv"),
            "--model",
            str(package_dir),
        ],
        REPO,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("phishguard: error:")
    assert "no such file" in done.stderr
    assert "Traceback" not in done.stderr


def test_header_only_is_an_error_and_writes_nothing(scorer, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(",".join(FEATURES) + "\n")
    with pytest.raises(PhishguardError, match="no rows to score"):
        predict_file(scorer, source, tmp_path / "out.csv", tmp_path / "rej.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_a_file_broken_half_way_leaves_no_partial_output(scorer, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    lines = dirty_table(15_000, 35).to_csv(index=False).splitlines()
    lines[14_000] += "\0"  # binary: the reader stops in the second block (after 1 MiB)
    source.write_text("\n".join(lines) + "\n")
    (tmp_path / "out.csv").write_text("earlier results\n")
    with pytest.raises(PhishguardError, match="a NUL byte on line 14001"):
        predict_file(scorer, source, tmp_path / "out.csv", tmp_path / "rej.csv", 5_000)
    assert (tmp_path / "out.csv").read_text() == "earlier results\n"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]


def test_wrong_columns_in_a_file_name_the_file(scorer, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    synthetic_rows(5, 36).drop(columns="Iframe").to_csv(source, index=False)
    with pytest.raises(PhishguardError, match=r"in\.csv: schema error: missing column Iframe"):
        predict_file(scorer, source, tmp_path / "out.csv", tmp_path / "rej.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    changes=st.dictionaries(
        st.integers(0, 39), st.tuples(st.integers(-29, 60).filter(bool), st.integers(0, 29))
    )
)
def test_rows_with_extra_or_missing_cells_are_rejected_never_scored(scorer, tmp_path, changes):
    """pandas alone took surplus leading cells as the index and scored the shifted row."""
    directory = Path(tempfile.mkdtemp(dir=tmp_path))
    table = synthetic_rows(40, 37).loc[:, list(FEATURES)]
    lines = table.astype(str).agg(",".join, axis=1).tolist()
    for index, (extra, at) in changes.items():
        cells = lines[index].split(",")
        if extra > 0:
            cells[at:at] = ["1"] * extra
        else:
            del cells[min(at, 30 + extra) : min(at, 30 + extra) - extra]
        lines[index] = ",".join(cells)
    source = directory / "in.csv"
    source.write_text("\n".join([",".join(FEATURES), *lines]) + "\n")
    summary = predict_file(scorer, source, directory / "o.csv", directory / "r.csv", 16)
    rejected = pd.read_csv(directory / "r.csv")
    expected = {
        i + 1: f"has {30 + extra} fields but the header has 30" for i, (extra, _) in changes.items()
    }
    assert (summary.rows, summary.rejected) == (40, len(changes))
    assert dict(zip(rejected["row"], rejected["reason"], strict=True)) == expected
    scored = pd.read_csv(directory / "o.csv")
    kept = table.iloc[scored["row"].to_numpy() - 1].to_numpy(dtype=np.float32)
    np.testing.assert_allclose(scored["phishing_probability"], scorer.probability(kept), rtol=1e-6)


def test_one_cell_appended_to_every_row_scores_nothing(scorer, tmp_path: Path) -> None:
    lines = synthetic_rows(300, 38).to_csv(index=False).splitlines()
    (tmp_path / "in.csv").write_text("\n".join([lines[0], *(f"{x},1" for x in lines[1:])]))
    summary = predict_file(scorer, tmp_path / "in.csv", tmp_path / "o.csv", tmp_path / "r.csv")
    assert (summary.rows, summary.scored, summary.rejected) == (300, 0, 300)
    assert set(pd.read_csv(tmp_path / "r.csv")["reason"]) == {"has 32 fields but the header has 31"}


def test_a_long_cell_is_rejected_naming_the_field(scorer, tmp_path: Path) -> None:
    table = synthetic_rows(50, 39).astype(str)
    table.loc[7, "port"] = "1" * 100_000
    table.to_csv(tmp_path / "in.csv", index=False)
    summary = predict_file(scorer, tmp_path / "in.csv", tmp_path / "o.csv", tmp_path / "r.csv")
    assert (summary.scored, summary.rejected) == (49, 1)
    rejected = pd.read_csv(tmp_path / "r.csv")
    assert rejected["reason"].tolist() == ["field 'port' has 100000 characters; the limit is 64"]
    assert (tmp_path / "r.csv").stat().st_size < 1_000  # the cell is not copied into the rejects


def test_sigterm_during_predict_leaves_no_part_files(package_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "big.csv"
    synthetic_rows(300_000, 40).to_csv(source, index=False)
    command = ["phishguard", "predict", str(source), "-o", str(tmp_path / "out.csv")]
    process = subprocess.Popen(
        [*command, "--model", str(package_dir), "--chunk-rows", "2000"],
        cwd=REPO,
        env=tool_env(REPO),
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".*.part")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.glob(".*.part")), "predict never started writing"
    time.sleep(0.5)  # mid-way through the chunks
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv"]  # no .part, no output


def test_the_cli_logs_exactly_the_rows_it_scored(package_dir: Path, tmp_path: Path) -> None:
    """`phishguard predict` appends every scored row to the prediction log (source `batch`,
    one id for the run), and no rejected row."""
    source = tmp_path / "sites.csv"
    dirty_table(50, 34).to_csv(source, index=False)
    output, log_dir = tmp_path / "scores.csv", tmp_path / "predictions"
    run_tool(
        ["phishguard", "predict", str(source), "-o", str(output), "--model", str(package_dir)],
        REPO,
        PHISHGUARD_PREDICTION_LOG=str(log_dir),
    )
    logged, scored = read_log(log_dir), pd.read_csv(output)
    assert [p.suffix for p in log_dir.iterdir()] == [".parquet"]  # one file, no hidden part
    assert len(logged) == len(scored) == 47
    assert set(logged["source"]) == {"batch"} and logged["request_id"].nunique() == 1
    batch_id = logged["request_id"].iloc[0]
    assert logged["prediction_id"].tolist() == [f"{batch_id}-{row}" for row in scored["row"]]
    assert np.allclose(logged["probability"], scored["phishing_probability"])
    clean = dirty_table(50, 34).iloc[scored["row"] - 1].loc[:, list(FEATURES)].astype(int)
    assert (logged.loc[:, list(FEATURES)].to_numpy() == clean.to_numpy()).all()


def test_prediction_log_off_logs_nothing(package_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "sites.csv"
    dirty_table(20, 3).to_csv(source, index=False)
    run_tool(
        [
            "phishguard",
            "predict",
            str(source),
            "-o",
            str(tmp_path / "out.csv"),
            "--model",
            str(package_dir),
        ],
        tmp_path,
        PHISHGUARD_PREDICTION_LOG="off",
    )
    assert not list(tmp_path.rglob("*predictions-*"))


def mixed_parquet_table(n: int, seed: int, with_text: bool) -> pa.Table:
    """Typed rows as Parquet holds them, with bad cells of every typed kind: nulls, values out
    of domain (257 wraps to 1 in int8), floats (1.0 valid, 0.5 not) and, `with_text`, a text
    column (" 1" valid, "x" not)."""
    table = synthetic_rows(n, seed).loc[:, list(FEATURES)]
    columns = {name: pa.array(table[name].to_numpy()) for name in FEATURES}
    sfh = table["SFH"].astype(object)
    sfh[[3, n // 2]] = [None, 2]
    columns["SFH"] = pa.array(sfh.tolist(), pa.int8())
    favicon = table["Favicon"].to_numpy(dtype=np.int64)
    favicon[[7, 8]] = [257, -129]
    columns["Favicon"] = pa.array(favicon)
    port = table["port"].to_numpy(dtype=np.float64)
    port[[11, 12, n - 1]] = [0.5, np.nan, np.inf]
    columns["port"] = pa.array(port)
    url_length = table["URL_Length"].to_numpy(dtype=np.float64)
    url_length[13] = -0.0  # valid: scored as 0
    columns["URL_Length"] = pa.array(url_length)
    columns["Iframe"] = pa.array(table["Iframe"].astype(float).mask(table.index == 17).tolist())
    if with_text:
        redirect = table["Redirect"].astype(str)
        redirect[[21, 22, 23]] = [" 1", "x", ""]
        columns["Redirect"] = pa.array(redirect.tolist())
    return pa.table(columns)


@pytest.mark.parametrize("with_text", [False, True], ids=["typed", "with-text"])
def test_parquet_and_csv_score_a_mixed_file_as_the_check_engine_does(
    scorer, tmp_path: Path, with_text: bool
) -> None:
    """The fast paths (numpy verdicts, Arrow batches) give what judging every row with
    `quarantine` gives: the same rows rejected with the same reasons, the same row numbers,
    bit-identical probabilities; and the CSV of the same rows gives the same."""
    table = mixed_parquet_table(1000, 41, with_text)
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=300)
    frame = table.to_pandas()
    # As a person writes it: integers without ".0" (SFH has a missing cell, so pandas has it
    # as floats).
    frame.astype({"SFH": "Int64"}).to_csv(tmp_path / "in.csv", index=False)
    checked = quarantine(frame, FEATURES)  # the reference: every row through the judge
    expected_rejects = checked.quarantined.loc[:, ["row", "reason"]]
    assert len(expected_rejects) == (10 if with_text else 8)
    valid_rows = np.setdiff1d(np.arange(1, 1001), expected_rejects["row"])
    expected = scorer.probability(checked.valid.loc[:, list(FEATURES)].to_numpy(np.float32))
    for source, output in (("in.parquet", "out.parquet"), ("in.csv", "out.csv")):
        summary = predict_file(
            scorer, tmp_path / source, tmp_path / output, tmp_path / f"{output}.rej.csv", 128
        )
        assert (summary.rows, summary.rejected) == (1000, len(expected_rejects)), source
        out = pd.read_parquet if output.endswith(".parquet") else pd.read_csv
        scored, rejected = out(tmp_path / output), pd.read_csv(tmp_path / f"{output}.rej.csv")
        assert scored["row"].tolist() == valid_rows.tolist(), source
        probabilities = scored["phishing_probability"].to_numpy()
        if output.endswith(".parquet"):
            np.testing.assert_array_equal(probabilities, expected)
        else:  # CSV holds the shortest text that reads back as the same float32
            np.testing.assert_array_equal(probabilities.astype(np.float32), expected)
        assert (scored["label"] == np.where(scored["is_phishing"], "phishing", "legitimate")).all()
        pd.testing.assert_frame_equal(
            rejected.loc[:, ["row", "reason"]], expected_rejects, check_dtype=False
        )
    assert "SFH=2 not in {-1, 0, 1}" in expected_rejects["reason"].tolist()
    assert "Favicon=257 not in {-1, 1}" in expected_rejects["reason"].tolist()


def test_parquet_output_schema_is_the_documented_one(scorer, tmp_path: Path) -> None:
    synthetic_rows(10, 42).to_parquet(tmp_path / "in.parquet", index=False)
    predict_file(scorer, tmp_path / "in.parquet", tmp_path / "o.parquet", tmp_path / "r.csv")
    schema = pq.read_schema(tmp_path / "o.parquet")
    assert [(f.name, str(f.type)) for f in schema] == [
        ("row", "int64"),
        ("phishing_probability", "float"),
        ("is_phishing", "bool"),
        ("label", "large_string"),
    ]


def test_a_parquet_file_with_wrong_columns_names_the_file(scorer, tmp_path: Path) -> None:
    synthetic_rows(5, 43).drop(columns="Iframe").to_parquet(tmp_path / "in.parquet")
    with pytest.raises(PhishguardError, match=r"in\.parquet: schema error: missing column Iframe"):
        predict_file(scorer, tmp_path / "in.parquet", tmp_path / "o.csv", tmp_path / "r.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_a_batch_run_waits_for_the_prediction_log_instead_of_dropping_rows(
    scorer, tmp_path: Path
) -> None:
    """Chunks larger than the log's whole queue, scored faster than it writes: every scored
    row is still logged, none dropped."""
    synthetic_rows(12_000, 44).to_parquet(tmp_path / "in.parquet", index=False)
    log = PredictionLog(tmp_path / "log", max_pending_rows=1_000)
    logged = Scorer(scorer.bundle, (WaitingLog(log),))
    predict_file(logged, tmp_path / "in.parquet", tmp_path / "o.parquet", tmp_path / "r.csv", 5_000)
    log.close()
    assert (log.written, log.dropped) == (12_000, {})
    table = read_log(tmp_path / "log")
    out = pd.read_parquet(tmp_path / "o.parquet")
    np.testing.assert_array_equal(
        table["probability"].to_numpy(np.float32), out["phishing_probability"].to_numpy()
    )


def test_part_files_of_a_run_killed_by_sigkill_are_removed_by_the_next_run(
    package_dir: Path, tmp_path: Path
) -> None:
    """kill -9 gives no chance to clean up: the hidden `.part` files of the output, the
    rejects and the Parquet prediction log stay. The next successful run of the same output
    removes them (they are no longer locked by a live writer)."""
    source = tmp_path / "big.csv"
    synthetic_rows(300_000, 41).to_csv(source, index=False)
    log_dir = tmp_path / "log"
    env = {**tool_env(REPO), "PHISHGUARD_PREDICTION_LOG": str(log_dir)}
    command = [
        "phishguard",
        "predict",
        "-o",
        str(tmp_path / "out.csv"),
        "--model",
        str(package_dir),
    ]
    process = subprocess.Popen(
        [*command, str(source), "--chunk-rows", "2000"], cwd=REPO, env=env, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("**/.*.part"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.kill()
    process.communicate(timeout=60)
    left = sorted(p.name for p in tmp_path.glob("**/.*.part"))
    assert len(left) == 3, left  # output, rejects, log
    small = tmp_path / "small.csv"
    synthetic_rows(20, 42).to_csv(small, index=False)
    subprocess.run([*command, str(small)], cwd=REPO, env=env, check=True, capture_output=True)
    assert list(tmp_path.glob("**/.*.part")) == []
    assert len(pd.read_csv(tmp_path / "out.csv")) == 20


def test_a_part_still_being_written_is_never_removed(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    with atomic_path(out) as slow:  # a run still writing
        slow.write_text("slow")
        with atomic_path(out) as fast:
            fast.write_text("fast")
        assert slow.exists() and out.read_text() == "fast"
    assert out.read_text() == "slow" and list(tmp_path.glob(".*.part")) == []
