"""The scale-out benchmark's summary: medians, paired ratios, the goal's verdict and the ratio
read off at equal CPU-seconds."""

from __future__ import annotations

from benchmarks.scale import at_equal_cpu, cpu_note, summarize

ROWS = 1_000_000


def run(wall: float, cpu: float) -> dict:
    return {"wall_s": wall, "cpu_s": cpu, "rows_per_s": ROWS / wall, "peak_rss_mb": {"client": 1}}


def runs_where_cpu_explains_the_ratio() -> dict[str, list[dict]]:
    """Single runs of 10 s on 10 CPU-s; 2-worker runs whose wall time is that of a ×1.8 run
    stretched by the extra CPU-seconds each took."""
    shares = [0.85, 0.9, 0.95, 1.0, 1.02]
    two = [run(10 / (1.8 * share), 10 / share) for share in shares]
    return {
        "single process": [run(10, 10) for _ in shares],
        "single process, 1 core": [run(10, 10) for _ in shares],
        "LocalCluster": two,
        "TCP": two,
    }


def test_the_ratio_at_equal_cpu_is_read_off_the_repeats() -> None:
    summary = summarize(runs_where_cpu_explains_the_ratio(), ROWS)
    local = summary["modes"]["LocalCluster"]
    assert local["paired_cpu_shares"] == [0.85, 0.9, 0.95, 1.0, 1.02]
    assert local["paired_ratios"] == [1.53, 1.62, 1.71, 1.8, 1.836]
    assert local["paired_ratio_median"] == 1.71
    assert local["ratio_at_equal_cpu"] == 1.8
    assert local["cpu_share_ratio_correlation"] == 1.0
    note = cpu_note(local, summary["modes"]["TCP"])
    assert "0.85–1.02" in note
    assert "LocalCluster 1.80× and TCP 1.80×" in note


def test_no_line_is_fitted_without_a_spread_of_cpu_shares() -> None:
    assert at_equal_cpu([1.0, 1.0, 1.01], [1.7, 1.8, 1.75]) is None
    assert at_equal_cpu([0.9, 1.0], [1.6, 1.8]) is None
    local = summarize(runs_where_cpu_explains_the_ratio(), ROWS)["modes"]["LocalCluster"]
    local = {**local, "ratio_at_equal_cpu": None}
    assert "straight line" not in cpu_note(local, local)
