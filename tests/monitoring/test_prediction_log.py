"""The prediction log: what a record holds, the failure paths (unwritable directory, full
queue), flushing on close and at exit, several processes at once, reading it back, and
`phishguard drift` on a log."""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from phishguard import DataSourceError, paths
from phishguard.cli import main
from phishguard.contract.schema import FEATURES
from phishguard.monitoring import log_records
from phishguard.monitoring.log_reader import logged_features, read_log
from phishguard.monitoring.log_records import LoggedBatch, records_jsonl
from phishguard.monitoring.prediction_log import LOG_ENV, PredictionLog
from tests.support import REPO, tool_env

MODEL = {"model_version": "v1", "model_sha256": "ab" * 32}


def record(log: PredictionLog, rows: pd.DataFrame, request_id: str, source="api") -> bool:
    probabilities = np.linspace(0, 1, len(rows))
    return log.record(
        rows.loc[:, list(FEATURES)],
        probabilities,
        0.5,
        source=source,
        request_id=request_id,
        **MODEL,
    )


def test_records_round_trip(tmp_path: Path, make_rows):
    rows = make_rows(4, seed=1)
    log = PredictionLog(tmp_path / "log")
    assert record(log, rows, "r1") and record(log, rows, "b1", source="batch")
    log.close()
    assert log.written == 8 and log.dropped == {}
    files = [f for f in (tmp_path / "log").iterdir() if not f.name.startswith(".")]  # no index
    assert len(files) == 1 and files[0].name.startswith("predictions-")
    table = read_log(tmp_path / "log")
    assert list(table.columns) == [
        "time",
        "request_id",
        "prediction_id",
        "source",
        "model_version",
        "model_sha256",
        *FEATURES,
        "probability",
        "decision",
        "threshold",
    ]
    assert table["request_id"].tolist() == ["r1"] * 4 + ["b1"] * 4
    assert table["prediction_id"].tolist() == [f"{r}-{i}" for r in ("r1", "b1") for i in range(4)]
    assert table["source"].tolist() == ["api"] * 4 + ["batch"] * 4
    assert table["time"].str.endswith("Z").all()
    np.testing.assert_array_equal(table.loc[:3, list(FEATURES)].to_numpy(), rows[list(FEATURES)])
    assert table["probability"].tolist()[:4] == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert table["decision"].tolist()[:4] == ["legitimate", "legitimate", "phishing", "phishing"]
    assert (table["threshold"] == 0.5).all() and (table["model_version"] == "v1").all()


def test_prediction_ids_follow_the_given_rows_and_the_caller_is_kept(tmp_path: Path, make_rows):
    rows = make_rows(3, seed=2)
    log = PredictionLog(tmp_path)
    log.record(rows, np.zeros(3), 0.5, source="batch", request_id="b", indexes=[2, 5, 9], **MODEL)
    log.record(rows, np.zeros(3), 0.5, source="api", request_id="a", caller="alice", **MODEL)
    log.flush()  # written now, not after the writer's gathering delay
    table = read_log(tmp_path)
    assert log.written == 6
    assert table["prediction_id"].tolist() == ["b-2", "b-5", "b-9", "a-0", "a-1", "a-2"]
    assert table["caller"].tolist()[3:] == ["alice"] * 3 and table["caller"][:3].isna().all()
    log.close()


def test_the_environment_names_or_disables_the_log(tmp_path: Path, make_rows):
    off = PredictionLog.from_env({LOG_ENV: "off"})
    assert not off.enabled and not record(off, make_rows(2), "r")
    assert PredictionLog.from_env({}).directory == paths.PREDICTION_LOG_DIR
    assert PredictionLog.from_env({LOG_ENV: str(tmp_path)}).directory == tmp_path


def test_an_unwritable_directory_warns_once_and_never_raises(tmp_path: Path, make_rows, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    log = PredictionLog(blocker / "log")  # cannot be created, even by root
    with caplog.at_level(logging.WARNING):
        for i in range(3):
            assert record(log, make_rows(5, seed=i), f"r{i}")
        log.close()
    assert log.dropped == {"write_error": 15} and log.written == 0
    warnings = [r for r in caplog.records if "prediction log" in r.getMessage()]
    assert len(warnings) == 1 and "write error" in warnings[0].getMessage()


def test_a_full_queue_drops_the_batch_warns_once_and_counts(tmp_path: Path, make_rows, caplog):
    log = PredictionLog(tmp_path, max_pending_rows=10, sync=False)  # a background writer
    release = threading.Event()
    write = log._writer.write

    def slow_write(batches):  # the writer falls behind until released
        release.wait(10)
        return write(batches)

    log._writer.write = slow_write
    with caplog.at_level(logging.WARNING):
        assert record(log, make_rows(5), "r1")
        assert record(log, make_rows(5), "r2")
        assert not record(log, make_rows(5), "r3")
        assert not record(log, make_rows(1), "r4")
        release.set()
        log.close()
    assert log.dropped == {"queue_full": 6} and log.written == 10
    assert read_log(tmp_path)["request_id"].tolist() == ["r1"] * 5 + ["r2"] * 5
    warnings = [r for r in caplog.records if "queue full" in r.getMessage()]
    assert len(warnings) == 1


def test_close_writes_everything_queued_and_later_records_are_counted(tmp_path, make_rows):
    log = PredictionLog(tmp_path)
    rows = make_rows(3)
    for i in range(200):
        record(log, rows, f"r{i}")
    log.close()
    assert log.written == 600 and len(read_log(tmp_path)) == 600
    assert not record(log, rows, "late") and log.dropped == {"closed": 3}
    log.close()  # idempotent


WRITER = """
import sys
import numpy as np
from pathlib import Path
from phishguard.monitoring.prediction_log import PredictionLog

log = PredictionLog(Path(sys.argv[1]), period="hour")
worker = sys.argv[2]
for i in range(50):
    log.record(np.ones((7, 30)), np.full(7, 0.25), 0.5, source="api",
               request_id=f"{worker}-{i}", model_version="v", model_sha256="s")
# no close(): the atexit hook must flush the queue
"""


def test_several_processes_write_readable_files_with_exact_counts(tmp_path: Path):
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), f"w{n}"], cwd=REPO, env=tool_env()
        )
        for n in range(3)
    ]
    assert [worker.wait(60) for worker in workers] == [0, 0, 0]
    assert len(list(tmp_path.glob("predictions-*.jsonl"))) == 3  # one per process
    table = read_log(tmp_path)
    assert len(table) == 3 * 50 * 7
    per_worker = table["request_id"].str.split("-").str[0].value_counts().to_dict()
    assert per_worker == {"w0": 350, "w1": 350, "w2": 350}
    assert table.groupby("request_id").size().eq(7).all()


def test_reading_skips_a_cut_off_last_line(tmp_path: Path, make_rows, caplog):
    log = PredictionLog(tmp_path)
    record(log, make_rows(2), "r")
    log.close()
    path = next(tmp_path.glob("predictions-*"))
    path.write_text(path.read_text() + '{"time": "2026-')
    with caplog.at_level(logging.WARNING):
        assert len(read_log(tmp_path)) == 2
    assert "incomplete" in caplog.text


def test_reading_any_records_file_and_an_empty_directory(tmp_path: Path, make_rows):
    rows = make_rows(3)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    assert len(read_log(tmp_path / "rows.csv")) == 3
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataSourceError, match="no prediction-log files"):
        read_log(tmp_path / "empty")


def test_the_parquet_log_holds_what_the_jsonl_log_holds(tmp_path: Path, make_rows):
    """A batch run's Parquet log and the service's JSONL log, fed the same batches, read back
    as the same table: the same columns, ids, features, probabilities and decisions."""
    rows = make_rows(5, seed=3)
    tables = {}
    for kind in ("jsonl", "parquet"):
        log = PredictionLog(tmp_path / kind, format=kind)
        log.record(rows, np.linspace(0, 1, 5), 0.5, source="batch", request_id="b",
                   indexes=[3, 4, 7, 8, 9], **MODEL)  # fmt: skip
        log.record(rows.iloc[:2], np.array([0.25, 0.75], np.float32), 0.5, source="api",
                   request_id='q"1', caller="alice", **MODEL)  # fmt: skip
        log.close()
        assert [p.suffix for p in (tmp_path / kind).glob("predictions-*")] == [f".{kind}"]
        tables[kind] = read_log(tmp_path / kind)
    jsonl, parquet = tables["jsonl"], tables["parquet"]
    assert list(parquet.columns) == list(jsonl.columns)
    assert parquet["prediction_id"].tolist() == jsonl["prediction_id"].tolist()
    assert parquet["prediction_id"].tolist()[:5] == ["b-3", "b-4", "b-7", "b-8", "b-9"]
    assert (
        parquet["caller"].tolist()[5:] == ["alice", "alice"] and parquet["caller"][:5].isna().all()
    )
    for column in [*FEATURES, "probability", "threshold"]:
        np.testing.assert_array_equal(
            parquet[column].to_numpy(float), jsonl[column].to_numpy(float)
        )
    for column in ["request_id", "source", "decision", "model_sha256"]:
        assert parquet[column].tolist() == jsonl[column].tolist()
    assert parquet["time"].str.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]{15}Z").all()


def test_a_parquet_log_appears_only_when_closed(tmp_path: Path, make_rows):
    """Row groups go to a hidden part file; a run that dies never leaves a file without its
    footer where readers look. A folder with both formats reads as one, in time order."""
    log = PredictionLog(tmp_path, format="parquet")
    record(log, make_rows(3), "b", source="batch")
    log.flush()
    assert [p.name.startswith(".predictions-") for p in tmp_path.iterdir()] == [True]
    with pytest.raises(DataSourceError, match="no prediction-log files"):
        read_log(tmp_path)
    later = PredictionLog(tmp_path)  # the service's JSONL, after the batch run
    log.close()
    record(later, make_rows(2), "a")
    later.close()
    assert sorted(p.suffix for p in tmp_path.glob("[!.]*")) == [".jsonl", ".parquet"]
    assert read_log(tmp_path)["request_id"].tolist() == ["b"] * 3 + ["a"] * 2
    with pytest.raises(ValueError, match="format must be one of jsonl, parquet"):
        PredictionLog(tmp_path, format="csv")  # type: ignore[arg-type]


def test_a_child_forked_with_a_parquet_file_open_leaves_it_alone(tmp_path: Path, make_rows):
    """The child drops the inherited writer (here at once; at exit otherwise), which would
    write a footer into the parent's half-written file: it goes to /dev/null instead."""
    log = PredictionLog(tmp_path, format="parquet")
    record(log, make_rows(3), "before", source="batch")
    log.flush()  # the part is open, with a row group in it
    child = os.fork()
    if child == 0:  # pragma: no cover (the child: it drops the inherited writer, and frees it)
        gc.collect()
        os._exit(0)
    assert os.waitpid(child, 0)[1] == 0
    record(log, make_rows(2), "after", source="batch")
    log.close()
    table = read_log(tmp_path)
    assert table["request_id"].tolist() == ["before"] * 3 + ["after"] * 2


def test_looking_up_predictions_reads_only_what_it_needs(tmp_path: Path, make_rows, caplog):
    """`logged_features` (what POST /feedback uses) finds ids in both formats, newest file
    first: it stops before an older unreadable file once every id is found, and never takes
    a line still being written."""
    older, newer = make_rows(4, seed=5), make_rows(4, seed=6)
    broken = tmp_path / "predictions-20260101-h-1-aaaaaa.parquet"
    broken.write_bytes(b"PAR1 not really")
    os.utime(broken, (time.time() - 3600,) * 2)  # the oldest, yet within the retention
    batch = PredictionLog(tmp_path, format="parquet")
    record(batch, older, "b", source="batch")
    batch.close()
    service = PredictionLog(tmp_path)
    record(service, newer, "a")
    service.close()
    (tmp_path / "predictions-20261231-h-2-bbbbbb.jsonl").write_text(
        json.dumps({"prediction_id": "c-0", **dict.fromkeys(FEATURES, 1)})  # no newline yet
    )
    expected = {
        "a-1": newer.iloc[1][list(FEATURES)].to_numpy(),
        "b-3": older.iloc[3][list(FEATURES)].to_numpy(),
    }
    with caplog.at_level(logging.WARNING):
        found = logged_features(tmp_path, {"a-1", "b-3"})
    assert found.keys() == expected.keys() and "skipped" not in caplog.text
    for key, features in expected.items():
        np.testing.assert_array_equal(found[key], features)
    with caplog.at_level(logging.WARNING):  # an unknown id makes it read every file
        assert logged_features(tmp_path, {"a-9", "c-0"}) == {}
    assert "skipped while looking up predictions" in caplog.text


def _drift_json(capsys, *args: str) -> dict:
    main(["drift", *args, "--json"])
    return json.loads(capsys.readouterr().out)


def test_drift_reads_a_log(tmp_path: Path, make_rows, capsys):
    """The log of 600 scored records, checked against a reference drawn the same way: no
    drift, every record counted; the same log with one feature forced fails with
    --fail-on-drift."""
    reference = make_rows(3000, seed=1)
    reference.to_parquet(tmp_path / "reference.parquet")
    pd.DataFrame({"probability": np.linspace(0, 1, 3000)}).to_csv(tmp_path / "oof.csv")
    log = PredictionLog(tmp_path / "log")
    for i in range(6):
        record(log, make_rows(100, seed=10 + i), f"r{i}")
    log.close()

    args = [str(tmp_path / "log"), "--reference", str(tmp_path / "reference.parquet")]
    report = _drift_json(capsys, *args, "--reference-scores", str(tmp_path / "oof.csv"))
    assert report["n_current"] == 600 and report["drift"] is False
    assert {"feature", "drift", "psi", "p_value"} <= set(report["features"][0])
    assert len(report["features"]) == 30 and "unseen_vector_share" in report
    assert report["prediction"]["judged"] and report["prediction"]["threshold"] == 0.5

    shifted = make_rows(600, seed=3).assign(SSLfinal_State=-1)
    shifted.to_csv(tmp_path / "shifted.csv", index=False)
    with pytest.raises(SystemExit) as exit_:
        main(["drift", str(tmp_path / "shifted.csv"), *args[1:], "--fail-on-drift"])
    assert exit_.value.code == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("DRIFT")
    assert out.splitlines()[3].startswith("SSLfinal_State") and "not judged" in out


def test_drift_errors_are_one_line_naming_the_input(tmp_path: Path, capsys):
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    for args, message in [
        ([str(tmp_path / "absent")], "absent: no such file or directory"),
        ([str(tmp_path / "other.csv")], "other.csv: missing feature column(s) having_IP_Address"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            main(["drift", *args])
        assert exit_.value.code == 1
        assert message in capsys.readouterr().err


FORKED = """
import os, sys, time
import numpy as np
from pathlib import Path
from phishguard.monitoring.prediction_log import PredictionLog

log = PredictionLog(Path(sys.argv[1]))
def record(request_id):
    log.record(np.ones((2, 30)), np.full(2, 0.9), 0.5, source="api",
               request_id=request_id, model_version="v", model_sha256="s")
record("parent-0")
while log.written < 2:
    time.sleep(0.01)
child = os.fork()
if child == 0:
    record("child-0"); record("child-1")
    log.close()
    os._exit(0)
record("parent-1")
os.waitpid(child, 0)
"""


def test_an_instance_made_before_a_fork_writes_from_each_process_to_its_own_file(tmp_path):
    subprocess.run(
        [sys.executable, "-c", FORKED, str(tmp_path)], cwd=REPO, env=tool_env(), check=True
    )
    files = list(tmp_path.glob("predictions-*.jsonl"))
    assert len(files) == 2
    table = read_log(tmp_path)
    assert sorted(table["request_id"].unique()) == ["child-0", "child-1", "parent-0", "parent-1"]
    assert len(table) == 8


def test_small_writes_are_formatted_to_the_same_bytes_as_large_ones(monkeypatch, make_rows):
    """A few rows are formatted in plain Python (Arrow's fixed cost would dominate), many
    with Arrow: byte for byte the same text and record ends, escaping and callers included."""
    features = make_rows(5, seed=3).loc[:, list(FEATURES)].to_numpy(np.int8)
    batches = [
        LoggedBatch(datetime.now(UTC), 'q"1', "api", "v1", "s" * 64, features[:3],
                    np.array([0.1, 0.5, 0.9], np.float32), 0.5),
        LoggedBatch(datetime.now(UTC), "x", "csv", "v1", "s" * 64, features[3:],
                    np.array([0.25, 1.0]), 0.4, np.array([5, 9]), "alice"),
    ]  # fmt: skip
    small, small_ends = records_jsonl(batches)
    monkeypatch.setattr(log_records, "SMALL_ROWS", 0)
    large, large_ends = records_jsonl(batches)
    assert bytes(small) == bytes(large) and small_ends.tolist() == large_ends.tolist()
    assert [json.loads(line)["prediction_id"] for line in bytes(small).splitlines()] == [
        'q"1-0',
        'q"1-1',
        'q"1-2',
        "x-5",
        "x-9",
    ]
