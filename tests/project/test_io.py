"""Every writer on a disk that cannot take the write (issue 27): a full disk, an exhausted
quota or a read-only file system is one line naming the file and what to do, with no partial
output left behind, for the atomic writer (`phishguard.io`) and every command built on it;
an output path under a file says so, not "File exists"."""

from __future__ import annotations

import errno
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from phishguard import StorageError, cli, storage_error
from phishguard.contract.schema import FEATURES
from phishguard.feedback.store import SqliteFeedbackStore
from phishguard.io import ChunkWriter, atomic_path, write_atomic, write_table
from phishguard.provenance import write_json
from phishguard.serving.key_stores import FileKeyStore
from tests.support import synthetic_rows, tool_env

TABLE = synthetic_rows(3000, 4)


def one_line_failure(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as ended:
        cli.main(argv)
    assert ended.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _chunks(path: Path) -> None:
    with ChunkWriter(path, TABLE.iloc[:0]) as writer:
        for start in range(0, len(TABLE), 500):
            writer.write(TABLE.iloc[start : start + 500])


WRITERS: dict[str, tuple[str, Callable[[Path], object]]] = {
    "atomic text": ("out.txt", lambda path: write_atomic(path, "x" * 400_000)),
    "atomic bytes": ("out.bin", lambda path: write_atomic(path, b"x" * 400_000)),
    "table csv": ("out.csv", lambda path: write_table(path, TABLE)),
    "table parquet": ("out.parquet", lambda path: write_table(path, TABLE)),
    "chunks csv": ("chunks.csv", _chunks),
    "chunks parquet": ("chunks.parquet", _chunks),
    "json report": ("report.json", lambda path: write_json(path, {"x": "y" * 400_000})),
    "key store": ("keys.json", lambda path: FileKeyStore(path).add("a" * 8, "analyst")),
    "feedback store": ("verdicts.sqlite3", lambda path: SqliteFeedbackStore(path)),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_every_writer_on_a_real_full_disk_is_one_storage_error(full_disk: Path, writer: str):
    name, write = WRITERS[writer]
    before = sorted(full_disk.rglob("*"))
    target = full_disk / name
    with pytest.raises(StorageError) as raised:
        write(target)
    message = str(raised.value)
    assert raised.value.full
    assert "\n" not in message and "(ENOSPC); free space or write elsewhere" in message
    assert str(full_disk) in message and ".part" not in message
    left = sorted(path for path in full_disk.rglob("*") if path not in before)
    assert not [path for path in left if path.is_file() and path.stat().st_size], left


@pytest.mark.parametrize(
    ("code", "full", "advice"),
    [
        (errno.ENOSPC, True, "free space or write elsewhere"),
        (errno.EDQUOT, True, "quota"),
        (errno.EROFS, False, "remount it read-write"),
    ],
)
def test_a_failed_write_inside_the_atomic_writer_names_the_target_and_the_remedy(
    tmp_path: Path, code: int, full: bool, advice: str
) -> None:
    target = tmp_path / "out.csv"
    with pytest.raises(StorageError) as raised, atomic_path(target) as part:
        part.write_text("half")
        raise OSError(code, "write failed", str(part))
    assert raised.value.full is full and advice in str(raised.value)
    assert str(raised.value).startswith(f"{target}: ")
    assert list(tmp_path.iterdir()) == []  # no output, no hidden .part


def test_other_os_errors_stay_what_they_are() -> None:
    assert storage_error(OSError(errno.EACCES, "Permission denied", "/x")) is None


def test_an_output_under_a_file_says_the_parent_is_a_file(
    capsys, tmp_path: Path, package_dir: Path
) -> None:
    rows = tmp_path / "rows.csv"
    TABLE.loc[:50, list(FEATURES)].to_csv(rows, index=False)
    blocker = tmp_path / "report.txt"
    blocker.write_text("a file, not a folder")
    output = blocker / "deeper" / "scores.csv"
    err = one_line_failure(
        capsys, ["predict", str(rows), "-o", str(output), "--model", str(package_dir)]
    )
    assert err == (
        f"phishguard: error: cannot write {output}: {blocker} is a file, not a folder; "
        "choose a path inside a folder\n"
    )
    assert "File exists" not in err


def test_predict_onto_a_real_full_disk_is_one_line_and_leaves_nothing(
    capsys, tmp_path: Path, package_dir: Path, full_disk: Path
) -> None:
    rows = tmp_path / "rows.csv"
    TABLE.loc[:, list(FEATURES)].to_csv(rows, index=False)
    output = full_disk / "scores.csv"
    argv = ["predict", str(rows), "-o", str(output), "--model", str(package_dir)]
    err = one_line_failure(capsys, argv)
    assert err == (
        f"phishguard: error: {output}: No space left on device (ENOSPC); "
        "free space or write elsewhere\n"
    )
    assert not output.exists() and not list(full_disk.glob(".scores.csv*"))


def test_feedback_onto_a_real_full_disk_is_one_line(
    capsys, tmp_path: Path, full_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's case: SQLite's "disk I/O error" from `open_store` was a traceback."""
    verdicts = tmp_path / "verdicts.csv"
    TABLE.iloc[:20].to_csv(verdicts, index=False)
    monkeypatch.setenv("PHISHGUARD_FEEDBACK_DIR", str(full_disk / "feedback"))
    err = one_line_failure(capsys, ["feedback", str(verdicts)])
    store = full_disk / "feedback" / "verdicts.sqlite3"
    assert err.startswith(f"phishguard: error: {store}: No space left on device")
    assert err.endswith("(ENOSPC); free space or write elsewhere\n")


def test_keys_add_onto_a_real_full_disk_is_one_line(
    capsys, full_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = full_disk / "keys" / "api_keys.json"
    monkeypatch.setenv("PHISHGUARD_KEYS", str(store))
    err = one_line_failure(capsys, ["keys", "add", "alice", "--role", "analyst"])
    assert err.startswith(f"phishguard: error: {store}")
    assert "(ENOSPC); free space or write elsewhere" in err
    assert not store.exists()


def test_a_report_on_stdout_redirected_to_a_full_disk_is_one_line(
    tmp_path: Path, package_dir: Path
) -> None:
    """`phishguard drift … --json > file` on a full disk (here /dev/full): the flush at exit
    printed "Exception ignored" and a traceback."""
    records = tmp_path / "records.csv"
    TABLE.loc[:, list(FEATURES)].to_csv(records, index=False)
    reference = tmp_path / "reference.parquet"
    TABLE.to_parquet(reference)
    with Path("/dev/full").open("w") as full:
        result = subprocess.run(
            ["phishguard", "drift", str(records), "--reference", str(reference), "--json"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=tool_env(),
            timeout=120,
        )
    assert result.returncode == 1
    assert result.stderr.startswith("phishguard: error: ")
    assert result.stderr.endswith(
        "No space left on device (ENOSPC); free space or write elsewhere\n"
    )
    assert result.stderr.count("\n") == 1, result.stderr  # no "Exception ignored", no traceback


def test_the_atomic_writer_is_every_writers(tmp_path: Path) -> None:
    """What the writers write reads back unchanged (the refactor onto `write_table`)."""
    write_table(tmp_path / "t.parquet", TABLE)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), TABLE)
    write_json(tmp_path / "r.json", {"b": 1, "a": [2]})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": [2], "b": 1}
