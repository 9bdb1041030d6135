"""Where phishguard's Dask work runs, for batch scoring (`phishguard predict --scheduler` or
`--workers`) and for training (`model: xgboost_dask`): one rule for the address, one local
cluster that listens on loopback only, one connection check that fails in one line.

`distributed` is imported inside the functions: the single-process paths never pay for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from phishguard import PhishguardError, first_line

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

SCHEDULER_VARIABLE = "DASK_SCHEDULER_ADDRESS"
LOCAL = "local"
"""The address that asks for a local cluster instead of a scheduler."""
CONNECT_TIMEOUT_S = 10
LOOPBACK = "127.0.0.1:0"
"""A free port on 127.0.0.1."""


class DaskClusterError(PhishguardError, ConnectionError):
    """The Dask scheduler cannot be reached, or has no workers."""


def scheduler_address(
    configured: str | None, environ: Mapping[str, str] = os.environ
) -> str | None:
    """`configured`, else $DASK_SCHEDULER_ADDRESS, else None (no cluster named)."""
    return configured or environ.get(SCHEDULER_VARIABLE) or None


def local_cluster(workers: int, processes: bool) -> LocalCluster:
    """A LocalCluster of `workers` single-threaded workers, without a dashboard, in worker
    processes or (`processes=False`) in this one.

    Everything it opens listens on 127.0.0.1: the comms (TCP on 127.0.0.1 by Dask's default,
    in-process transport without worker processes), and the HTTP routes (health, metrics) that
    Dask starts even without a dashboard, by default on every interface (the scheduler's on
    8787)."""
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=processes,
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": LOOPBACK},
        worker_dashboard_address=LOOPBACK,
    )


def connect(address: str, hint: str) -> Client:
    """A client of the scheduler at `address` that has at least one worker. Otherwise a
    `DaskClusterError` in one line, after `CONNECT_TIMEOUT_S` for each of the two waits;
    `hint` says what to do when nothing answers."""
    from distributed import Client

    origin = f" (${SCHEDULER_VARIABLE})" if address == os.environ.get(SCHEDULER_VARIABLE) else ""
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as error:
        raise DaskClusterError(
            f"cannot reach the Dask scheduler at {address}{origin} within "
            f"{CONNECT_TIMEOUT_S} s ({first_line(error)}); {hint}"
        ) from None
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as error:
        client.close()
        raise DaskClusterError(
            f"the Dask scheduler at {address}{origin} has no worker after "
            f"{CONNECT_TIMEOUT_S} s ({first_line(error)}); start `dask worker {address}`"
        ) from None
    return client
