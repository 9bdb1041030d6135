"""Looking up logged predictions by id (what `POST /feedback` does): through the index, in a
few reads whatever the size of the log; old unindexed files; forged ids (issue 27, item 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from phishguard.contract.schema import FEATURES
from phishguard.monitoring import log_reader
from phishguard.monitoring.log_index import INDEX_NAME
from phishguard.monitoring.log_reader import logged_features
from phishguard.monitoring.prediction_log import PredictionLog

MODEL = {"model_version": "v1", "model_sha256": "ab" * 32}


def _write(directory: Path, requests: int, rows: int = 3) -> np.ndarray:
    """A log of `requests` requests of `rows` rows; request i's rows all hold feature values
    `(i % 2) * 2 - 1` in column 0 and 1 elsewhere."""
    log = PredictionLog(directory)
    for i in range(requests):
        features = np.ones((rows, 30), np.int8)
        features[:, 0] = (i % 2) * 2 - 1
        log.record(features, np.full(rows, 0.5), 0.5, source="api", request_id=f"q{i}", **MODEL)
    log.close()
    return features


def _no_scans(monkeypatch) -> None:
    def scan(*args, **kwargs):
        raise AssertionError("searched the log's bytes instead of using the index")

    monkeypatch.setattr(log_reader, "_jsonl_hits", scan)


def test_ids_are_found_through_the_index_without_searching_the_log(tmp_path: Path, monkeypatch):
    _write(tmp_path, 200)
    _no_scans(monkeypatch)
    found = logged_features(tmp_path, {"q7-2", "q8-0", "q199-1"})
    assert found.keys() == {"q7-2", "q8-0", "q199-1"}
    assert found["q7-2"][0] == 1 and found["q8-0"][0] == -1 and (found["q8-0"][1:] == 1).all()


def test_unknown_and_forged_ids_are_absent_and_cost_no_scan(tmp_path: Path, monkeypatch):
    """A request id with a row it never had, a made-up request, an id that is not of the
    `<request>-<n>` form: none of them resolves, and none makes the reader search the log."""
    _write(tmp_path, 50)
    _no_scans(monkeypatch)
    forged = {"q3-3", "q3-99999999999", "nope-0", "q3", "-1", 'q1-0"', "q1-0\n"}
    assert logged_features(tmp_path, forged) == {}


def test_a_log_written_before_the_index_is_indexed_once_and_resolves(tmp_path: Path, monkeypatch):
    """An old log file (no index beside it, and a request id JSON had to escape)."""
    lines = [
        json.dumps(
            {
                "time": "2026-01-01T00:00:00.000000Z",
                "request_id": rid,
                "prediction_id": f"{rid}-{i}",
                "source": "api",
                **dict.fromkeys(FEATURES, value),
                "probability": 0.5,
            },
            separators=(",", ":"),
        )
        for rid, value in (("old", -1), ('we"ird', 1))
        for i in range(3)
    ]
    (tmp_path / "predictions-20260101-h-1-aaaaaa.jsonl").write_text("\n".join(lines) + "\n")
    found = logged_features(tmp_path, {"old-2", 'we"ird-1', "old-3"})
    assert found.keys() == {"old-2", 'we"ird-1'} and found["old-2"][0] == -1
    assert (tmp_path / INDEX_NAME).exists()
    _no_scans(monkeypatch)  # indexed now: the next lookup reads only the records
    assert logged_features(tmp_path, {"old-0"}).keys() == {"old-0"}


def test_records_the_index_missed_are_found_in_the_uncovered_end(tmp_path: Path):
    _write(tmp_path, 3)
    (path,) = tmp_path.glob("predictions-*.jsonl")
    with path.open("a") as handle:  # as if the writer died between its write and the index's
        record = {"prediction_id": "late-0", **dict.fromkeys(FEATURES, 0)}
        handle.write(json.dumps(record, separators=(",", ":")) + "\n")
    assert logged_features(tmp_path, {"late-0", "q1-1"}).keys() == {"late-0", "q1-1"}


def test_a_corrupt_index_is_rebuilt_from_the_log(tmp_path: Path):
    _write(tmp_path, 5)
    (tmp_path / INDEX_NAME).write_bytes(b"not a database" * 100)
    for suffix in ("-wal", "-shm"):
        Path(f"{tmp_path / INDEX_NAME}{suffix}").unlink(missing_ok=True)
    assert logged_features(tmp_path, {"q4-2"}).keys() == {"q4-2"}


@pytest.mark.parametrize("requests", [100, 3000])
def test_a_lookup_reads_a_bounded_number_of_bytes_whatever_the_log_size(
    tmp_path: Path, monkeypatch, requests: int
):
    """The bytes read for 20 ids do not grow with the log (30× more records here)."""
    _write(tmp_path, requests)
    read = []
    real_open = Path.open

    def counting_open(self, *args, **kwargs):
        handle = real_open(self, *args, **kwargs)
        if self.suffix == ".jsonl":
            real_readline = handle.readline

            def readline(*a):
                line = real_readline(*a)
                read.append(len(line))
                return line

            handle.readline = readline
        return handle

    monkeypatch.setattr(Path, "open", counting_open)
    ids = {f"q{i}-1" for i in range(0, 100, 5)}
    assert logged_features(tmp_path, ids).keys() == ids
    assert sum(read) < 20 * 2 * 1000  # at most a couple of ~900-byte lines per id
