"""`make s3-local`: a throw-away S3 endpoint on loopback, for trying `dvc push`/`pull` without AWS.

`start` runs moto's S3 server on 127.0.0.1 in the background, creates a bucket, and adds a
`local-s3` remote to the git-ignored `.dvc/config.local` (endpoint and dummy credentials
included, so no environment is needed). `stop` ends that server and removes the remote
again: a config.local section for a remote that no longer exists would break every dvc
command, and moto keeps its objects in memory only, so nothing is lost that was not already
gone. The committed `.dvc/config` is never touched.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from phishguard import PhishguardError
from phishguard.entrypoint import run
from phishguard.io import write_atomic

REMOTE = "local-s3"
BUCKET = "phishguard-local"
DEFAULT_PORT = 5555
STATE_DIR = Path(".dvc") / "tmp"
PID_FILE = STATE_DIR / "local-s3.pid"
LOG_FILE = STATE_DIR / "local-s3.log"
CREDENTIAL = "testing"  # moto accepts any key; this one is a placeholder, not a secret


def _answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _running_pid() -> int | None:
    try:
        pid = int(PID_FILE.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return pid


def _dvc(*args: str) -> None:
    result = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise PhishguardError(f"dvc {' '.join(args)} failed: {result.stderr.strip()}")


def start(port: int = DEFAULT_PORT, timeout_s: float = 30) -> str:
    """Start (or reuse) the local endpoint and configure the `local-s3` remote; return its URL."""
    import boto3

    endpoint = f"http://127.0.0.1:{port}"
    if _running_pid() is None:
        if _answers(port):
            raise PhishguardError(
                f"port {port} is already taken; pick another: make s3-local S3_LOCAL_PORT=5556"
            )
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        with LOG_FILE.open("ab") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        write_atomic(PID_FILE, f"{server.pid}\n")
        deadline = time.monotonic() + timeout_s
        while not _answers(port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise PhishguardError(f"the local S3 server did not start; see {LOG_FILE}")
            time.sleep(0.2)
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=CREDENTIAL,
        aws_secret_access_key=CREDENTIAL,
        region_name="us-east-1",
    )
    if BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=BUCKET)
    _dvc("remote", "add", "--local", "--force", REMOTE, f"s3://{BUCKET}/store")
    for key, value in (
        ("endpointurl", endpoint),
        ("access_key_id", CREDENTIAL),
        ("secret_access_key", CREDENTIAL),
    ):
        _dvc("remote", "modify", "--local", REMOTE, key, value)
    return endpoint


def stop() -> bool:
    """Stop the server `start` left running and remove the remote; False if none was running."""
    pid = _running_pid()
    if pid is not None:
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _running_pid() == pid and time.monotonic() < deadline:
            time.sleep(0.1)
    PID_FILE.unlink(missing_ok=True)
    result = subprocess.run(["dvc", "remote", "list", "--local"], capture_output=True, text=True)
    if REMOTE in result.stdout.split():
        _dvc("remote", "remove", "--local", REMOTE)
    return pid is not None


def main(argv: list[str] | None = None) -> None:
    """`python -m phishguard.data.local_s3 start|stop [--port N]`."""
    parser = argparse.ArgumentParser(prog="python -m phishguard.data.local_s3", description=__doc__)
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="default: %(default)s")
    args = parser.parse_args(argv)

    def act() -> None:
        if args.action == "start":
            endpoint = start(args.port)
            print(
                f"local S3 endpoint {endpoint} (moto, in memory); DVC remote '{REMOTE}' -> "
                f"s3://{BUCKET}/store in .dvc/config.local\n"
                f"  try: dvc push -r {REMOTE} && dvc pull -r {REMOTE}\n"
                "  stop: make s3-local-stop"
            )
        else:
            print("stopped the local S3 endpoint" if stop() else "no local S3 endpoint was running")

    run(act, "s3-local")


if __name__ == "__main__":
    main(sys.argv[1:])
