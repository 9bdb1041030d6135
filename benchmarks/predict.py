"""Throughput of single-process `phishguard predict` (`make bench-predict`): rows/s for
Parquet -> Parquet and CSV -> CSV, against the model's own cost on the same rows. Writes
benchmarks/results/predict.md and predict.json.

Rows are drawn from the schema's domains (never copied from the dataset) into temporary files
(int8 Parquet, as the pipeline writes it, and CSV); `PREDICT_ROWS` (default 1,000,000) sets
their size and `PREDICT_RUNS` (default 3) the runs per case, of which the medians are
reported. Each case is a `phishguard predict` child process with the packaged model
(`PREDICT_MODEL`, default the latest package); its wall time, CPU time (user + system, from
wait4) and peak RSS are recorded. A one-row run measures the start-up (imports, model load),
so the steady rate is also given. The model-only cost is `Booster.inplace_predict` on the same
rows' model inputs, one thread, in the same chunks. `PREDICT_BASELINE=<git revision>` runs the
same cases with that revision's `src/` too (old against new in one run, on the same machine
load).

The prediction log is on by default in `phishguard predict`, so Parquet runs twice: with the
log (into a temporary folder; a Parquet file per run, JSONL before) and with
`PHISHGUARD_PREDICTION_LOG=off`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from phishguard.contract.schema import COLUMNS, DOMAINS, FEATURES
from phishguard.io import CHUNK_ROWS
from phishguard.modeling import bundle
from phishguard.serving.scoring import packaged_model_dir

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
ROWS = int(os.environ.get("PREDICT_ROWS", "1000000"))
RUNS = int(os.environ.get("PREDICT_RUNS", "3"))
BASELINE = os.environ.get("PREDICT_BASELINE", "")
GOAL_ROWS_PER_S = 120_000


def write_inputs(directory: Path, rows: int, seed: int = 0) -> dict[str, Path]:
    """`rows` valid rows (features + Result) as int8 Parquet and as CSV; a one-row Parquet."""
    rng = np.random.default_rng(seed)
    table = pa.table(
        {c: rng.choice(np.array(DOMAINS[c], dtype=np.int8), size=rows) for c in COLUMNS}
    )
    paths = {
        "parquet": directory / "rows.parquet",
        "csv": directory / "rows.csv",
        "one": directory / "one.parquet",
    }
    pq.write_table(table, paths["parquet"], row_group_size=CHUNK_ROWS)
    pq.write_table(table.slice(0, 1), paths["one"])
    with paths["csv"].open("w") as out:
        out.write(",".join(COLUMNS) + "\n")
        for start in range(0, rows, 500_000):
            block = np.column_stack([table[c].to_numpy()[start : start + 500_000] for c in COLUMNS])
            np.savetxt(out, block, fmt="%d", delimiter=",")
    return paths


# Runs the command and prints its rusage: a child forked from this small process, so its peak
# RSS is its own, not the benchmark's (a forked child starts at its parent's resident size).
_LAUNCHER = """
import json, os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
_, status, usage = os.wait4(child.pid, 0)
code = os.waitstatus_to_exitcode(status)
print(json.dumps({"code": code, "error": child.stderr.read().decode()[-2000:],
                  "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024}))
"""


def run(command: list[str], env: dict[str, str]) -> dict[str, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of one child process."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, *command],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    wall = time.monotonic() - started
    measured = json.loads(done.stdout)
    if measured["code"] != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {measured['error']}")
    return {"wall_s": wall, "cpu_s": measured["cpu_s"], "peak_rss_mb": measured["peak_rss_mb"]}


def model_only(source: Path, package: Path) -> dict[str, float]:
    """Seconds (wall and CPU) of `inplace_predict` alone over the file's rows, one thread."""
    loaded = bundle.load(package, nthread=1)
    features = pq.read_table(source, columns=list(FEATURES))
    matrix = np.vstack([features[c].to_numpy() for c in FEATURES]).T.astype(np.float32)
    inputs = [loaded.inputs(matrix[i : i + CHUNK_ROWS]) for i in range(0, len(matrix), CHUNK_ROWS)]
    wall, cpu = time.perf_counter(), time.process_time()
    for chunk in inputs:
        loaded.model.inplace_predict(chunk, validate_features=False)
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


def baseline_src(revision: str, directory: Path) -> Path:
    """The `src/` of a git revision, extracted into `directory` (for PYTHONPATH)."""
    archive = subprocess.run(
        ["git", "archive", revision, "src"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    return directory / "src"


def cases(paths: dict[str, Path], work: Path, package: Path) -> dict[str, tuple[list[str], dict]]:
    """Each measured command and its extra environment."""

    def predict(source: Path, output: str) -> list[str]:
        return [sys.executable, "-m", "phishguard.cli", "predict", str(source),
                "-o", str(work / output), "--model", str(package)]  # fmt: skip

    off = {"PHISHGUARD_PREDICTION_LOG": "off"}
    return {
        "start-up (1 row)": (predict(paths["one"], "one-scored.parquet"), off),
        "Parquet -> Parquet, log off": (predict(paths["parquet"], "out.parquet"), off),
        "Parquet -> Parquet, log on": (
            predict(paths["parquet"], "out.parquet"),
            {"PHISHGUARD_PREDICTION_LOG": str(work / "predictions")},
        ),
        "CSV -> CSV, log off": (predict(paths["csv"], "out.csv"), off),
    }


def measure(code: str, src: Path | None, paths, work: Path, package: Path) -> list[dict]:
    """Every case, `RUNS` times (interleaved), with `src` first on PYTHONPATH if given."""
    results = []
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = f"{src}{os.pathsep}{env.get('PYTHONPATH', '')}"
    runs: dict[str, list[dict]] = {}
    for _ in range(RUNS):
        for name, (command, extra) in cases(paths, work, package).items():
            measured = run(command, {**env, **extra})
            logs = [p for p in (work / "predictions").glob("predictions-*") if p.is_file()]
            if logs:  # every scored row logged? (a full queue drops batches)
                measured["logged_rows"] = sum(_records(log) for log in logs)
            for log in logs:
                log.unlink()
            runs.setdefault(name, []).append(measured)
    for name, measured in runs.items():
        rows = 1 if name.startswith("start-up") else ROWS
        median = {key: statistics.median(m[key] for m in measured) for key in measured[0]}
        median.pop("logged_rows", None)
        if "logged_rows" in measured[0]:
            median["logged_rows_min"] = min(m["logged_rows"] for m in measured)
        results.append({"code": code, "case": name, "rows": rows, "runs": measured, **median})
        print(f"{code}: {name}: {median}", flush=True)
    return results


def _records(path: Path) -> int:
    """Records in one prediction-log file: Parquet rows, or JSONL lines."""
    if path.suffix == ".parquet":
        return pq.ParquetFile(path).metadata.num_rows
    with path.open("rb") as handle:
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))


def main() -> None:
    package = Path(os.environ.get("PREDICT_MODEL") or packaged_model_dir()).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        paths = write_inputs(work, ROWS)
        model = [model_only(paths["parquet"], package) for _ in range(RUNS)]
        model_cpu = statistics.median(m["cpu_s"] for m in model)
        model_wall = statistics.median(m["wall_s"] for m in model)
        results = measure("this checkout", None, paths, work, package)
        if BASELINE:
            src = baseline_src(BASELINE, work / "baseline")
            results += measure(f"baseline {BASELINE}", src, paths, work, package)
    report(results, model_wall, model_cpu, package)


def report(results: list[dict], model_wall: float, model_cpu: float, package: Path) -> None:
    startup = {r["code"]: r for r in results if r["case"].startswith("start-up")}
    rows, logged = [], []
    for r in results:
        if r["case"].startswith("start-up"):
            continue
        boot = startup[r["code"]]
        steady_wall = r["wall_s"] - boot["wall_s"]
        steady_cpu = r["cpu_s"] - boot["cpu_s"]
        r.update(
            rows_per_s=r["rows"] / r["wall_s"],
            steady_rows_per_s=r["rows"] / steady_wall,
            rows_per_cpu_s=r["rows"] / steady_cpu,
            cpu_us_per_row=steady_cpu / r["rows"] * 1e6,
            ratio_to_model=steady_cpu / model_cpu,
        )
        rows.append(
            f"| {r['code']} | {r['case']} | {r['rows_per_s'] / 1e3:.0f}k | "
            f"{r['steady_rows_per_s'] / 1e3:.0f}k | {r['rows_per_cpu_s'] / 1e3:.0f}k | "
            f"{r['cpu_us_per_row']:.1f} µs | {r['ratio_to_model']:.2f}x | "
            f"{r['peak_rss_mb']:.0f} MB |"
        )
        if "logged_rows_min" in r:
            logged.append(
                f"- {r['code']}, {r['case']}: at least {r['logged_rows_min']:,} of {r['rows']:,} "
                "scored rows in the prediction log in every run."
            )
    boots = ", ".join(
        f"{code}: {b['wall_s']:.1f} s wall, {b['cpu_s']:.1f} s CPU" for code, b in startup.items()
    )
    lines = [
        "# `phishguard predict` throughput, single process (`make bench-predict`)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} shared cores "
        f"(load average {os.getloadavg()[0]:.1f} at the end); {ROWS:,} synthetic valid rows; "
        f"medians of {RUNS} runs; model `{package.name}` (one predict thread). "
        f"Goal: {GOAL_ROWS_PER_S / 1e3:.0f}k rows/s on one core, Parquet in and out.",
        "",
        f"- Model only (`inplace_predict`, same rows, chunks of {CHUNK_ROWS:,}): "
        f"{ROWS / model_wall / 1e3:.0f}k rows/s wall, {model_cpu / ROWS * 1e6:.1f} µs CPU/row.",
        f"- Start-up (a one-row file: imports, model load): {boots}.",
        "- *steady*: wall time minus the start-up; *per CPU-s* and *CPU/row*: the process's user"
        " + system time minus the start-up's, which the other jobs on the shared cores disturb"
        " far less than wall time; *× model*: that CPU time over the model-only CPU time.",
        "",
        "| code | case | rows/s (wall) | steady rows/s | rows per CPU-s | CPU/row | × model "
        "| peak RSS |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        *logged,
        "",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = {
        "rows": ROWS,
        "runs": RUNS,
        "model_only": {"wall_s": model_wall, "cpu_s": model_cpu},
        "results": results,
    }
    (RESULTS / "predict.json").write_text(json.dumps(summary, indent=2) + "\n")
    (RESULTS / "predict.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
