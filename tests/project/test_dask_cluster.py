"""`phishguard.dask_cluster`, shared by `phishguard predict --scheduler/--workers` and
`model: xgboost_dask`: where the address comes from, a local cluster that listens on loopback
only, and a scheduler without workers as one line instead of a job that waits forever."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from phishguard.dask_cluster import (
    CONNECT_TIMEOUT_S,
    SCHEDULER_VARIABLE,
    DaskClusterError,
    connect,
    local_cluster,
    scheduler_address,
)
from tests.support import synthetic_rows
from tests.support.dask_cluster import run_predict, tcp_cluster


def test_the_address_comes_from_the_caller_then_the_environment() -> None:
    here = "tcp://10.0.0.5:8786"
    env = {SCHEDULER_VARIABLE: here}
    assert scheduler_address("tcp://a:1", env) == "tcp://a:1"
    assert scheduler_address("local", env) == "local"
    assert scheduler_address(None, env) == here
    assert scheduler_address(None, {}) is None
    assert scheduler_address(None, {SCHEDULER_VARIABLE: ""}) is None


def _listening(process: psutil.Process) -> set[tuple[str, int]]:
    """The listening addresses of `process` and its children."""
    found = set()
    for each in [process, *process.children(recursive=True)]:
        for connection in each.net_connections():
            if connection.status == psutil.CONN_LISTEN:
                found.add((connection.laddr.ip, connection.laddr.port))
    return found


@pytest.mark.parametrize("processes", [False, True], ids=["in-process", "worker processes"])
def test_a_local_cluster_listens_on_loopback_only(processes: bool) -> None:
    """Dask's scheduler and workers serve HTTP routes even without a dashboard, by default on
    every interface (the scheduler on 8787): `--workers N` (in-process) and the training
    cluster (worker processes) keep them, and their comms, on 127.0.0.1."""
    process = psutil.Process()
    before = _listening(process)
    with local_cluster(2, processes=processes) as cluster:
        assert len(cluster.workers) == 2
        listening = _listening(process) - before
    # the scheduler's and the two workers' routes, and with processes their TCP comms too
    assert len(listening) >= (7 if processes else 3)
    assert {ip for ip, _ in listening} == {"127.0.0.1"}


def test_a_scheduler_without_workers_is_one_line(package_dir: Path, tmp_path: Path) -> None:
    """`phishguard predict --scheduler` at a scheduler whose workers are gone stops with one
    line after the connect timeout; before, the job waited for a worker forever."""
    source = tmp_path / "in.csv"
    synthetic_rows(10).to_csv(source, index=False)
    with tcp_cluster(tmp_path / "cluster", workers=0) as cluster:
        with pytest.raises(DaskClusterError, match="has no worker after"):
            connect(cluster.address, "unused")
        started = time.monotonic()
        result = run_predict(
            source,
            tmp_path / "out",
            package_dir,
            check=False,
            DASK_SCHEDULER_ADDRESS=cluster.address,
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"phishguard: error: the Dask scheduler at {cluster.address} ($DASK_SCHEDULER_ADDRESS) "
        f"has no worker after {CONNECT_TIMEOUT_S} s (Only 0/1 workers arrived after "
        f"{CONNECT_TIMEOUT_S}); start `dask worker {cluster.address}`"
    ]
    assert CONNECT_TIMEOUT_S <= elapsed < CONNECT_TIMEOUT_S + 30
    assert not (tmp_path / "out").exists()
