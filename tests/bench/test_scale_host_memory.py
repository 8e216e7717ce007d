"""`bench scale`'s host_memory rows: the fields issue 34 names, and per-host series only when
asked for (no size is asserted: that is the benchmark's to report)."""

from __future__ import annotations

from bench import scale


def test_host_memory_rows_measure_tracked_hosts_and_their_metrics() -> None:
    every = scale._row("host_memory", 50, "current", True)
    fleet = scale._row("host_memory", 50, "metrics-per-host none", True)
    for row in (every, fleet):
        assert row["tracked_hosts"] == 50 and row["rss_bytes"] > 0
        assert {"bytes_per_host", "metrics_bytes", "metrics_bytes_per_host"} <= set(row)
    # none: the aggregates only, whose values grow a digit or two, not a series a host
    assert every["metrics_bytes_per_host"] > 100 and fleet["metrics_bytes_per_host"] < 1
    assert fleet["metrics_bytes"] < every["metrics_bytes"]
