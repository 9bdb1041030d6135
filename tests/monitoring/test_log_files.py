"""The prediction log's files on a full disk (injected ENOSPC, and a real tiny tmpfs), their
synchronous hand-over to the OS, retention and the size cap (issue 27, items 3, 5 and 11)."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from phishguard import PhishguardError
from phishguard.monitoring import log_files
from phishguard.monitoring.log_files import MAX_BYTES_ENV, RETENTION_ENV, Retention
from phishguard.monitoring.log_reader import DAMAGED, logged_features, read_log
from phishguard.monitoring.prediction_log import PredictionLog

MODEL = {"model_version": "v1", "model_sha256": "ab" * 32}


def _record(log: PredictionLog, rows: int, request_id: str) -> bool:
    features = np.ones((rows, 30), np.int8)
    return log.record(
        features, np.full(rows, 0.25), 0.5, source="api", request_id=request_id, **MODEL
    )


def _log_file(directory: Path) -> Path:
    (path,) = directory.glob("predictions-*.jsonl")
    return path


class _FullDisk:
    """`os.write` that writes `room` more bytes, then fails with ENOSPC (as a full disk does:
    a short write, then the error)."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.write = os.write

    def __call__(self, fd: int, data) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        done = self.write(fd, bytes(data[: self.room]))
        self.room -= done
        return done


def test_a_write_stopped_by_enospc_leaves_whole_records_and_counts_only_the_lost(
    tmp_path: Path, monkeypatch
):
    """Mid-line ENOSPC: the file is cut back to the last whole record; `dropped` counts the
    records not in the file, `written` those that are; after space returns the next record
    is a line of its own, and the whole log reads with no damaged line."""
    log = PredictionLog(tmp_path)
    assert _record(log, 3, "before")
    line = _log_file(tmp_path).stat().st_size // 3
    full = _FullDisk(room=int(2.5 * line))  # two whole records and half of the third
    monkeypatch.setattr(log_files.os, "write", full)
    _record(log, 10, "during")
    full.room = 10**9  # space again
    assert _record(log, 2, "after")
    log.close()
    assert log.dropped == {"write_error": 8} and log.written == 3 + 2 + 2
    assert _log_file(tmp_path).read_bytes().endswith(b"}\n")
    table = read_log(tmp_path)
    assert table.attrs[DAMAGED] == 0
    assert table["prediction_id"].tolist() == [
        *(f"before-{i}" for i in range(3)),
        "during-0",
        "during-1",
        "after-0",
        "after-1",
    ]
    assert logged_features(tmp_path, {"during-1", "during-2", "after-1"}).keys() == {
        "during-1",
        "after-1",
    }


def test_when_even_the_truncation_fails_a_new_segment_starts_and_the_reader_skips_the_fragment(
    tmp_path: Path, monkeypatch
):
    log = PredictionLog(tmp_path)
    full = _FullDisk(room=1000)  # a record is ~900 bytes: one whole, a fragment of the next
    monkeypatch.setattr(log_files.os, "write", full)

    def no_truncate(fd: int, size: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(log_files.os, "ftruncate", no_truncate)
    _record(log, 3, "cut")
    full.room = 10**9
    _record(log, 2, "next")
    log.close()
    assert len(list(tmp_path.glob("predictions-*.jsonl"))) == 2
    assert log.dropped == {"write_error": 2} and log.written == 3
    table = read_log(tmp_path)
    assert table.attrs[DAMAGED] == 1
    assert sorted(table["prediction_id"]) == ["cut-0", "next-0", "next-1"]


def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if result.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")


def test_a_real_full_tmpfs_keeps_the_log_whole_and_the_counts_exact(tmp_path: Path):
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "256k")
    try:
        log = PredictionLog(disk / "log")
        answered = sum(_record(log, 25, f"r{i}") for i in range(40))  # ~900 kB: the disk fills
        log.close()
        assert answered == 40 and log.dropped.get("write_error", 0) > 0
        table = read_log(disk / "log")
        assert table.attrs[DAMAGED] == 0
        assert len(table) == log.written and log.written + log.dropped["write_error"] == 1000
        assert _log_file(disk / "log").read_bytes().endswith(b"}\n")
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_dropped_record_is_reported_at_once(tmp_path: Path):
    """`on_drop` (the /metrics gauge) hears of a drop when it happens, not at the next call."""
    seen = []
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    log = PredictionLog(blocker / "log")
    log.on_drop = seen.append
    _record(log, 4, "r")
    assert seen == [{"write_error": 4}]
    log.close()


def test_a_record_is_in_the_file_when_record_returns(tmp_path: Path):
    """The service's log hands each batch to the OS before `record` returns: no gathering
    delay, no flush needed (what a response sent next relies on)."""
    log = PredictionLog(tmp_path)
    for i in range(5):
        assert _record(log, 2, f"r{i}")
        assert _log_file(tmp_path).read_bytes().count(b"\n") == 2 * (i + 1)
    log.close()


def test_retention_and_the_size_cap_delete_whole_old_segments(tmp_path: Path):
    old, older, current = (
        tmp_path / f"predictions-2026010{i}-h-1-aaaaa{i}.jsonl" for i in (1, 2, 3)
    )
    for path, age_days in ((older, 40), (old, 2), (current, 0)):
        path.write_bytes(b"x" * 1000)
        stamp = time.time() - age_days * 86_400
        os.utime(path, (stamp, stamp))
    deleted = log_files.enforce_retention(tmp_path, Retention(days=30, max_bytes=0), set())
    assert deleted == [older] and old.exists()
    deleted = log_files.enforce_retention(tmp_path, Retention(days=0, max_bytes=1500), {old})
    assert deleted == [current] and old.exists()  # a file in `keep` is never deleted


def test_a_log_over_its_cap_starts_new_segments_and_stays_under_it(tmp_path: Path):
    log = PredictionLog(tmp_path, retention=Retention(days=30, max_bytes=40_000))
    for i in range(100):
        _record(log, 5, f"r{i}")  # ~450 kB in all
        log._writer.enforce_retention()
    log.close()
    files = list(tmp_path.glob("predictions-*.jsonl"))
    assert len(files) > 1 and sum(f.stat().st_size for f in files) <= 40_000
    assert read_log(tmp_path).attrs[DAMAGED] == 0  # whole segments went, never part of one
    assert logged_features(tmp_path, {"r99-4"}).keys() == {"r99-4"}


def test_the_retention_settings_come_from_the_environment():
    assert Retention.from_env({}) == Retention()
    assert Retention.from_env({RETENTION_ENV: "7", MAX_BYTES_ENV: "0"}) == Retention(7, 0)
    with pytest.raises(PhishguardError, match=RETENTION_ENV):
        Retention.from_env({RETENTION_ENV: "a week"})
    assert PredictionLog.from_env({RETENTION_ENV: "3"}).retention.days == 3
