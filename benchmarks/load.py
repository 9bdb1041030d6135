"""Load and soak benchmark (`make bench-load`): a fixed number of requests against
`bentoml serve` on 127.0.0.1 with the packaged model; errors, latency, throughput and the
server's memory before and after. Writes benchmarks/results/load.md and load.json.

`wrk -t1 -c$LOAD_CONNECTIONS` (default 32) sends one-record bodies until $LOAD_REQUESTS
(default 50,000) have been answered, capped at $LOAD_MAX_SECONDS (default 600). Memory is the
resident set (VmRSS) summed over the server's process tree, after a 500-request warm-up and
again after the run. The server this script starts is stopped by its process group.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.serve import descendants, run_context, running_server, synthetic_records
from phishguard.serving.scoring import packaged_model_dir
from tests.support import free_port

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
REQUESTS = int(os.environ.get("LOAD_REQUESTS", "50000"))
CONNECTIONS = int(os.environ.get("LOAD_CONNECTIONS", "32"))
MAX_SECONDS = int(os.environ.get("LOAD_MAX_SECONDS", "600"))
TARGET_ERRORS = 0
TARGET_RSS_GROWTH = 0.10


def rss_bytes(pids: list[int]) -> dict[int, int]:
    """VmRSS of each live process, in bytes."""
    usage = {}
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                usage[pid] = int(line.split()[1]) * 1024
    return usage


def run_wrk(url: str, body: Path, requests: int) -> dict:
    command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{MAX_SECONDS}s", "--timeout", "5s"]
    done = body.with_name("done")
    done.unlink(missing_ok=True)
    wrk = subprocess.Popen(
        [*command, "-s", "load.lua", url],
        cwd=HERE,
        env={
            **os.environ,
            "BODY_FILE": str(body),
            "REQUESTS": str(requests),
            "DONE_FILE": str(done),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + MAX_SECONDS + 5
    while wrk.poll() is None and not done.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if wrk.poll() is None:
        wrk.send_signal(signal.SIGINT)  # wrk stops and prints its summary
    out, err = wrk.communicate(timeout=60)
    if wrk.returncode != 0:
        raise RuntimeError(f"wrk exited {wrk.returncode}: {err}")
    return json.loads(out.strip().splitlines()[-1])


def measure(package: Path, body: Path) -> dict:
    port = free_port()
    env = {**os.environ, "PHISHGUARD_PACKAGE_DIR": str(package), "PYTHONPATH": str(REPO)}
    command = ["bentoml", "serve", "service.service:Phishguard", "--host", "127.0.0.1"]
    with running_server([*command, "--port", str(port)], env, port) as server:
        url = f"http://127.0.0.1:{port}/predict"
        run_wrk(url, body, 500)  # warm-up: first requests allocate caches
        pids = [server.pid, *descendants(server.pid)]
        before = rss_bytes(pids)
        started = time.monotonic()
        run = run_wrk(url, body, REQUESTS)
        wall = time.monotonic() - started
        after = rss_bytes(pids)
    errors = sum(
        run[k]
        for k in ("status_errors", "connect_errors", "read_errors", "write_errors", "timeouts")
    )
    rss_before, rss_after = sum(before.values()), sum(after.values())
    return {
        "requests": run["requests"],
        "errors": errors,
        "error_detail": {k: v for k, v in run.items() if k.endswith(("errors", "timeouts"))},
        "p50_ms": run["p50_us"] / 1000,
        "p99_ms": run["p99_us"] / 1000,
        "max_ms": run["max_us"] / 1000,
        "requests_per_s": run["requests"] / (run["duration_us"] / 1e6),
        "wall_s": wall,
        "rss_before_mb": rss_before / 2**20,
        "rss_after_mb": rss_after / 2**20,
        "rss_growth": (rss_after - rss_before) / rss_before,
        "processes": len(before),
    }


def report(result: dict, context: dict) -> str:
    ok_errors = result["errors"] <= TARGET_ERRORS
    ok_rss = result["rss_growth"] < TARGET_RSS_GROWTH
    mark = {True: "met", False: "**missed**"}
    return "\n".join(
        [
            "# Load and soak: `bentoml serve` on 127.0.0.1 (`make bench-load`)",
            "",
            f"{context['date']}, {context['cores']} shared cores (load average before "
            f"{context['load_before']}, after {context['load_after']}); package "
            f"`{context['package']}` ({context['trees']} trees); one-record JSON bodies, "
            f"`wrk -t1 -c{CONNECTIONS}`, one BentoML worker with one predict thread "
            "(the service's defaults). One run; p50 is the median.",
            "",
            "| measure | value | target |",
            "|---|---|---|",
            f"| requests answered | {result['requests']:,} | {REQUESTS:,} |",
            f"| errors (non-2xx, socket, timeouts) | {result['errors']} | "
            f"{TARGET_ERRORS} ({mark[ok_errors]}) |",
            f"| latency p50 / p99 / max | {result['p50_ms']:.2f} / {result['p99_ms']:.2f} / "
            f"{result['max_ms']:.1f} ms | |",
            f"| throughput | {result['requests_per_s']:.0f} req/s | |",
            f"| server RSS before → after ({result['processes']} processes) | "
            f"{result['rss_before_mb']:.1f} → {result['rss_after_mb']:.1f} MB "
            f"({result['rss_growth']:+.1%}) | < +{TARGET_RSS_GROWTH:.0%} ({mark[ok_rss]}) |",
            "",
            "Raw numbers: `load.json`. The machine is shared and noisy: compare runs by their "
            "medians, and read the p99 with the load average beside it.",
            "",
        ]
    )


def main() -> None:
    package = packaged_model_dir()
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "single.json"
        body.write_text(json.dumps({"records": synthetic_records(1, 1)}))
        load_before = os.getloadavg()
        result = measure(package, body)
    context = run_context(package, load_before)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "load.json").write_text(json.dumps({**context, **result}, indent=2) + "\n")
    text = report(result, context)
    (RESULTS / "load.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
