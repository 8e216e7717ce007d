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
    hmac = [row("embedded", None, "decision-hmac", 1000, 1), row("embedded", None, "applied-hmac", 125, 8)]
    costs = {v["measured"]: round(v["ratio"], 3) for v in pipeline._verdicts(rows + hmac)
             if "measured" in v}  # fmt: skip
    assert costs == {"embedded decision events/s, Ed25519 / HMAC": 0.85,
                     "embedded applied events/s, Ed25519 / HMAC": 0.8}  # fmt: skip


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


def test_soak_verdicts_compare_the_gap_with_the_longest_outage_and_the_slope_with_5() -> None:
    from bench import soak

    row = {"outage_pause_s": 10.0, "outage_restart_s": 4.0, "longest_gap_s": 39.9,
           "rss_slope_mb_per_h": 4.9}  # fmt: skip
    assert [(v["limit"], v["met"]) for v in soak.verdicts(row)] == [(40.0, True), (5.0, True)]
    row |= {"longest_gap_s": 40.1, "rss_slope_mb_per_h": 5.0}
    assert [v["met"] for v in soak.verdicts(row)] == [False, False]
    # A run of two cycles or more is also judged on its slope after the first cycle.
    row |= {"fault_cycles": 3, "rss_slope_after_first_cycle_mb_per_h": 4.9}
    assert [(v["target"].split(" <")[0], v["met"]) for v in soak.verdicts(row)][2] == (
        "RSS slope after the first fault cycle", True)
    row |= {"rss_slope_after_first_cycle_mb_per_h": 5.0}
    assert [v["met"] for v in soak.verdicts(row)] == [False, False, False]


def test_a_longer_soak_repeats_the_fault_cycle_every_10_minutes() -> None:
    from bench import soak

    assert [soak.cycles_in(m) for m in (1, 10, 19.9, 20, 30, 60)] == [1, 1, 1, 2, 3, 6]


def test_soak_gap_counts_a_silent_tail_and_the_slope_is_per_hour() -> None:
    from bench import soak

    assert soak.longest_gap([10.0, 12.0, 15.0], 0.0, 50.0) == (35.0, 15.0)
    assert soak.longest_gap([], 0.0, 50.0) == (50.0, 0.0)
    assert abs(soak.slope_per_hour([(0.0, 100.0), (1800.0, 101.0), (3600.0, 102.0)]) - 2.0) < 1e-9
    assert soak.entropy_at(0.0) == 0.6 and abs(soak.entropy_at(soak.RAMP_S / 2) - 0.8) < 1e-9


def test_soak_slopes_fit_only_the_samples_from_the_given_second_on() -> None:
    from bench import soak

    # A 2 MB step at 100 s, flat before and after: fitted from 150 s on it is no slope at all.
    total = [(float(t), 100.0 if t < 100 else 102.0) for t in range(0, 400, 10)]
    each = {"decider": [(t, v / 2) for t, v in total]}
    assert soak.slopes(total, each, 150.0) == (0.0, {"decider": 0.0})
    whole, by = soak.slopes(total, each, 0.0)
    assert whole > 10 and abs(by["decider"] - whole / 2) <= 0.01  # the step read as a rate


def test_soak_reads_the_longest_run_of_refused_decisions_from_the_decider_log() -> None:
    from bench import soak

    line = "2026-11-25 09:57:{} level=WARNING logger=qas.consume publish decision to qas.decisions failed (x)\n"
    text = "".join(line.format(t) for t in ("10,000", "12,500", "30,000", "31,000"))
    text += "2026-11-25 09:57:32,000 level=WARNING logger=qas.consume publish event to market.x failed\n"
    assert soak.longest_refusal(text) == 2.5  # 12.5 - 10.0; 30 s is 17.5 s later: a new run
    assert soak.longest_refusal("") == 0.0


def test_soak_json_has_no_nan() -> None:
    from bench import soak

    assert soak._no_nan({"a": float("nan"), "b": 1.5, "c": "x"}) == {"a": None, "b": 1.5, "c": "x"}
    nested = {"by": {"decider": float("nan")}, "ends": [1.0, float("nan")]}
    assert soak._no_nan(nested) == {"by": {"decider": None}, "ends": [1.0, None]}
