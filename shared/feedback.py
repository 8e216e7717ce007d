"""Engine feedback: the batch from a learned cost model, target tracking for the rest.

The engine reports, per interval, its batch latency p99 against its own objective and its
resident memory against its limit (``FeedbackReport`` on ``qas.feedback``). ``track`` folds the
latest report in; ``shared.decision.decide`` applies the result on top of the seed's rule:

    batch:                         shared/cost_model.py: p99 ~= a + b*items, learned from the
                                   reports (a window in PriorState.cost_points); the batch is
                                   the largest predicted at or under s*T in [engine minimum,
                                   min(engine configured size, engine maximum, memory plan)]
                                   s = target share 0.9
    latency missed (p99 > T) and the engine's minimum batch predicted to miss too:
                                   factor cap = base * max(max_cut, s*T / p99), not below
                                   min(floor 0.5, base); base = min(reported factor, last
                                   factor, cap, planned factor)
    latency missed, a batch meets it: the factor cap holds at base (it never rises on a miss)
    objective met:                 a factor cap rises x max_rise (1.25) a report, lifted (None)
                                   once it reaches the planned factor
    memory (rss > 0.85 * limit):   precision one tier down, store budget cut by the excess over
                                   0.75 * limit (at most half per report, never below 5 % of the
                                   limit); urgent
    memory (rss < 0.6 * limit):    the memory caps rise a step back

The batch is the first lever: the factor (workers, budget) is cut only when no batch the engine
allows can meet its objective, so a squeeze the batch absorbs costs no workers. A factor cut acts
only on a report that ran at the current factor cap (a second cut on a stale measurement would
wind up), and each cap only lowers, so thermal and memory caps still win.

Without any report (and no cap or cost window left from one) ``track`` returns None and
decisions are exactly the feedback-free ones.
"""

from __future__ import annotations

import math

import msgspec
from msgspec import UNSET, UnsetType

from shared import cost_model
from shared.config import DecisionConstants
from shared.messages import FeedbackReport, PriorState
from shared.precision import ladder
from shared.tiers import tier

EPS = 1e-9


class FeedbackStep(msgspec.Struct, frozen=True, kw_only=True):
    """The caps to apply now, the cost model's window, what changed and why."""

    factor_cap: float | None
    budget_cap: int | None
    bits_cap: int | None
    feedback_at: float | None
    urgent: bool = False  # memory near the limit: no window, no step bound
    latency_missed: bool = False
    latency_note: str | None = None  # "engine p99 41.0 ms above its 25 ms objective"
    memory_note: str | None = None
    lifted: str | None = None
    cost: cost_model.Update | None = None  # the window and its fit (None: no model)
    new_report: bool = False  # ``cost`` folded in a report not seen before

    @property
    def changed(self) -> bool:
        """A new report moved a cap: publish even inside the tolerance band."""
        return self.latency_note is not None or self.memory_note is not None


class BatchStep(msgspec.Struct, frozen=True, kw_only=True):
    """The decision's batch under the cost model, and the sentence that explains it."""

    batch: int
    engine_batch: int | None  # kept as PriorState.engine_batch_cap (None: the planned batch)
    points: list[cost_model.Point] | UnsetType
    note: str | None = None


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
    missed: bool = False
    note: str | None = None


def _latency(
    fb: FeedbackReport, prior: PriorState, planned: float, exhausted: bool, c: DecisionConstants
) -> _Latency:
    """The factor cap after one new report. ``exhausted``: even the engine's minimum batch is
    predicted to miss the objective, so the batch alone cannot meet it."""
    cap = prior.engine_factor_cap
    objective, p99 = fb.latency_objective_ms, fb.latency_p99_ms
    running = fb.scaling_factor if fb.scaling_factor is not None else prior.scaling_factor
    ratio = math.inf if p99 <= 0 else c.latency_target_share * objective / p99
    base = _min(running, prior.scaling_factor, cap, planned)
    if p99 > objective:
        note = f"Engine p99 {p99:.1f} ms above its {objective:g} ms objective"
        if not exhausted:  # the batch meets it: the factor holds, it does not rise on a miss
            held = None if base >= planned - EPS else base  # a cap at the plan binds nothing
            return _Latency(factor_cap=held if cap is None else min(cap, base), missed=True,
                            note=note)  # fmt: skip
        if cap is not None and running is not None and running > cap + EPS:
            return _Latency(factor_cap=cap, missed=True,
                            note=note + f" (factor {running:.2f} not yet at the {cap:.2f} cap: "
                            "holding)")  # fmt: skip
        step = max(c.max_feedback_cut, ratio)
        new = max(c.min_scaling_factor, min(c.latency_factor_floor, base), base * step)
        note += ", even at the engine's minimum batch"
        return _Latency(factor_cap=new if cap is None else min(cap, new), missed=True, note=note)
    if cap is not None and (not exhausted or p99 < c.latency_headroom_share * objective):
        rise = c.max_feedback_rise if not exhausted else min(c.max_feedback_rise, ratio)
        up: float | None = cap * rise
        if up is not None and up >= planned - EPS:
            up = None
        note = f"Engine p99 {p99:.1f} ms within its {objective:g} ms objective: factor cap "
        note += "lifted" if up is None else f"raised x{rise:.2f}"
        return _Latency(factor_cap=up, note=note)
    return _Latency(factor_cap=cap)


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


def _points(prior: PriorState) -> list[cost_model.Point]:
    return [] if isinstance(prior.cost_points, UnsetType) else list(prior.cost_points)


def batch_min(fb: FeedbackReport) -> int:
    return 1 if isinstance(fb.batch_min, UnsetType) else fb.batch_min


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
    """The caps and cost window for this decision. None: no feedback and nothing left from
    one, today's rule applies."""
    caps = (prior.engine_factor_cap, prior.engine_batch_cap, prior.engine_budget_cap,
            prior.engine_bits_cap)  # fmt: skip
    points = _points(prior)
    fresh = fb is not None and (age is None or age <= c.feedback_expiry_seconds)
    if fb is None or not fresh:
        if all(x is None for x in caps) and not points:
            return None
        return FeedbackStep(
            factor_cap=None, budget_cap=None, bits_cap=None, feedback_at=prior.feedback_at,
            lifted="No fresh engine feedback: engine caps lifted, cost model reset.",
        )  # fmt: skip
    if prior.feedback_at is not None and fb.event_time <= prior.feedback_at:
        missed = fb.latency_p99_ms > fb.latency_objective_ms
        known = cost_model.fit(points)
        return FeedbackStep(
            factor_cap=caps[0], budget_cap=caps[2], bits_cap=caps[3],
            feedback_at=prior.feedback_at, latency_missed=missed,
            cost=None if known is None else cost_model.Update(points=points, fit=known),
        )  # fmt: skip
    cost = cost_model.update(points, fb.batch_size, fb.latency_p99_ms, fb.latency_objective_ms)
    exhausted = cost.fit.predict(batch_min(fb)) > fb.latency_objective_ms
    lat = _latency(fb, prior, planned_factor, exhausted, c)
    budget_cap, bits_cap, urgent, mem_note = _memory(fb, prior, planned_bits, top_bits, c)
    return FeedbackStep(
        factor_cap=lat.factor_cap,
        budget_cap=budget_cap,
        bits_cap=bits_cap,
        feedback_at=fb.event_time,
        urgent=urgent,
        latency_missed=lat.missed,
        latency_note=lat.note,
        memory_note=mem_note,
        cost=cost,
        new_report=True,
    )


def size_batch(
    step: FeedbackStep, fb: FeedbackReport | None, prior: PriorState, planned: int,
    c: DecisionConstants,
) -> BatchStep:  # fmt: skip
    """The decision's batch: the cost model's choice within the engine's bounds and the memory
    plan (``planned``, today's batch), or the planned batch when there is no model."""
    if step.cost is None or fb is None:
        return BatchStep(batch=planned, engine_batch=None, points=UNSET)
    f, lo = step.cost.fit, batch_min(fb)
    configured = planned if isinstance(fb.batch_configured, UnsetType) else fb.batch_configured
    top = configured if isinstance(fb.batch_max, UnsetType) else min(configured, fb.batch_max)
    hi = max(lo, min(top, planned))
    xs = {x for x, _ in step.cost.points}
    choice = cost_model.choose(
        f, lo=lo, hi=hi, previous=prior.engine_batch_cap, share=c.latency_target_share,
        objective_ms=fb.latency_objective_ms,
        probe_from=next(iter(xs)) if step.new_report and len(xs) == 1 else None,
    )  # fmt: skip
    note = None
    if step.new_report:
        was = cost_model.describe(f)
        if step.cost.rescaled is not None:
            was += f", cost x{step.cost.rescaled:.2f} since the last fit"
        note = (f"{was}: batch {fb.batch_size} -> {choice.batch} ({choice.note}) against the "
                f"{fb.latency_objective_ms:g} ms objective.")  # fmt: skip
    return BatchStep(batch=choice.batch, engine_batch=choice.batch, points=step.cost.points,
                     note=note)  # fmt: skip


def reasons(
    step: FeedbackStep, sized: BatchStep, *, factor: float, workers: int
) -> list[str]:
    """The sentences this step adds to the decision, with the numbers it acted on."""
    out: list[str] = []
    if step.latency_note is not None:
        moves = [] if step.factor_cap is None else [f"factor cap {step.factor_cap:.2f}"]
        moves.append(f"factor {factor:.2f}, workers {workers}")
        out.append(f"{step.latency_note}: {', '.join(moves)}.")
    if sized.note is not None:
        out.append(sized.note)
    if step.memory_note is not None:
        out.append(step.memory_note + ".")
    if step.lifted is not None:
        out.append(step.lifted)
    return out
