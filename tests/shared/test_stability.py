"""The stabiliser: tolerance band, scale-down window, bounded step, urgent bypass."""

from __future__ import annotations

from shared.config import DecisionConstants
from shared.decision import decide
from shared.messages import PriorState
from tests.support.factories import inputs_for, reference_host

C = DecisionConstants(smoothing_seconds=0.0)  # window and step in isolation; smoothing below


def run(seq: list[tuple[float, float, float, float]], c: DecisionConstants = C):  # type: ignore[no-untyped-def]
    prior, out = PriorState(), []
    for now, e, t, p in seq:
        d, prior = decide(inputs_for(reference_host(), e, t, p), prior, host_id="h", now=now, c=c)
        out.append(None if d is None else d.scaling_factor)
    return out


def test_small_changes_inside_tolerance_are_not_new_decisions() -> None:
    # profit 0.61 -> factor 1.02: inside the 0.05 band
    assert run([(0, 0.5, 0.2, 0.5), (1, 0.5, 0.2, 0.61)]) == [1.0, None]


def test_scale_down_waits_out_the_window() -> None:
    out = run(
        [
            (0, 0.5, 0.2, 0.5),
            (1, 0.5, 0.2, 1.0),
            (2, 0.5, 0.2, 0.5),
            (20, 0.5, 0.2, 0.5),
            (31.5, 0.5, 0.2, 0.5),
        ]
    )
    assert out[1] is not None and out[1] == 1.5  # up, bounded to +0.5 per step
    assert out[2] is None and out[3] is None  # the 1.8 recommendation is still inside the window
    assert out[4] == 1.0  # window passed: down to the highest recommendation left (1.0)


def test_bounded_step_up() -> None:
    out = run([(0, 0.5, 0.2, 0.5), (1, 0.5, 0.2, 1.0), (2, 0.5, 0.2, 1.0)])
    assert out == [1.0, 1.5, 1.8]


def test_thermal_safety_skips_the_window() -> None:
    out = run([(0, 0.5, 0.2, 1.0), (1, 0.5, 0.95, 1.0)])
    assert out[0] == 1.8 and out[1] is not None and out[1] <= 1.0


def test_hardware_change_replans_at_once() -> None:
    prior = PriorState()
    inv = reference_host()
    d1, prior = decide(inputs_for(inv, 0.5, 0.2, 1.0), prior, host_id="h", now=0, c=C)
    same, prior = decide(inputs_for(inv, 0.5, 0.2, 1.0), prior, host_id="h", now=1, c=C)
    collapse, prior = decide(
        inputs_for(inv, 0.5, 0.2, 0.5, hardware_changed=True), prior, host_id="h", now=2, c=C
    )
    assert d1 is not None and same is None
    assert collapse is not None and collapse.scaling_factor == 1.0 and collapse.urgent
    assert collapse.apply_after_seconds == 0.0


def test_jitter_is_per_host_and_bounded() -> None:
    inv = reference_host()
    jitters = set()
    for host in ("a", "b", "c", "d"):
        prior = PriorState(scaling_factor=1.0, precision_bits=16, sequence=1)
        d, _ = decide(inputs_for(inv, 0.95, 0.2, 0.5), prior, host_id=host, now=5, c=C)
        assert d is not None and 0 <= d.apply_after_seconds <= C.max_jitter_seconds
        jitters.add(round(d.apply_after_seconds, 6))
    assert len(jitters) == 4


def test_smoothing_filters_noise_but_follows_a_step() -> None:
    c = DecisionConstants()  # smoothing 1 s
    prior, published = PriorState(), []
    for k in range(100):  # 10 s at 10 Hz alternating 0.55 / 0.75: raw plan flaps 1.0 <-> 1.19
        e = 0.75 if k % 2 else 0.55
        d, prior = decide(
            inputs_for(reference_host(), e, 0.3, 0.5), prior, host_id="h", now=k / 10, c=c
        )
        if d is not None:
            published.append(d.scaling_factor)
    assert len(published) <= 3  # the first decision, then at most the smoothed level
    last = None
    for k in range(50):  # then a real step to 0.95 for 5 s
        d, prior = decide(
            inputs_for(reference_host(), 0.95, 0.3, 0.5), prior, host_id="h", now=10 + k / 10, c=c
        )
        last = d or last
    assert last is not None and last.scaling_factor > 1.3  # followed within seconds
