"""Prediction-log benchmark (`make bench-log`, issue 27 items 2 and 5): looking up 1,000
prediction ids (what `POST /feedback` does) in a 1 MB and a ~1 GB log, and the cost of the
synchronous write that now comes before every response.

The logs are written by the real writer (`PredictionLog`, 10-row requests of rows drawn from the
schema's domains) into a temporary folder; `LOG_BENCH_SIZES` (default "1000000,1000000000")
lists their sizes in bytes. For each, 1,000 ids of requests spread over the whole log, and 1,000
unknown ids (a made-up request id, or a real request with a row it never had), are looked up
`LOG_BENCH_REPEATS` times (default 7): median, min and max, and the ratio of the medians.
The page cache is warm (the log was just written); the first lookup in a log written before
the index existed indexes it once, timed separately.

The write: per 1,000-row request, the median time of `record` with the synchronous write
(format + `write` + index row), of the `os.write` alone, and, with 8 threads sending 1-row
requests, how many requests each `write` carried (group commit). Writes
benchmarks/results/log.md and log.json.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from phishguard.contract.schema import FEATURES
from phishguard.monitoring import log_files
from phishguard.monitoring.log_index import INDEX_NAME
from phishguard.monitoring.log_reader import logged_features
from phishguard.monitoring.prediction_log import PredictionLog
from tests.support import synthetic_rows

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SIZES = [int(n) for n in os.environ.get("LOG_BENCH_SIZES", "1000000,1000000000").split(",")]
REPEATS = int(os.environ.get("LOG_BENCH_REPEATS", "7"))
REQUEST_ROWS = 10
IDS = 1_000
MODEL = {"model_version": "bench", "model_sha256": "ab" * 32}
NO_LIMITS = log_files.Retention(days=0, max_bytes=0)


def write_log(directory: Path, size: int) -> int:
    """A log of about `size` bytes; the number of requests in it (`r<i>`)."""
    features = synthetic_rows(5_000, 7).loc[:, list(FEATURES)].to_numpy(np.int8)
    probabilities = np.random.default_rng(7).uniform(size=len(features)).astype(np.float32)
    log = PredictionLog(directory, retention=NO_LIMITS)
    requests = 0
    while True:
        start = (requests * REQUEST_ROWS) % (len(features) - REQUEST_ROWS)
        rows = slice(start, start + REQUEST_ROWS)
        log.record(
            features[rows],
            probabilities[rows],
            0.5,
            source="api",
            request_id=f"r{requests}",
            **MODEL,
        )
        requests += 1
        if requests % 20 == 0 and _log_bytes(directory) >= size:
            break
    log.close()
    return requests


def _log_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.glob("predictions-*.jsonl"))


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def time_lookups(directory: Path, requests: int, seed: int) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    known, unknown = [], []
    for repeat in range(REPEATS):
        picks = rng.choice(requests * REQUEST_ROWS, IDS, replace=False)  # distinct records
        ids = {f"r{p // REQUEST_ROWS}-{p % REQUEST_ROWS}" for p in picks}
        started = time.perf_counter()
        found = logged_features(directory, ids)
        known.append(time.perf_counter() - started)
        assert len(found) == len(ids), "a known id was not found"
        forged = {f"r{p // REQUEST_ROWS}-{REQUEST_ROWS + repeat}" for p in picks[: IDS // 2]}
        forged |= {f"nobody{repeat}x{i}-0" for i in range(IDS - len(forged))}
        started = time.perf_counter()
        assert logged_features(directory, forged) == {}
        unknown.append(time.perf_counter() - started)
    return {"known_s": _spread(known), "unknown_s": _spread(unknown)}


def time_unindexed_first_lookup(directory: Path, requests: int) -> float:
    """A log without its index (as one written before it existed): the first lookup."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{directory / INDEX_NAME}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    logged_features(directory, {f"r{requests - 1}-0"})
    return time.perf_counter() - started


def time_writes(directory: Path) -> dict[str, object]:
    """Per 1,000-row request: the wall time of a synchronous `record` (what a response now
    waits for), and the process CPU per request of the synchronous log against the background
    writer it replaced (the host is shared: CPU time is the steadier measure)."""
    features = synthetic_rows(1_000, 8).loc[:, list(FEATURES)].to_numpy(np.int8)
    probabilities = np.random.default_rng(8).uniform(size=1_000).astype(np.float32)
    calls = 50
    wall: list[float] = []
    cpu: dict[str, list[float]] = {"sync": [], "async": []}
    for repeat in range(REPEATS):
        for mode in ("sync", "async"):
            log = PredictionLog(
                directory / f"{mode}{repeat}", retention=NO_LIMITS, sync=mode == "sync"
            )
            started_cpu = time.process_time()
            for i in range(calls):
                started = time.perf_counter()
                log.record(features, probabilities, 0.5, source="api", request_id=f"w{i}", **MODEL)
                if mode == "sync":
                    wall.append(time.perf_counter() - started)
            log.close()
            cpu[mode].append((time.process_time() - started_cpu) / calls)
    data = (directory / "raw.bin").open("ab", buffering=0)
    buffer = b"x" * (_log_bytes(directory / "sync0") // calls)
    raw_wall, started_cpu = [], time.process_time()
    for _ in range(calls * REPEATS):
        started = time.perf_counter()
        os.write(data.fileno(), buffer)
        raw_wall.append(time.perf_counter() - started)
    raw_cpu = (time.process_time() - started_cpu) / (calls * REPEATS)
    data.close()
    return {
        "record_wall_ms": _spread([1000 * t for t in wall]),
        "record_cpu_ms": {mode: _spread([1000 * t for t in v]) for mode, v in cpu.items()},
        "os_write_wall_ms": _spread([1000 * t for t in raw_wall]),
        "os_write_cpu_ms": 1000 * raw_cpu,
        "bytes_per_request": len(buffer),
        "group_commit": time_group_commit(directory / "grouped"),
    }


def time_group_commit(directory: Path, threads: int = 8, each: int = 500) -> dict[str, float]:
    """8 threads recording 1-row requests: requests per `write` call, and time per request."""
    features = synthetic_rows(1, 9).loc[:, list(FEATURES)].to_numpy(np.int8)
    log = PredictionLog(directory, retention=NO_LIMITS)
    writes = []
    real_write = log_files.os.write

    def counting_write(fd, data):
        writes.append(1)
        return real_write(fd, data)

    log_files.os.write = counting_write

    def send(worker: int) -> None:
        for i in range(each):
            log.record(
                features, np.array([0.5]), 0.5, source="api", request_id=f"g{worker}x{i}", **MODEL
            )

    started = time.perf_counter()
    workers = [threading.Thread(target=send, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    log_files.os.write = real_write
    log.close()
    total = threads * each
    return {"requests": total, "writes": len(writes), "ms_per_request": 1000 * elapsed / total}


def main() -> None:
    results: dict[str, object] = {"repeats": REPEATS, "ids": IDS, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="bench-log-") as folder:
        for size in SIZES:
            directory = Path(folder) / f"log-{size}"
            started = time.perf_counter()
            requests = write_log(directory, size)
            entry = {
                "bytes": _log_bytes(directory),
                "requests": requests,
                "write_s": time.perf_counter() - started,
                **time_lookups(directory, requests, seed=size % 1000),
                "unindexed_first_lookup_s": time_unindexed_first_lookup(directory, requests),
            }
            results["sizes"][str(size)] = entry  # type: ignore[index]
            print(size, json.dumps(entry))
        results["write"] = time_writes(Path(folder) / "writes")
    small, large = (results["sizes"][str(s)] for s in (min(SIZES), max(SIZES)))  # type: ignore[index]
    results["ratio_known"] = large["known_s"]["median"] / small["known_s"]["median"]
    results["ratio_unknown"] = large["unknown_s"]["median"] / small["unknown_s"]["median"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "log.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "log.md").write_text(report(results))
    print(report(results))


def report(results: dict) -> str:
    def ms(spread: dict[str, float]) -> str:
        return f"{1000 * spread['median']:.1f} ms ({1000 * spread['min']:.1f}–{1000 * spread['max']:.1f})"

    lines = [
        "# Prediction-log lookups and writes (`make bench-log`)",
        "",
        f"{results['ids']:,} ids per lookup, {results['repeats']} repeats: median (min–max); "
        "warm page cache. Generated by benchmarks/log.py.",
        "",
        "| log | requests | 1,000 known ids | 1,000 unknown ids | first lookup without index |",
        "|---|---|---|---|---|",
    ]
    for entry in results["sizes"].values():
        lines.append(
            f"| {entry['bytes'] / 1e6:,.1f} MB | {entry['requests']:,} | {ms(entry['known_s'])} | "
            f"{ms(entry['unknown_s'])} | {entry['unindexed_first_lookup_s']:.2f} s |"
        )
    write = results["write"]
    group = write["group_commit"]
    lines += [
        "",
        f"Ratio of the medians, largest log against smallest: known ids ×{results['ratio_known']:.2f}, "
        f"unknown ids ×{results['ratio_unknown']:.2f}.",
        "",
        "## The synchronous write",
        "",
        f"Per 1,000-row request ({write['bytes_per_request'] / 1e3:.0f} kB of JSONL), "
        f"{results['repeats']} runs of 50 requests: median (min–max).",
        "",
        "| | median (min–max) |",
        "|---|---|",
        f"| wall time of a synchronous `record` (format + `write`) | {_ms(write['record_wall_ms'])} |",
        f"| process CPU per request, synchronous log | {_ms(write['record_cpu_ms']['sync'])} |",
        "| process CPU per request, background writer (before) | "
        f"{_ms(write['record_cpu_ms']['async'])} |",
        f"| wall time of the `os.write` alone | {_ms(write['os_write_wall_ms'])} |",
        f"| CPU of the `os.write` alone (mean) | {write['os_write_cpu_ms']:.3f} ms |",
        "",
        f"Group commit, 8 threads × 1-row requests: {group['requests']:,} requests in "
        f"{group['writes']:,} `write` calls ({group['requests'] / group['writes']:.1f} requests "
        f"per write), {group['ms_per_request']:.3f} ms per request.",
        "",
    ]
    return "\n".join(lines)


def _ms(spread: dict[str, float]) -> str:
    return f"{spread['median']:.3f} ms ({spread['min']:.3f}–{spread['max']:.3f})"


if __name__ == "__main__":
    main()
