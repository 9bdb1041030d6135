"""Serving benchmark: the same model and load against in-process scoring, the BentoML service
and a minimal hand-written FastAPI + uvicorn server. Writes benchmarks/results/serve.md.

Load comes from `wrk` (Debian package) with post.lua; everything runs on 127.0.0.1 and every
server this script starts is stopped by its process group. Environment knobs:
BENCH_SECONDS (default 10 per scenario), BENCH_WORKERS (default 2, for both servers).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report import write_report
from phishguard.contract.record_checks import records_matrix
from phishguard.contract.schema import DOMAINS, FEATURES
from phishguard.serving.scoring import load_scorer, packaged_model_dir
from tests.support import free_port, wait_until_up
from tests.support.service import spawn, stop

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SCENARIOS = (
    # name, connections, body
    ("single_c1", 1, "single"),
    ("single_c16", 16, "single"),
    ("batch_c4", 4, "batch"),
)


def synthetic_records(n: int, seed: int) -> list[dict[str, int]]:
    """`n` records drawn from the schema's domains (never copied from the dataset)."""
    rng = np.random.default_rng(seed)
    columns = {name: rng.choice(np.array(DOMAINS[name]), size=n).tolist() for name in FEATURES}
    return [{name: columns[name][i] for name in FEATURES} for i in range(n)]


def in_process(package: Path, single: list[dict], batch: list[dict]) -> dict[str, Any]:
    """Validation + prediction in this process, one thread (no HTTP, no JSON)."""
    scorer = load_scorer(package, nthread=1)
    times = []
    for _ in range(3000):
        start = time.perf_counter()
        scorer.results(records_matrix(single, 10_000))
        times.append(time.perf_counter() - start)
    times = times[500:]  # warm-up
    batch_times = []
    for _ in range(40):
        start = time.perf_counter()
        scorer.results(records_matrix(batch, 10_000))
        batch_times.append(time.perf_counter() - start)
    return {
        "single_c1": {
            "p50_ms": 1e3 * float(np.percentile(times, 50)),
            "p99_ms": 1e3 * float(np.percentile(times, 99)),
            "rps": 1 / statistics.mean(times),
            "errors": 0,
            "cpu_ms_per_request": 1e3 * float(np.percentile(times, 50)),
        },
        "batch_c4": {
            "rows_per_s": len(batch) / statistics.median(batch_times),
            "p50_ms": 1e3 * statistics.median(batch_times),
            "cpu_ms_per_request": 1e3 * statistics.median(batch_times),
            "errors": 0,
            "note": "one core",
        },
    }


def descendants(pid: int) -> list[int]:
    """All processes below `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    usage = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        usage[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return usage


def run_wrk(url: str, body: Path, connections: int, seconds: int) -> dict[str, Any]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    command += ["-s", str(HERE / "post.lua"), url]
    done = subprocess.run(
        command,
        env={**os.environ, "BODY_FILE": str(body)},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def running_server(command: list[str], env: dict, port: int) -> Iterator[subprocess.Popen]:
    """Start a server on 127.0.0.1:`port`, wait for /readyz, and stop its process group after."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        server = spawn(command, REPO, env, log)
        try:
            wait_until_up(server, f"http://127.0.0.1:{port}/readyz", log, 120)
            yield server
        finally:
            stop(server)


def measure_server(name: str, command: list[str], env: dict, port: int, bodies: dict) -> dict:
    """Start one server, warm it up, run every scenario, stop it."""
    url = f"http://127.0.0.1:{port}/predict"
    with running_server(command, env, port) as server:
        run_wrk(url, bodies["single"], 2, 3)  # warm-up
        results = {}
        for scenario, connections, body in SCENARIOS:
            workers = [*descendants(server.pid), server.pid]
            before = cpu_seconds(workers)
            raw = run_wrk(url, bodies[body], connections, SECONDS)
            after = cpu_seconds(workers)
            busy = sorted(
                (after[p] - before[p] for p in after if p in before and after[p] > before[p]),
                reverse=True,
            )
            seconds = raw["duration_us"] / 1e6
            errors = sum(raw[k] for k in raw if k.endswith("errors") or k == "timeouts")
            rows = 1000 if body == "batch" else 1
            results[scenario] = {
                "p50_ms": raw["p50_us"] / 1e3,
                "p99_ms": raw["p99_us"] / 1e3,
                "max_ms": raw["max_us"] / 1e3,
                "rps": raw["requests"] / seconds,
                "rows_per_s": raw["requests"] * rows / seconds,
                "errors": errors,
                "requests": raw["requests"],
                "cpu_s_by_process": [round(b, 2) for b in busy[:4]],
                # Server CPU per request: robust to other jobs taking the cores, unlike latency.
                "cpu_ms_per_request": 1e3 * sum(busy) / max(raw["requests"], 1),
            }
            print(f"{name} {scenario}: {json.dumps(results[scenario])}", file=sys.stderr)
        return results


BENTOML = "BentoML service"
BENTOML_NO_LOG = "BentoML service, prediction log off"
FASTAPI = "FastAPI + uvicorn (hand-written)"
PAIRS = [(BENTOML_NO_LOG, FASTAPI), (BENTOML, BENTOML_NO_LOG)]
"""The ratios reported: the framework's cost against a hand-written server (neither logs),
and the prediction log's cost (issue 12: c=16 req/s with the log ≥ 0.9× without)."""


def servers(package: Path, log_dir: Path) -> dict[str, tuple[list[str], dict, int]]:
    env = {**os.environ, "PHISHGUARD_PACKAGE_DIR": str(package), "PYTHONPATH": str(REPO)}
    bento_env = {**env, "PHISHGUARD_WORKERS": str(WORKERS)}
    ports = [free_port() for _ in range(3)]
    bento = ["bentoml", "serve", "service.service:Phishguard", "--host", "127.0.0.1"]
    fastapi = ["uvicorn", "benchmarks.fastapi_server:app", "--host", "127.0.0.1"]
    fastapi += ["--no-access-log", "--log-level", "warning", "--workers", str(WORKERS)]
    return {
        BENTOML: (
            [*bento, "--port", str(ports[0])],
            {**bento_env, "PHISHGUARD_PREDICTION_LOG": str(log_dir)},
            ports[0],
        ),
        BENTOML_NO_LOG: (
            [*bento, "--port", str(ports[1])],
            {**bento_env, "PHISHGUARD_PREDICTION_LOG": "off"},
            ports[1],
        ),
        FASTAPI: ([*fastapi, "--port", str(ports[2])], env, ports[2]),
    }


def run_context(package: Path, load_before: tuple[float, ...], **extra: object) -> dict:
    """When, on what and with which model a benchmark ran (for its report's first line)."""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cores": os.cpu_count(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        **extra,
        "package": package.name,
        "trees": json.loads((package / "package.json").read_text())["hyperparameters"].get(
            "n_estimators"
        ),
    }


def main() -> None:
    package = packaged_model_dir()
    single, batch = synthetic_records(1, 1), synthetic_records(1000, 2)
    with tempfile.TemporaryDirectory() as tmp:
        bodies = {}
        for key, records in (("single", single), ("batch", batch)):
            bodies[key] = Path(tmp) / f"{key}.json"
            bodies[key].write_text(json.dumps({"records": records}))
        load_before = os.getloadavg()
        results = {"in-process (validation + predict)": in_process(package, single, batch)}
        for name, (command, env, port) in servers(package, Path(tmp) / "predictions").items():
            results[name] = measure_server(name, command, env, port, bodies)
    context = run_context(package, load_before, seconds=SECONDS, workers=WORKERS)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serve.json").write_text(
        json.dumps({"context": context, "results": results}, indent=1) + "\n"
    )
    write_report(context, results, RESULTS / "serve.md", PAIRS)
    print((RESULTS / "serve.md").read_text())


if __name__ == "__main__":
    main()
