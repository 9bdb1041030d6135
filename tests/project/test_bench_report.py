"""The serving benchmark's report: table rows, target verdicts and BentoML/FastAPI ratios."""

from __future__ import annotations

from pathlib import Path

from benchmarks.report import write_report


def scenario(p50: float, p99: float, rps: float, rows: float) -> dict:
    return {
        "p50_ms": p50,
        "p99_ms": p99,
        "rps": rps,
        "rows_per_s": rows,
        "errors": 0,
        "cpu_ms_per_request": 1.0,
    }


def test_report_checks_targets_and_compares_servers(tmp_path: Path) -> None:
    fast = {
        "single_c1": scenario(1.0, 4.0, 900, 900),
        "single_c16": scenario(10, 40, 1300, 1300),
        "batch_c4": scenario(9, 12, 110, 110_000),
    }
    slow = {
        "single_c1": scenario(2.0, 9.0, 450, 450),
        "single_c16": scenario(20, 80, 650, 650),
        "batch_c4": scenario(18, 30, 55, 55_000),
    }
    context = {
        "date": "today",
        "cores": 2,
        "load_before": [1.0],
        "load_after": [1.0],
        "seconds": 1,
        "workers": 2,
        "package": "abc",
        "trees": 600,
    }
    path = tmp_path / "serve.md"
    write_report(
        context, {"in-process": {"single_c1": fast["single_c1"]}, "A": fast, "B": slow}, path
    )
    text = path.read_text()
    assert "| A | 1.00 / 4.00 ms" in text
    assert "- **A**: c=1 p50 ≤ 1.5 ms ✅" in text and "≥ 100k rows/s ✅" in text
    assert "- **B**: c=1 p50 ≤ 1.5 ms ❌" in text
    assert "c=16 req/s ×2.00" in text  # A relative to B
