"""Engine feedback: target tracking on the engine's latency objective and memory limit.

The engine reports, per interval, its batch latency p99 against its own objective and its
resident memory against its limit (``FeedbackReport`` on ``qas.feedback``). ``track`` turns the
latest report into caps that ``shared.decision.decide`` applies on top of the seed's rule:

    latency missed (p99 > T):      batch cap  = reported batch · max(max_cut, s·T / p99)
                                   factor cap = base · the same step, not below min(floor 0.5,
                                   base): the batch tracks, the factor (workers, budget) follows
                                   boundedly                               s = target share 0.9
                                   base = min(reported factor, last factor, cap, planned factor)
    headroom (p99 < h·T, h = 0.8): caps = caps · min(max_rise, s·T / p99); each is lifted (None)
                                   once it reaches the planned value: the seed's table applies
    in between:                    hold
    memory (rss > 0.85 · limit):   precision one tier down, store budget cut by the excess over
                                   0.75 · limit (at most half per report, never below 5 % of the
                                   limit); urgent
    memory (rss < 0.6 · limit):    the memory caps rise a step back

Caps move only on a *new* report, and a cut only on one that measured the current batch cap (the
engine ran at it): a second cut on a stale measurement would wind up and overshoot. The factor
cap brings the factor and the workers down through the stabiliser's window and bounded step (the
thermal and memory caps still win, as each cap only lowers); the batch cap acts at once, since a
new cap is published even inside the tolerance band. Because
each cut aims at s·T through a latency that grows at most proportionally with the batch
(latency = a + b·batch, a, b >= 0), a cut never lands below s·T and a rise never above it: the
sequence is monotone and settles inside the [h·T, T] band, with no limit cycle.

Without any report (and no cap left from one) ``track`` returns None and decisions are exactly
the feedback-free ones.
"""

from __future__ import annotations

import math

import msgspec

from shared.config import DecisionConstants
from shared.messages import FeedbackReport, PriorState
from shared.precision import ladder
from shared.tiers import tier

EPS = 1e-9


class FeedbackStep(msgspec.Struct, frozen=True, kw_only=True):
    """The caps to apply now, what changed and why (``notes`` are completed after sizing)."""

    factor_cap: float | None
    batch_cap: int | None
    budget_cap: int | None
    bits_cap: int | None
    feedback_at: float | None
    urgent: bool = False  # memory near the limit: no window, no step bound
    latency_missed: bool = False
    latency_note: str | None = None  # "engine p99 41.0 ms above its 25 ms objective"
    memory_note: str | None = None
    lifted: str | None = None

    @property
    def changed(self) -> bool:
        """A new report moved a cap: publish even inside the tolerance band."""
        return self.latency_note is not None or self.memory_note is not None


def _tier_below(bits: int, top_bits: int) -> int:
    steps = ladder(top_bits)
    lower = [b for b in steps if b < bits]
    return lower[-1] if lower else steps[0]


def _tier_above(bits: int, top_bits: int) -> int:
    steps = ladder(top_bits)
    higher = [b for b in steps if b > bits]
    return higher[0] if higher else steps[-1]


def _min(*xs: float | None) -> float:
    return min(x for x in xs if x is not None)


class _Latency(msgspec.Struct, frozen=True, kw_only=True):
    factor_cap: float | None
    batch_cap: int | None
    missed: bool = False
    note: str | None = None
    lifted: str | None = None


def _latency(
    fb: FeedbackReport, prior: PriorState, planned: float, c: DecisionConstants
) -> _Latency:
    """The factor and batch caps after one new report."""
    cap, bcap = prior.engine_factor_cap, prior.engine_batch_cap
    objective, p99 = fb.latency_objective_ms, fb.latency_p99_ms
    running = fb.scaling_factor if fb.scaling_factor is not None else prior.scaling_factor
    ratio = math.inf if p99 <= 0 else c.latency_target_share * objective / p99
    if p99 > objective:
        note = f"Engine p99 {p99:.1f} ms above its {objective:g} ms objective"
        if bcap is not None and fb.batch_size > bcap:  # the last cut is not adopted yet
            return _Latency(factor_cap=cap, batch_cap=bcap, missed=True,
                            note=note + f" (batch {fb.batch_size} not yet at the {bcap} cap: holding)")  # fmt: skip
        step = max(c.max_feedback_cut, ratio)
        base = _min(running, prior.scaling_factor, cap, planned)
        new = max(c.min_scaling_factor, min(c.latency_factor_floor, base), base * step)
        new_batch = max(1, math.floor(_min(fb.batch_size, bcap) * step))
        return _Latency(factor_cap=new if cap is None else min(cap, new),
                        batch_cap=new_batch, missed=True, note=note)  # fmt: skip
    if p99 < c.latency_headroom_share * objective and (cap is not None or bcap is not None):
        rise = min(c.max_feedback_rise, ratio)
        up = None if cap is None else cap * rise
        if up is not None and up >= planned - EPS:
            up = None
        up_batch = None if bcap is None else max(bcap + 1, math.floor(bcap * rise))
        note = f"Engine p99 {p99:.1f} ms under {c.latency_headroom_share:.0%} of its "
        note += f"{objective:g} ms objective: latency caps raised x{rise:.2f}"
        return _Latency(factor_cap=up, batch_cap=up_batch, note=note)
    return _Latency(factor_cap=cap, batch_cap=bcap)


def _memory(
    fb: FeedbackReport, prior: PriorState, planned_bits: int, top_bits: int, c: DecisionConstants
) -> tuple[int | None, int | None, bool, str | None]:
    """(budget cap, bits cap, urgent, note) for one new report."""
    budget_cap, bits_cap = prior.engine_budget_cap, prior.engine_bits_cap
    limit = fb.memory_limit_bytes
    if not limit or fb.store_budget_bytes is not None:
        # none, or the engine's own memory controller holds its store in the band: a second
        # loop here (cutting at 85 %) would fight it
        return budget_cap, bits_cap, False, None
    rss = fb.resident_memory_bytes
    share = rss / limit
    if share > c.memory_high_share:
        running = fb.precision_bits if fb.precision_bits is not None else prior.precision_bits
        if bits_cap is not None and running is not None and running > bits_cap:
            return budget_cap, bits_cap, False, None  # the last cut is not adopted yet
        from_bits = int(_min(running, prior.precision_bits, bits_cap, planned_bits))
        new_bits = _tier_below(from_bits, top_bits)
        excess = rss - int(c.memory_target_share * limit)
        new_budget = budget_cap
        if fb.store_bytes > 0:
            floor = int(c.memory_min_budget_share * limit)
            cut = max(fb.store_bytes // 2, fb.store_bytes - excess, floor)
            new_budget = cut if budget_cap is None else min(budget_cap, cut)
        bits_move = (
            f"precision {tier(from_bits).name} -> {tier(new_bits).name}"
            if new_bits < from_bits
            else f"precision stays {tier(new_bits).name} (the lowest tier)"
        )
        note = (
            f"Engine resident memory {rss / 2**20:.0f} MiB is {share:.0%} of its "
            f"{limit / 2**20:.0f} MiB limit: {bits_move}"
            + ("" if new_budget is None else f", store budget {new_budget / 2**20:.1f} MiB")
        )
        return new_budget, new_bits, True, note
    if share < c.memory_low_share and (bits_cap is not None or budget_cap is not None):
        up = None if bits_cap is None else _tier_above(bits_cap, top_bits)
        if up is not None and up >= planned_bits:
            up = None
        budget = None if budget_cap is None else int(budget_cap * c.max_feedback_rise)
        note = (
            f"Engine resident memory {share:.0%} of its limit: memory caps raised a step "
            f"(precision cap {'lifted' if up is None else tier(up).name})"
        )
        return budget, up, False, note
    return budget_cap, bits_cap, False, None


def track(
    fb: FeedbackReport | None,
    age: float | None,
    prior: PriorState,
    *,
    planned_factor: float,
    planned_bits: int,
    top_bits: int,
    c: DecisionConstants,
) -> FeedbackStep | None:
    """The caps for this decision. None: no feedback and no cap left, today's rule applies."""
    caps = (prior.engine_factor_cap, prior.engine_batch_cap, prior.engine_budget_cap,
            prior.engine_bits_cap)  # fmt: skip
    fresh = fb is not None and (age is None or age <= c.feedback_expiry_seconds)
    if fb is None or not fresh:
        if all(x is None for x in caps):
            return None
        return FeedbackStep(
            factor_cap=None, batch_cap=None, budget_cap=None, bits_cap=None,
            feedback_at=prior.feedback_at,
            lifted="No fresh engine feedback: engine caps lifted.",
        )  # fmt: skip
    if prior.feedback_at is not None and fb.event_time <= prior.feedback_at:
        missed = fb.latency_p99_ms > fb.latency_objective_ms
        return FeedbackStep(
            factor_cap=caps[0], batch_cap=caps[1], budget_cap=caps[2], bits_cap=caps[3],
            feedback_at=prior.feedback_at, latency_missed=missed,
        )  # fmt: skip
    lat = _latency(fb, prior, planned_factor, c)
    budget_cap, bits_cap, urgent, mem_note = _memory(fb, prior, planned_bits, top_bits, c)
    return FeedbackStep(
        factor_cap=lat.factor_cap,
        batch_cap=lat.batch_cap,
        budget_cap=budget_cap,
        bits_cap=bits_cap,
        feedback_at=fb.event_time,
        urgent=urgent,
        latency_missed=lat.missed,
        latency_note=lat.note,
        memory_note=mem_note,
        lifted=lat.lifted,
    )


def reasons(
    step: FeedbackStep, fb: FeedbackReport | None, *, factor: float, batch: int, workers: int
) -> list[str]:
    """The sentences this step adds to the decision, with the numbers it acted on."""
    out: list[str] = []
    if step.latency_note is not None:
        was = fb.batch_size if fb is not None else None
        moves = [] if was is None else [f"batch {was} -> {batch}"]
        if step.factor_cap is not None:
            moves.append(f"factor cap {step.factor_cap:.2f}")
        moves.append(f"factor {factor:.2f}, workers {workers}")
        out.append(f"{step.latency_note}: {', '.join(moves)}.")
    if step.memory_note is not None:
        out.append(step.memory_note + ".")
    if step.lifted is not None:
        out.append(step.lifted)
    return out
