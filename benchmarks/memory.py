"""Memory benchmark (`make bench-memory`): peak RSS of the `ingest` and `validate` stages,
`phishguard load --dry-run` and `phishguard predict` on synthetic files of growing size.
Bounded memory means the peak hardly grows with the row count. Writes
benchmarks/results/memory.md and memory.json.

Rows are drawn from the schema's domains (never copied from the dataset) into a temporary
CSV; `MEMORY_ROWS` (default "100000,3000000") lists the sizes. Each command runs as a child
process; its peak resident set is the kernel's ru_maxrss from wait4.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from phishguard.contract.schema import COLUMNS, DOMAINS
from phishguard.serving.scoring import packaged_model_dir

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
SIZES = [int(n) for n in os.environ.get("MEMORY_ROWS", "100000,3000000").split(",")]
CHUNK = 500_000


def write_rows(path: Path, n: int, seed: int = 0) -> None:
    """`n` valid rows (features + Result) as CSV, written in chunks."""
    rng = np.random.default_rng(seed)
    with path.open("w") as out:
        out.write(",".join(COLUMNS) + "\n")
        for start in range(0, n, CHUNK):
            size = min(CHUNK, n - start)
            block = np.column_stack(
                [rng.choice(np.array(DOMAINS[c], dtype=np.int8), size=size) for c in COLUMNS]
            )
            np.savetxt(out, block, fmt="%d", delimiter=",")


def peak_rss(command: list[str], cwd: Path) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one child process."""
    started = time.monotonic()
    child = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {child.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024, wall


def commands(source: Path, work: Path, package: Path) -> dict[str, list[str]]:
    """Each measured command on `source`; the stages run in a scratch project at `work`."""
    landing = work / "data" / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    (landing / "phishing_websites.csv").unlink(missing_ok=True)
    (landing / "phishing_websites.csv").symlink_to(source)
    shutil.copy(ROOT / "params.yaml", work / "params.yaml")
    predictions = str(work / "predictions.csv")
    return {
        "ingest stage": [sys.executable, str(ROOT / "stages" / "ingest.py")],
        "validate stage": [sys.executable, str(ROOT / "stages" / "validate.py")],
        "phishguard load --dry-run": ["phishguard", "load", str(source), "--dry-run"],
        "phishguard predict": [
            *("phishguard", "predict", str(source), "-o", predictions),
            *("--model", str(package)),
        ],
    }


def main() -> None:
    package = packaged_model_dir().resolve()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in SIZES:
            source = Path(tmp) / f"rows_{n}.csv"
            write_rows(source, n)
            work = Path(tmp) / "project"
            for name, command in commands(source, work, package).items():
                rss, wall = peak_rss(command, cwd=work)
                results.append({"command": name, "rows": n, "peak_rss_mb": rss, "wall_s": wall})
                print(f"{name}: {n:,} rows, peak RSS {rss:.0f} MB, {wall:.1f} s", flush=True)
            shutil.rmtree(work)
            source.unlink()
    small, large = min(SIZES), max(SIZES)
    lines = [
        "# Memory: peak RSS against file size (`make bench-memory`)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} shared cores; "
        "synthetic valid rows (CSV), one run each.",
        "",
        "| command | rows | peak RSS | wall time |",
        "|---|---|---|---|",
        *[
            f"| `{r['command']}` | {r['rows']:,} | {r['peak_rss_mb']:.0f} MB | {r['wall_s']:.1f} s |"
            for r in results
        ],
        "",
    ]
    for name in dict.fromkeys(r["command"] for r in results):
        by_rows = {r["rows"]: r["peak_rss_mb"] for r in results if r["command"] == name}
        ratio = by_rows[large] / by_rows[small]
        lines.append(f"- `{name}`: {large // small}x the rows, {ratio:.2f}x the peak memory.")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "memory.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "memory.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
