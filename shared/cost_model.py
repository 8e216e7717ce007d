"""The engine's batch cost, learned from its own reports: p99 latency ~= a + b * items.

Each new ``FeedbackReport`` adds one point (its batch size, its p99) to a bounded window kept in
``PriorState.cost_points``, so a decision replays from its own prior and inputs. The fit is
robust (Theil-Sen): b is the median of the slopes between points at different batch sizes, a the
median of ``p99 - b * items``, both clipped at 0. With one batch size only, a = 0 and b = the
median p99 / items; from there, a cut assumes a latency proportional to the batch.

A CPU squeeze (or its end) scales the whole cost, so a new point far off the fit is a change,
not an outlier among the others: the window is rescaled by the point's ratio to the prediction
(``CHANGE_RATIO``, or ``NOISE_MADS`` times the window's own scatter, whichever is wider; or any
miss of the objective the fit said would be met). The fit then moves in one report, so the next
batch is the right one in one step. A lone outlier rescales the window for one interval and the
next report rescales it back.

``choose`` turns the fit into the batch: hi (the engine's configured size, bounded by its maximum
and the memory plan) while it is predicted to meet T, else the largest batch predicted at or
under ``share * T`` within [lo, hi]. It keeps
the previous batch while it is predicted to meet T and is within ``RAISE_STEP`` of the best one
(no churn on noise), and never takes one the fit says misses T when a smaller one meets
it. While every point is at one batch size and that batch meets the target, it probes one
interval at ``PROBE_SHARE`` of it, so the slope is known before a squeeze makes it urgent.
"""

from __future__ import annotations

import math
from statistics import median

import msgspec

POINTS_KEPT = 16  # the window: the oldest point of the most repeated batch size goes first
CHANGE_RATIO = 1.2  # a point at least this far off the fit (either way) is a change of cost
NOISE_MADS = 4.0  # ... or this many times the window's median absolute log residual
RAISE_STEP = 1.1  # the batch rises only for at least 10 % more (or to the ceiling)
PROBE_SHARE = 0.5  # the one probe at a second batch size, a share of the only size seen

Point = tuple[int, float]


class CostFit(msgspec.Struct, frozen=True, kw_only=True):
    """p99 ms ~= a_ms + b_ms * items, from ``points`` points at ``sizes`` batch sizes."""

    a_ms: float
    b_ms: float
    points: int
    sizes: int

    def predict(self, items: int) -> float:
        return self.a_ms + self.b_ms * items

    def largest_within(self, target_ms: float, lo: int, hi: int) -> int | None:
        """The largest batch in [lo, hi] predicted at or under ``target_ms`` (None: not lo)."""
        if self.predict(lo) > target_ms:
            return None
        if self.b_ms <= 0:
            return hi
        return max(lo, min(hi, math.floor((target_ms - self.a_ms) / self.b_ms + 1e-9)))


def fit(points: list[Point]) -> CostFit | None:
    """The robust fit of the window (None: no points)."""
    if not points:
        return None
    xs = [x for x, _ in points]
    sizes = len(set(xs))
    if sizes == 1:
        return CostFit(a_ms=0.0, b_ms=median(y for _, y in points) / xs[0],
                       points=len(points), sizes=1)  # fmt: skip
    slopes = [(yj - yi) / (xj - xi) for i, (xi, yi) in enumerate(points)
              for xj, yj in points[i + 1:] if xj != xi]  # fmt: skip
    b = max(0.0, median(slopes))
    a = median(y - b * x for x, y in points)
    if a < 0:  # the intercept cannot be negative: a proportional fit instead
        a, b = 0.0, median(y / x for x, y in points)
    return CostFit(a_ms=a, b_ms=b, points=len(points), sizes=sizes)


def _scatter(points: list[Point], f: CostFit) -> float:
    """The median absolute log residual of the window against its fit."""
    return median(abs(math.log(max(y, 1e-9) / max(f.predict(x), 1e-9))) for x, y in points)


def _evict(points: list[Point]) -> list[Point]:
    """Down to POINTS_KEPT: the oldest point of the most repeated batch size goes first, so the
    batch sizes that give the slope stay."""
    points = list(points)
    while len(points) > POINTS_KEPT:
        counts: dict[int, int] = {}
        for x, _ in points:
            counts[x] = counts.get(x, 0) + 1
        most = max(counts.values())
        points.pop(next(i for i, (x, _) in enumerate(points) if counts[x] == most))
    return points


class Update(msgspec.Struct, frozen=True, kw_only=True):
    points: list[Point]
    fit: CostFit
    rescaled: float | None = None  # the window was rescaled by this ratio (a change of cost)


def update(points: list[Point], items: int, p99_ms: float, objective_ms: float) -> Update:
    """The window after one new report's point, rescaled first when the point shows a change."""
    items, p99_ms = max(1, int(items)), float(p99_ms)
    before = fit(points)
    rescaled = None
    if before is not None and (before.sizes > 1 or any(x == items for x, _ in points)):
        predicted = before.predict(items)
        if predicted > 0 and p99_ms > 0:
            ratio = p99_ms / predicted
            wide = max(math.log(CHANGE_RATIO), NOISE_MADS * _scatter(points, before))
            if abs(math.log(ratio)) > wide or p99_ms > objective_ms >= predicted:
                rescaled = ratio
                points = [(x, y * ratio) for x, y in points]
    points = _evict([*points, (items, p99_ms)])
    now = fit(points)
    assert now is not None  # the new point is in
    return Update(points=points, fit=now, rescaled=rescaled)


class Choice(msgspec.Struct, frozen=True, kw_only=True):
    batch: int
    meets: bool  # the fit predicts the batch at or under the objective
    note: str  # why this batch


def choose(
    f: CostFit,
    *,
    lo: int,
    hi: int,
    previous: int | None,
    share: float,
    objective_ms: float,
    probe_from: int | None = None,
) -> Choice:
    """The batch for the next interval (see the module). ``probe_from``: the one batch size every
    point is at, when a probe may run."""
    hi = max(lo, hi)
    target = share * objective_ms
    # the engine's own size stands while it meets the objective: the margin is for cuts
    best = hi if f.predict(hi) <= objective_ms else f.largest_within(target, lo, hi)
    if best is None:
        meets = f.predict(lo) <= objective_ms
        return Choice(batch=lo, meets=meets,
                      note=f"no batch down to the engine's minimum {lo} is predicted under "
                      f"{target:.3g} ms: the minimum")  # fmt: skip
    if (
        probe_from is not None
        and f.sizes == 1
        and probe_from == best
        and (probe := max(lo, math.floor(best * PROBE_SHARE))) < best
    ):
        return Choice(batch=probe, meets=True,
                      note=f"one interval at {probe} to learn the cost per item")  # fmt: skip
    if (
        previous is not None
        and lo <= previous <= hi
        and f.predict(previous) <= objective_ms
        and best < hi
        and best / RAISE_STEP <= previous <= best * RAISE_STEP
    ):
        return Choice(batch=previous, meets=True,
                      note=f"held, predicted {f.predict(previous):.1f} ms")  # fmt: skip
    own = "the engine's own size, " if best == hi else ""
    return Choice(batch=best, meets=True, note=f"{own}predicted {f.predict(best):.1f} ms")


def describe(f: CostFit) -> str:
    """"cost model 1.9 ms + 0.021 ms/item (8 points)"."""
    points = "1 point" if f.points == 1 else f"{f.points} points"
    return f"Cost model {f.a_ms:.3g} ms + {f.b_ms:.3g} ms/item ({points})"
