"""Helpers shared by the tests (fixtures live in tests/conftest.py): the real dataset's path,
synthetic rows from the schema, loopback ports, subprocesses of the project's tools, clones."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from phishguard.contract.schema import COLUMNS, DOMAINS

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data" / "phishing_websites.csv"
VENV_BIN = Path(sys.executable).parent


def real_data_path() -> Path | None:
    """PHISHING_DATA if it names a file, else the workplace's offline copy, else None."""
    configured = os.environ.get("PHISHING_DATA", "").strip()
    candidate = Path(configured) if configured else SHARED_DATA
    return candidate if candidate.is_file() else None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (servers in tests bind loopback only)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def synthetic_rows(n: int, seed: int = 0) -> pd.DataFrame:
    """`n` rows drawn uniformly from each column's domain (never copied from the dataset)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {name: rng.choice(np.array(DOMAINS[name], dtype=np.int8), size=n) for name in COLUMNS}
    )


def tool_env(workdir: Path | None = None) -> dict[str, str]:
    """Environment for running the project's commands in a subprocess (offline, no telemetry)."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    if workdir is not None:
        env["PYTHONPATH"] = str(workdir / "src")
        # A clone keeps its own feedback and key stores (data/feedback/, .phishguard/), as a
        # user's checkout does: never the suite's shared ones, which other tests write to.
        for name in ("PHISHGUARD_FEEDBACK_DIR", "PHISHGUARD_KEYS"):
            env.pop(name, None)
    env.update(
        DVC_NO_ANALYTICS="1",
        BENTOML_DO_NOT_TRACK="true",
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="1",
        GIT_AUTHOR_NAME="phishguard tests",
        GIT_AUTHOR_EMAIL="tests@phishguard.invalid",
        GIT_COMMITTER_NAME="phishguard tests",
        GIT_COMMITTER_EMAIL="tests@phishguard.invalid",
    )
    return env


def run_tool(
    args: list[str], cwd: Path, check: bool = True, timeout: float = 900, **env_extra: str
) -> subprocess.CompletedProcess:
    """Run a command in `cwd` with `tool_env`; on failure the assertion shows its output."""
    env = tool_env(cwd)
    env.update(env_extra)
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result


def working_tree_files() -> list[Path]:
    """Files git tracks or would track (untracked but not ignored) in the working tree."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [REPO / n for n in names.split("\0") if n and (REPO / n).is_file()]


def clone_project(destination: Path) -> Path:
    """A fresh git repository holding the working tree's tracked files, committed once.

    Uses the working tree (not HEAD), so tests exercise the code under test; git-ignored
    outputs, the DVC cache and the venv are not copied.
    """
    for source in working_tree_files():
        target = destination / source.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    run_tool(["git", "init", "-q", "-b", "main"], destination)
    run_tool(["git", "add", "-A"], destination)
    run_tool(["git", "commit", "-q", "-m", "clone for tests"], destination)
    return destination


def run_pipeline(workdir: Path, data: Path) -> None:
    """Land the data and run `dvc repro` in `workdir`."""
    run_tool(["phishguard", "fetch", str(data)], workdir)
    run_tool(["dvc", "repro"], workdir)


def wait_until_up(server: subprocess.Popen, url: str, log: Path, seconds: float) -> None:
    """Wait until `url` answers 200 while `server` runs; fail with its log if it exits first
    or is not up after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(
                f"{url}: the server exited {server.returncode}:\n{log.read_text()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url}: not up after {seconds:.0f} s:\n{log.read_text()[-3000:]}")
