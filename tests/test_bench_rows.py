"""The --json rows of `bench scale` and `bench pipeline` carry the fields issue 17 names, and
the verdicts compare what they say they compare (no timing is asserted)."""

from __future__ import annotations

from bench import pipeline, scale


def test_a_scale_row_has_the_issue_fields() -> None:
    row = scale._row("pool_ticks", 20 * 1024, "current", True)
    assert {"us_per_event", "apply_ms", "rss_bytes", "write_at_budget_ms"} <= set(row)
    assert row["us_per_event"] > 0 and row["apply_ms"] > 0 and row["rss_bytes"] > 0


def test_pipeline_verdicts_use_the_echo_of_the_same_transport_and_fetch_wait() -> None:
    def row(
        transport: str, wait: int | None, path: str, eps: float, p99: float
    ) -> dict[str, object]:
        return {"transport": transport, "fetch_max_wait_ms": wait, "path": path,
                "events_per_s": eps, "p50_ms": p99 / 2, "p99_ms": p99}  # fmt: skip

    rows = [row("embedded", None, "echo", 1000, 1), row("embedded", None, "decision", 850, 1),
            row("embedded", None, "applied", 100, 9),
            row("kafka", 100, "echo", 900, 80), row("kafka", 100, "decision", 900, 90),
            row("kafka", 100, "applied", 500, 130),
            row("kafka", 10, "echo", 900, 20), row("kafka", 10, "decision", 900, 20),
            row("kafka", 10, "applied", 500, 31)]  # fmt: skip
    got = {(v["transport"], v.get("fetch_max_wait_ms")): (round(v["ratio"], 3), v["met"])
           for v in pipeline._verdicts(rows)}  # fmt: skip
    assert got == {("embedded", None): (0.85, True), ("kafka", 100): (1.625, False),
                   ("kafka", 10): (1.55, False)}  # fmt: skip


def test_the_pipeline_reader_reads_what_a_full_decode_reads() -> None:
    from shared.config import DecisionConstants
    from shared.decision import decide
    from shared.messages import ApplyResult, MarketEntropy, PriorState, encode
    from tests.support.factories import inputs_for, reference_host

    d, _ = decide(inputs_for(reference_host(), 0.7, 0.2, 0.5), PriorState(), host_id="h",
                  now=1000.0, c=DecisionConstants())  # fmt: skip
    assert d is not None
    assert pipeline._value("decision", encode(d)) == d.inputs.market_entropy == 0.7
    assert pipeline._value("echo", encode(MarketEntropy(event_time=1.0, host_id="h", value=0.25))) == 0.25
    pipeline.DECIDED["d-1"] = 0.5
    applied = ApplyResult(event_time=2.0, host_id="h", decision_id="d-1", decision_event_time=1.0,
                          status="applied")  # fmt: skip
    assert pipeline._value("applied", encode(applied)) == 0.5
