"""Operator faults end every entry point (the stages and `phishguard`) with one line naming
the cause, not a traceback (issue 15: a full disk on `predict -o`, out of memory)."""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phishguard import cli
from phishguard.contract.schema import FEATURES
from phishguard.entrypoint import run
from phishguard.serving import batch
from tests.support import synthetic_rows, tool_env

FAULTS = [errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EIO, errno.EFBIG]


def one_line_failure(capsys: pytest.CaptureFixture, call) -> str:
    with pytest.raises(SystemExit) as ended:
        call()
    assert ended.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    code=st.sampled_from(FAULTS),
    name=st.text(st.characters(exclude_categories=["Cc", "Zl", "Zp"]), min_size=1, max_size=30),
)
def test_any_os_error_is_one_line_naming_file_and_cause(capsys, code: int, name: str) -> None:
    capsys.readouterr()  # what an earlier example left
    filename = f"/out/{name}"

    def main() -> None:
        raise OSError(code, os.strerror(code), filename)

    err = one_line_failure(capsys, lambda: run(main, "train"))
    shown = filename.encode("utf-8", "backslashreplace").decode()  # lone surrogates escaped
    assert err.startswith(f"train: error: {shown}: {os.strerror(code)} ")
    assert f"({errno.errorcode[code]})" in err


@pytest.mark.parametrize("detail", ["", "Unable to allocate 1.09 TiB for an array"])
def test_out_of_memory_in_a_stage_is_one_line(capsys, detail: str) -> None:
    def main() -> None:
        raise MemoryError(detail)

    err = one_line_failure(capsys, lambda: run(main, "featurize"))
    assert err.startswith("featurize: error: out of memory")
    assert detail in err


def test_out_of_memory_in_the_cli_is_one_line(capsys, monkeypatch, tmp_path: Path) -> None:
    def allocate(*args: object) -> None:
        raise MemoryError("Unable to allocate 1.53 GiB")

    monkeypatch.setattr(batch, "predict_command", allocate)
    call = lambda: cli.main(["predict", "in.csv", "-o", str(tmp_path / "out.csv")])  # noqa: E731
    err = one_line_failure(capsys, call)
    assert err == (
        "phishguard: error: out of memory (Unable to allocate 1.53 GiB); "
        "free memory or give it less data at once\n"
    )


def rows_file(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "rows.csv"
    synthetic_rows(n, 3).loc[:, list(FEATURES)].to_csv(path, index=False)
    return path


def test_a_full_disk_on_predict_output_is_one_line_naming_the_output(
    capsys, monkeypatch, tmp_path: Path, package_dir: Path
) -> None:
    def disk_full(self, *args, **kwargs) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    rows = rows_file(tmp_path, 50)
    monkeypatch.setattr(pd.DataFrame, "to_csv", disk_full)
    output = tmp_path / "out" / "scores.csv"
    args = ["predict", str(rows), "-o", str(output), "--model", str(package_dir)]
    err = one_line_failure(capsys, lambda: cli.main(args))
    assert err == (
        f"phishguard: error: {output}: No space left on device (ENOSPC); "
        "free space or write elsewhere\n"
    )
    assert not list(output.parent.iterdir())  # no output, no hidden .part file


def test_a_real_write_failure_on_predict_is_one_line(tmp_path: Path, package_dir: Path) -> None:
    """A real failing write() in a real process: the file-size limit (EFBIG) stands in for a
    full disk, which a test cannot make without mounting one."""

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # then write() fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    output = tmp_path / "scores.csv"
    rows = rows_file(tmp_path, 2000)
    result = subprocess.run(
        ["phishguard", "predict", str(rows), "-o", str(output), "--model", str(package_dir)],
        # The prediction log would hit the same limit: its one warning is tested on its own
        # (tests/monitoring, tests/serving/test_observed_scoring.py).
        env={**tool_env(), "PHISHGUARD_PREDICTION_LOG": "off"},
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit_file_size,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr == f"phishguard: error: {output}: File too large (EFBIG)\n"
    assert not output.exists() and not list(tmp_path.glob(".scores.csv.*"))


def _subcommands(parser) -> dict:
    """The sub-parsers of `parser` by name (argparse keeps them in its subparsers action)."""
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


@pytest.mark.parametrize("path", [("params",), ("keys", "list"), ("keys", "revoke")])
def test_every_command_has_a_help_description(path: tuple[str, ...]) -> None:
    """`phishguard params --help`, `keys list --help`, `keys revoke --help` say what they do,
    and every argument has help text (issue 29)."""
    parser = cli.parser()
    for name in path:
        parser = _subcommands(parser)[name]
    assert parser.description and len(parser.description) > 40
    for action in parser._actions:
        assert action.help, f"phishguard {' '.join(path)}: {action.dest} has no help"


def test_a_misspelt_override_of_phishguard_params_is_one_line_naming_the_nearest_key(
    capsys,
) -> None:
    err = one_line_failure(capsys, lambda: cli.main(["params", "model.max_dept=4", "--check"]))
    assert "did you mean 'model.max_depth'?" in err
