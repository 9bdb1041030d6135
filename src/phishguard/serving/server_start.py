"""What `bentoml serve`'s main process settles before any worker starts: the address it binds
and a Prometheus directory of its own.

- **Address.** The service declares `http={"host": LOOPBACK}` (BentoML's service config, which
  `--host`, `BENTOML_HOST` and a configuration file override), so a plain `bentoml serve` binds
  127.0.0.1, not BentoML's default 0.0.0.0. `check_address` (an `on_deployment` hook) refuses
  an invalid port (BentoML takes any integer: `--port 99999` bound a random port) and a port
  already taken (a 54-line traceback from circus) with one line each, and logs the address
  that will be bound (BentoML's own line says `localhost` for 0.0.0.0).
- **Metrics directory.** BentoML keeps its multiprocess metrics in
  `$BENTOML_HOME/prometheus_multiproc_dir` and empties it at every start, so a second server in
  the same checkout (even one refused at start) emptied the first one's /metrics.
  `own_metrics_directory` gives each server `$BENTOML_HOME/prometheus/<pid>`, through the
  setting BentoML's own test plugin overrides (`BentoMLContainer.prometheus_multiproc_dir`),
  removes it when the server exits, and removes only the directories of servers no longer
  running.
"""

from __future__ import annotations

import atexit
import errno
import logging
import os
import shutil
import socket
from pathlib import Path

import click
from bentoml._internal.configuration.containers import BentoMLContainer

from phishguard import PhishguardError

LOOPBACK = "127.0.0.1"
METRICS_FOLDER = "prometheus"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # set by BentoML in every worker it starts
LOG = logging.getLogger("bentoml.phishguard")


def _serve_options() -> dict[str, object] | None:
    """The options of the running `bentoml serve` command (None: not under it)."""
    context = click.get_current_context(silent=True)
    while context is not None and context.info_name != "serve":
        context = context.parent
    return None if context is None else context.params


def check_address() -> None:
    """Refuse, with one line, a port that is invalid or taken on the host to bind; log the
    address. Nothing is checked outside `bentoml serve` (in-process tests, `bentoml build`)."""
    options = _serve_options()
    if options is None:
        return
    host = str(options.get("host") or BentoMLContainer.http.host.get())
    given = options.get("port")  # 0 too: BentoML would bind a random port for it
    port = BentoMLContainer.http.port.get() if given is None else given
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise PhishguardError(f"port {port} is not a TCP port: give --port a number 1-65535")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as circus binds
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                advice = "stop the other server or give another --port"
                raise PhishguardError(
                    f"port {port} on {host} is already in use: {advice}"
                ) from None
            reason = error.strerror or str(error)
            raise PhishguardError(f"cannot bind {host}:{port}: {reason}") from None
    everywhere = (
        " (every interface: reachable from the network)" if host in ("0.0.0.0", "::") else ""
    )
    shown = f"[{host}]" if ":" in host else host
    LOG.info("binding http://%s:%d%s", shown, port, everywhere)


def own_metrics_directory() -> None:
    """Give this `bentoml serve` its own multiprocess metrics directory (see the module)."""
    if MULTIPROC_ENV in os.environ or _serve_options() is None:
        return  # a worker (its server's directory is set) or not a server
    parent = Path(BentoMLContainer.bentoml_home.get()) / METRICS_FOLDER
    for stale in parent.glob("*"):
        if stale.name.isdigit() and not _running(int(stale.name)):
            shutil.rmtree(stale, ignore_errors=True)
    mine = parent / str(os.getpid())
    BentoMLContainer.prometheus_multiproc_dir.set(str(mine))
    atexit.register(shutil.rmtree, mine, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
