"""The serving benchmark's Markdown table, with the issue's targets checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TARGETS = (
    "single record, c=1: p50 ≤ 1.5 ms, p99 ≤ 5 ms",
    "single record, c=16: ≥ 1,200 req/s, p99 ≤ 50 ms, 0 errors",
    "1,000-row requests: ≥ 100,000 rows/s",
)


def _cell(result: dict[str, Any] | None, kind: str) -> str:
    if result is None:
        return "–"
    cpu = (
        f"; {result['cpu_ms_per_request']:.2f} CPU-ms/req" if "cpu_ms_per_request" in result else ""
    )
    if kind == "c1":
        return (
            f"{result['p50_ms']:.2f} / {result['p99_ms']:.2f} ms ({result['rps']:,.0f} req/s{cpu})"
        )
    if kind == "c16":
        spread = result.get("cpu_s_by_process")
        split = f"; CPU s per process {spread}" if spread else ""
        return (
            f"{result['rps']:,.0f} req/s, p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.1f} ms, "
            f"{result['errors']} errors{split}{cpu}"
        )
    return f"{result['rows_per_s']:,.0f} rows/s (p50 {result['p50_ms']:.1f} ms per request{cpu})"


def _verdicts(results: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for name, scenarios in results.items():
        if "single_c16" not in scenarios:
            continue
        c1, c16, batch = scenarios["single_c1"], scenarios["single_c16"], scenarios["batch_c4"]
        checks = {
            "c=1 p50 ≤ 1.5 ms": c1["p50_ms"] <= 1.5,
            "c=1 p99 ≤ 5 ms": c1["p99_ms"] <= 5,
            "c=16 ≥ 1,200 req/s": c16["rps"] >= 1200,
            "c=16 p99 ≤ 50 ms": c16["p99_ms"] <= 50,
            "c=16 0 errors": c16["errors"] == 0,
            "≥ 100k rows/s": batch["rows_per_s"] >= 100_000,
        }
        met = ", ".join(f"{k} {'✅' if ok else '❌'}" for k, ok in checks.items())
        lines.append(f"- **{name}**: {met}")
    return lines


def _comparison(results: dict[str, dict[str, Any]], first: str, second: str) -> str:
    """`first` relative to `second`, as ratios (> 1 means `first` is better)."""
    a, b = results[first], results[second]
    ratios = {
        "c=1 p50 latency": b["single_c1"]["p50_ms"] / a["single_c1"]["p50_ms"],
        "c=16 req/s": a["single_c16"]["rps"] / b["single_c16"]["rps"],
        "c=16 p99 latency": b["single_c16"]["p99_ms"] / a["single_c16"]["p99_ms"],
        "1,000-row rows/s": a["batch_c4"]["rows_per_s"] / b["batch_c4"]["rows_per_s"],
        "CPU per single-record request": b["single_c16"]["cpu_ms_per_request"]
        / a["single_c16"]["cpu_ms_per_request"],
    }
    text = ", ".join(f"{k} ×{v:.2f}" for k, v in ratios.items())
    return f"- **{first} relative to {second}** (> 1: the first is better): {text}"


def write_report(
    context: dict[str, Any],
    results: dict[str, dict[str, Any]],
    path: Path,
    pairs: list[tuple[str, str]] | None = None,
) -> None:
    """Write the results table, the target verdicts and the ratios of each pair of servers
    (default: the first two servers measured under load) to `path`."""
    lines = [
        "# Serving benchmark",
        "",
        f"Written by `make bench-serve` on {context['date']}: {context['cores']} cores shared with "
        f"other jobs (load average {context['load_before']} before, {context['load_after']} after), "
        f"{context['seconds']} s of `wrk` per scenario, {context['workers']} workers per server, "
        f"one XGBoost thread per worker, model `{context['package']}` ({context['trees']} trees). "
        "Latencies are wrk's (client-side, loopback); numbers on a shared 2-core machine are noisy, "
        "so compare ratios within one run rather than across runs.",
        "",
        "| server | single record, c=1: p50 / p99 | single record, c=16 | 1,000-row requests, c=4 |",
        "|---|---|---|---|",
    ]
    for name, scenarios in results.items():
        lines.append(
            f"| {name} | {_cell(scenarios.get('single_c1'), 'c1')} | "
            f"{_cell(scenarios.get('single_c16'), 'c16')} | "
            f"{_cell(scenarios.get('batch_c4'), 'batch')} |"
        )
    lines += ["", "Targets (issue 5): " + "; ".join(TARGETS) + ".", "", *_verdicts(results)]
    if pairs is None:
        servers = [name for name in results if "single_c16" in results[name]]
        pairs = [(servers[0], servers[1])] if len(servers) >= 2 else []
    lines += [*(_comparison(results, a, b) for a, b in pairs), ""]
    path.write_text("\n".join(lines))
