"""A real Dask cluster for the tests: `dask scheduler` and worker processes on 127.0.0.1 over
TCP, each in its own process group (so one worker can be killed mid-job), stopped at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from phishguard.serving.distributed import DASK_CONFIG_DIR
from tests.support import REPO, VENV_BIN, free_port, run_tool, tool_env
from tests.support.service import spawn, stop


@dataclass
class TcpCluster:
    """The scheduler's address and the processes behind it."""

    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)

    def pids(self) -> dict[str, int]:
        """The process id of the scheduler and of each worker (its nanny), by role."""
        workers = {f"worker {i}": w.pid for i, w in enumerate(self.workers)}
        return {"scheduler": self.scheduler.pid, **workers}

    def kill_worker(self, index: int = 0) -> None:
        """SIGKILL one worker (and its nanny's children): Dask must reschedule its tasks."""
        stop_now(self.workers[index])


def run_predict(
    source: Path, out: Path, model: Path, *flags: str, check: bool = True, **env: str
) -> subprocess.CompletedProcess:
    """`phishguard predict SOURCE -o OUT --model MODEL FLAGS…` as a user runs it, with `env`
    added to the environment (`DASK_SCHEDULER_ADDRESS`)."""
    command = ["phishguard", "predict", str(source), "-o", str(out), "--model", str(model)]
    return run_tool([*command, *flags], REPO, check=check, timeout=120, **env)


def stop_now(process: subprocess.Popen) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def wait_for_workers(address: str, count: int, timeout_s: float = 60) -> None:
    """Block until the scheduler at `address` answers and has `count` workers."""
    from distributed import Client

    with Client(address, timeout=timeout_s) as client:
        if count:
            client.wait_for_workers(count, timeout=timeout_s)


@contextmanager
def tcp_cluster(
    workdir: Path, workers: int = 2, memory_limit: str = "2GiB"
) -> Iterator[TcpCluster]:
    """`dask scheduler` + `workers` × `dask worker` (one thread each), loopback TCP only, with
    the batch settings the README recommends (`DASK_CONFIG` at phishguard's dask_config/)."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**tool_env(), "DASK_CONFIG": str(DASK_CONFIG_DIR)}
    dask = str(VENV_BIN / "dask")
    workdir.mkdir(parents=True, exist_ok=True)
    scheduler = spawn(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        workdir,
        env,
        workdir / "scheduler.log",
    )
    cluster = TcpCluster(address, scheduler)
    try:
        for index in range(workers):
            cluster.workers.append(
                spawn(
                    [
                        dask,
                        "worker",
                        address,
                        "--host",
                        "127.0.0.1",
                        "--nthreads",
                        "1",
                        "--nworkers",
                        "1",
                        "--memory-limit",
                        memory_limit,
                        "--no-dashboard",
                        "--local-directory",
                        str(workdir / f"worker-{index}"),
                    ],
                    workdir,
                    env,
                    workdir / f"worker-{index}.log",
                )
            )
        deadline = time.monotonic() + 90
        while True:
            try:
                wait_for_workers(address, workers, timeout_s=10)
                break
            except (OSError, TimeoutError):
                if time.monotonic() > deadline or scheduler.poll() is not None:
                    raise AssertionError(
                        f"the Dask cluster did not start: {(workdir / 'scheduler.log').read_text()}"
                    ) from None
        yield cluster
    finally:
        for process in cluster.workers:
            stop(process)
        stop(scheduler)
