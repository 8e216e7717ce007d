"""A trading engine that follows QAS: real prices, real features, feedback that closes the loop.

The market is the shipped S&P 500 sample (or ``--csv``, any file the replay reads). Symbol 0 is
the real series; symbols 1..N-1 are a moving-block bootstrap of its real log returns (blocks of
``--block`` bars, seeded by ``--seed``): a universe of many symbols with the real series'
volatility clustering, not real prices of other companies. Each bar the engine keeps every
symbol's price history and, in batches of the decided size (items = bars x symbols), computes
rolling volatility, a rolling correlation matrix across symbols, a moving-average trend signal
and its positions (sign of fast minus slow average), and marks the positions to market.

Modes (the same prices, symbols and features for each, for the benchmark of issue 16):
- ``qas``: history in the engine-side tiered store at the decided precision, batches of the
  decided size, compute in the decided dtype, feedback on ``qas.feedback``;
- ``float64``: the engine as a plain user writes it, float64 arrays, fixed batch, no QAS;
- ``float16-naive``: ``astype(float16)`` history and compute, fixed batch, no QAS.

    python examples/trading_engine.py                        # embedded bus, QAS in-process
    python examples/trading_engine.py --bootstrap-servers HOST:PORT --host-id desk-1
    python examples/trading_engine.py --mode float64 --ticks 20000 --json

``--json`` prints one JSON object per line: ``adopted``, ``status``, one ``interval`` a second
(the record ``python -m bench engine`` reads, see bench/engine_contract.py) and a final ``summary``.
``--thermal-file PATH`` holds an announced thermal state (0..1), re-read every interval (missing:
0); in ``qas`` mode the embedded observer reports it to the decider beside the sensors.

Security: on the embedded bus the in-process decider signs with an ephemeral key and the engine
adopts only what verifies. On Kafka, given the decider's public key (``--verify-key-file
qas.key.pub``, or QAS_VERIFY_KEY_FILE) the engine adopts only decisions whose signature verifies,
and holds nothing that could sign; without it, it says once that it runs unverified.
(``--signing-key-file`` still reads a private or a previous release's HMAC key file, for a
migration window; it warns that the public key is all the engine needs.) The broker connection takes the same
TLS/SASL settings as ``qas`` (--security-protocol, --ssl-*, --sasl-*, the password from
QAS_SASL_PASSWORD or --sasl-password-file).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import logging
import math
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.keys import load_key_file, load_verify_key_file, public_path
from core.engine import Adopted, EngineClient, connect, resident_bytes
from services.bus.security import MECHANISMS, PROTOCOLS, BrokerSecurity, sasl_password
from shared.config import Settings
from shared.csvseries import read_series
from shared.data import SAMPLE
from shared.market import StreamingEstimator

log = logging.getLogger("engine")
F64 = npt.NDArray[np.float64]
FAST, SLOW = 10, 50
PNL_MARK = 500  # --json: the interval records carry the cumulative PnL at every 500th bar
LEVERAGE_MAX = 4  # a position is sign(signal) x leverage, leverage 1..4 from the long-run volatility


class Market:
    """Bars for ``symbols`` symbols: the real series, then block-bootstrapped real returns.

    The returns are the series' own, less their mean, times ``return_scale`` (by default
    1/sqrt(390): daily returns to one-minute bars of a 6.5-hour session). With a ``tick`` the
    engine sees quotes, as an exchange prints them: each price rounded to the
    nearest multiple of the tick (``n / (1 / tick)``, so 0.01 gives the float64 nearest to the
    decimal cents); the path itself evolves unrounded."""

    def __init__(self, csv: Path, symbols: int, seed: int, block: int, tick: float = 0.0,
                 return_scale: float = 1.0) -> None:  # fmt: skip
        series = read_series(csv)
        self.scale = 1.0 / tick if tick > 0 else 0.0  # quotes are multiples of the tick
        self.source = f"{csv.name} ({series.summary()})"
        r = np.diff(np.log(series.prices))
        # without its drift, so a long run neither decays to zero nor explodes; scaled to the
        # bar's length (the order of the prices, which the entropy reads, is unchanged)
        self.returns = (r - r.mean()) * return_scale
        self.n, self.block = symbols, max(1, block)
        self.rng = np.random.default_rng(seed)
        self.start = self.rng.integers(0, len(self.returns), symbols)
        self.start[0] = 0
        self.offset = np.zeros(symbols, dtype=np.int64)
        self.prices = series.prices[0] * np.exp(self.rng.normal(0.0, 0.2, symbols))
        self.prices[0] = series.prices[0]
        self.bar = 0

    def next_bars(self, k: int) -> F64:
        """The next ``k`` bars of prices, shape (k, symbols)."""
        out = np.empty((k, self.n))
        m = len(self.returns)
        for i in range(k):
            idx = (self.start + self.offset) % m
            idx[0] = self.bar % m  # symbol 0: the real series, in order (looping)
            self.prices = self.prices * np.exp(self.returns[idx])
            out[i] = np.rint(self.prices * self.scale) / self.scale if self.scale else self.prices
            self.offset += 1
            renew = self.offset >= self.block
            if renew.any():
                self.start[renew] = self.rng.integers(0, m, int(renew.sum()))
                self.offset[renew] = 0
            self.bar += 1
        return out


class History:
    """Every bar's prices for every symbol: plain arrays (float64 / float16-naive), or the
    engine-side tiered store, in chunks of ``CHUNK`` bars x symbols (symbol-major, so each codec
    block holds one symbol's run) written as one block each, and a float64 tail not yet full."""

    CHUNK = 256

    def __init__(self, mode: str, symbols: int, client: EngineClient | None) -> None:
        self.mode, self.n, self.client = mode, symbols, client
        self.dtype = np.float16 if mode == "float16-naive" else np.float64
        self.chunks: list[npt.NDArray[Any]] = []
        self.starts: list[int] = []  # plain arrays: each chunk's first bar
        self.stored = 0  # the store: bars written to it (whole chunks of CHUNK bars)
        self.pending: list[F64] = []
        self.pending_bars = 0
        self.value_sum = 0.0  # the chunk's value: the mean profit potential over its bars

    def append(self, bars: F64, value: float) -> None:
        if self.client is None:
            self.starts.append(self.starts[-1] + len(self.chunks[-1]) if self.chunks else 0)
            self.chunks.append(bars.astype(self.dtype))  # the whole history stays in memory
            return
        self.pending.append(bars)
        self.pending_bars += len(bars)
        self.value_sum += value * len(bars)
        if self.pending_bars >= self.CHUNK:
            allbars = np.concatenate(self.pending)
            full = (len(allbars) // self.CHUNK) * self.CHUNK
            for i in range(0, full, self.CHUNK):
                chunk = allbars[i : i + self.CHUNK]
                value = self.value_sum / max(1, self.pending_bars)
                self.client.store.append("bars", chunk.T.ravel(), value=value)
                self.stored += self.CHUNK
            rest = allbars[full:]
            self.pending, self.pending_bars = ([rest] if len(rest) else []), len(rest)
            self.value_sum = value * len(rest)

    def window(self, n: int) -> npt.NDArray[Any]:
        """The last ``n`` bars (fewer at the start), shape (bars, symbols)."""
        if self.client is None:
            parts, got = [], 0
            for c in reversed(self.chunks):
                parts.append(c)
                got += len(c)
                if got >= n:
                    break
            return np.concatenate(parts[::-1])[-n:] if parts else np.empty((0, self.n))
        tail = np.concatenate(self.pending) if self.pending else np.empty((0, self.n))
        need = max(0, n - len(tail))
        chunks = -(-need // self.CHUNK)
        if chunks:
            flat = self.client.store.tail("bars", chunks * self.CHUNK * self.n)
            k = len(flat) // (self.CHUNK * self.n)
            if k:
                stored = flat[-k * self.CHUNK * self.n :].reshape(k, self.n, self.CHUNK)
                tail = np.concatenate([stored.transpose(0, 2, 1).reshape(-1, self.n), tail])
        return tail[-n:]

    def range(self, lo: int, hi: int) -> npt.NDArray[Any]:
        """Bars [lo, hi) (all held: ``lo >= 0``, ``hi`` at most the bars appended), shape
        (bars, symbols); from the store, a bar it no longer holds reads as NaN."""
        if self.client is None:
            i = max(0, bisect.bisect_right(self.starts, lo) - 1)
            parts = []
            while i < len(self.chunks) and self.starts[i] < hi:
                c, s0 = self.chunks[i], self.starts[i]
                parts.append(c[max(0, lo - s0) : hi - s0])
                i += 1
            return np.concatenate(parts) if parts else np.empty((0, self.n), dtype=self.dtype)
        parts, bar, per = [], lo, self.CHUNK * self.n
        while bar < min(hi, self.stored):
            j = bar // self.CHUNK
            flat = self.client.store.range("bars", j * per, (j + 1) * per)
            # stored symbol-major; made bar-major here so that every mode computes on the same
            # memory layout (numpy's kernels may round differently on strided views)
            block = np.ascontiguousarray(flat.reshape(self.n, self.CHUNK).T)
            end = min(hi, (j + 1) * self.CHUNK)
            parts.append(block[bar - j * self.CHUNK : end - j * self.CHUNK])
            bar = end
        if hi > bar:
            tail = np.concatenate(self.pending)
            parts.append(tail[bar - self.stored : hi - self.stored])
        return np.concatenate(parts)

    def archive(self, bar: int) -> None:
        """Bars before ``bar`` will not be read again: the store may hold them lossy (8 bits)."""
        if self.client is not None and bar > 0:
            self.client.store.archive("bars", bar * self.n)

    def evicted(self) -> int:
        """Blocks of history the store has dropped (plain arrays never drop any)."""
        if self.client is None:
            return 0
        pool = self.client.store.pool
        return pool.evicted + pool.evicted_high_value

    def nbytes(self) -> int:
        if self.client is not None:
            return self.client.store.nbytes() + sum(b.nbytes for b in self.pending)
        return sum(c.nbytes for c in self.chunks)


def features(
    px: npt.NDArray[Any], k: int, dtype: np.dtype[Any], corr_window: int
) -> dict[str, Any]:
    """Features for the last ``k`` bars of ``px`` (which holds ``SLOW`` bars of context more)."""
    p = np.asarray(px, dtype=dtype)
    logp = np.log(p)
    r = np.diff(logp, axis=0)
    # each average sums exactly its own bars (not a running sum from the window's start), so a
    # bar's signal is the same bits whatever the batch boundaries: on a tick grid fast and slow
    # tie exactly often enough that a rounding difference would flip a position
    win = np.lib.stride_tricks.sliding_window_view(p[-(k + SLOW - 1) :], SLOW, axis=0)
    fast = win[..., SLOW - FAST :].sum(axis=-1) / FAST
    slow = win.sum(axis=-1) / SLOW
    signal = (fast[-k:] - slow[-k:]) / slow[-k:]
    positions = np.sign(np.nan_to_num(signal)).astype(np.int8)
    w = min(corr_window, len(r))
    rw = r[-w:].astype(np.float64) if dtype == np.float16 else r[-w:]
    vol = np.std(rw, axis=0) * math.sqrt(252)
    corr = np.corrcoef(rw, rowvar=False) if w > 2 and p.shape[1] > 1 else np.ones((1, 1))
    return {"signal": signal, "positions": positions, "returns": r[-k:], "vol": vol, "corr": corr}


class Engine:
    def __init__(self, args: argparse.Namespace, client: EngineClient | None) -> None:
        self.args, self.client = args, client
        self.market = Market(args.csv, args.symbols, args.seed, args.block, args.tick_size,
                             args.return_scale)
        self.history = History(args.mode, args.symbols, client)
        self.estimator = StreamingEstimator()
        self.ticks = self.batches = 0
        self.pnl = 0.0  # sum over bars of mean(position(t-1) * return(t)), in log-return units
        self.prev_pos = np.zeros(args.symbols, dtype=np.int8)
        self.latencies: list[float] = []
        self.peak_rss = resident_bytes()
        self.over_limit_at: int | None = None
        self.positions_out = open(args.positions_out, "wb") if args.positions_out else None
        self.last: dict[str, Any] = {}
        self.bars: list[list[Any]] = []  # [bar index, positions] completed since the last interval
        self.interval_lat: list[float] = []
        self.pnl_marks: list[list[float]] = []
        self.leverage = np.ones(args.symbols, dtype=np.int8)  # set at each recalibration

    def recalibrate(self, bar: int, end: int) -> None:
        """At ``bar`` (a multiple of ``--recalibrate-every``), re-read the long history: leverage
        from each symbol's volatility over the ``--long-window`` bars before ``bar`` (``end`` is the
        bar after the newest one held). It reads the cold store, so its fidelity shows in the
        positions; it is keyed by bar index, so positions do not depend on the batch size."""
        lo = max(0, bar - self.args.long_window)
        if bar - lo < 3:
            return
        # streamed in groups of CHUNK bars aligned to the bar index: the sums are the same bits
        # whatever holds the history (and however it was batched), and no whole-window copy
        n, s1, s2 = 0, np.zeros(self.args.symbols), np.zeros(self.args.symbols)
        prev, g = None, lo
        while g < bar:
            end = min(bar, (g // History.CHUNK + 1) * History.CHUNK)
            x = np.log(self.history.range(g, end).astype(np.float64))
            g = end
            r = np.diff(x if prev is None else np.concatenate([prev, x]), axis=0)
            prev = x[-1:]
            n += len(r)
            s1 += r.sum(axis=0)
            s2 += (r * r).sum(axis=0)
        vol = np.sqrt(np.maximum(0.0, s2 / n - (s1 / n) ** 2))
        with np.errstate(divide="ignore", invalid="ignore"):
            lev = np.rint(self.args.vol_target / vol)
        self.leverage = np.clip(np.nan_to_num(lev, nan=1.0), 1, LEVERAGE_MAX).astype(np.int8)
        # the next recalibration reads from here on: what lies before it is archive to this engine
        self.history.archive(bar + self.args.recalibrate_every - self.args.long_window)

    def leveraged(self, signs: npt.NDArray[np.int8], start: int, end: int) -> npt.NDArray[np.int8]:
        """Positions for bars [start, end): the signs times the leverage in force at each bar."""
        every = self.args.recalibrate_every
        out = np.empty_like(signs)
        lo = start
        for bar in range(-(-max(start, 1) // every) * every, end, every):
            out[lo - start : bar - start] = signs[lo - start : bar - start] * self.leverage
            self.recalibrate(bar, self.market.bar)
            lo = bar
        out[lo - start :] = signs[lo - start :] * self.leverage
        return out

    @property
    def batch_items(self) -> int:
        return self.client.sizer.size if self.client is not None else self.args.batch

    @property
    def dtype(self) -> np.dtype[Any]:
        if self.client is not None:
            return self.client.precision.dtype
        return np.dtype(np.float16 if self.args.mode == "float16-naive" else np.float64)

    def step(self) -> float:
        """One batch: new bars in, features out. Returns its latency in seconds."""
        k = max(1, math.ceil(self.batch_items / self.args.symbols))
        first_bar = self.market.bar
        bars = self.market.next_bars(k)
        started = time.perf_counter()
        profit = 0.0
        for price in bars[:, 0].tolist():  # the engine's own market estimate, on the index
            est = self.estimator.update(price)
            if est is not None:
                self.last["entropy"], profit = est.entropy, est.profit
                self.last["profit"] = profit
        self.history.append(bars, value=profit)
        px = self.history.window(k + SLOW)
        k_eff = min(k, len(px) - SLOW)
        if k_eff > 0:
            f = features(px, k_eff, self.dtype, self.args.corr_window)
            start = first_bar + k - k_eff
            pos = self.leveraged(f["positions"], start, start + k_eff)
            ret = f["returns"].astype(np.float64)
            held = np.concatenate([self.prev_pos[None, :], pos[:-1]]).astype(np.float64)
            per_bar = np.mean(held * ret, axis=1)
            if self.args.json:  # cumulative PnL at every PNL_MARK-th bar, comparable across runs
                cum = self.pnl + np.cumsum(per_bar)
                for i in range((-start) % PNL_MARK, k_eff, PNL_MARK):
                    self.pnl_marks.append([start + i, float(cum[i]) * 1e4])
            self.pnl += float(per_bar.sum())
            self.prev_pos = pos[-1]
            if self.positions_out is not None:
                self.positions_out.write(pos.tobytes())
            if self.args.json and self.args.bars_json:
                self.bars.extend([start + i, row] for i, row in enumerate(pos.tolist()))
            corr = f["corr"]
            off = corr[~np.eye(len(corr), dtype=bool)] if len(corr) > 1 else np.zeros(1)
            self.last.update(
                signal=float(np.mean(f["signal"][-1])), long=int((pos[-1] > 0).sum()),
                vol=float(np.mean(f["vol"])), mean_corr=float(np.nanmean(off)),
            )  # fmt: skip
        seconds = time.perf_counter() - started
        self.ticks += k
        self.batches += 1
        self.latencies.append(seconds * 1000)
        self.interval_lat.append(seconds * 1000)
        if self.client is not None:
            self.client.record_batch(seconds, k * self.args.symbols)
        rss = resident_bytes()
        self.peak_rss = max(self.peak_rss, rss)
        if self.args.memory_limit and rss > self.args.memory_limit and self.over_limit_at is None:
            self.over_limit_at = self.ticks
        return seconds

    @property
    def precision_bits(self) -> int:
        """The decided storage precision under QAS, else the compute dtype's width."""
        if self.client is not None and self.client.current is not None:
            return int(self.client.current.decision.precision_bits)
        return int(self.dtype.itemsize * 8)

    def interval(self, t: float) -> dict[str, Any]:
        """The bench's per-interval record (bench/engine_contract.py); resets the interval."""
        lat = self.interval_lat or [0.0]
        adopted = None if self.client is None or not self.client.adopted else self.client.adopted[-1]
        rec = {
            "type": "interval", "t": t, "ticks": self.ticks,
            "sim_hours": self.ticks * self.args.bar_seconds / 3600, "rss_bytes": resident_bytes(),
            "p99_batch_ms": float(np.percentile(lat, 99)), "batch_size": self.batch_items,
            "precision_bits": self.precision_bits, "bars": self.bars, "pnl_bp": self.pnl * 1e4, "pnl_marks": self.pnl_marks,
            "adopted_decision_ms": None if adopted is None else adopted.latency_seconds * 1000,
            "history_bytes": self.history.nbytes(), "evicted": self.history.evicted(),
            "lat_ms": [round(x, 3) for x in self.interval_lat],
        }  # fmt: skip
        self.bars, self.interval_lat, self.pnl_marks = [], [], []
        return rec

    def summary(self, wall: float) -> dict[str, Any]:
        lat = np.asarray(self.latencies or [0.0])
        a = self.args
        adopted = [] if self.client is None else self.client.adopted
        return {
            "type": "summary", "mode": a.mode, "seed": a.seed, "symbols": a.symbols,
            "ticks": self.ticks, "batches": self.batches, "wall_seconds": wall,
            "trading_hours": self.ticks * a.bar_seconds / 3600,
            "throughput_items_per_second": self.ticks * a.symbols / max(wall, 1e-9),
            "p50_batch_ms": float(np.percentile(lat, 50)), "p99_batch_ms": float(np.percentile(lat, 99)),
            "latency_objective_ms": a.latency_objective_ms,
            "peak_rss_bytes": self.peak_rss, "memory_limit_bytes": a.memory_limit,
            "over_limit_at_tick": self.over_limit_at, "history_bytes": self.history.nbytes(),
            "store_error_bound": None if self.client is None else self.client.store.error_bound(),
            "store_rejected_writes": None if self.client is None else self.client.store.rejected,
            "store_dropped_values": None if self.client is None else self.client.store.dropped_values,
            "store_evicted_high_value": None
            if self.client is None
            else self.client.store.pool.evicted_high_value,
            "adopted": len(adopted),
            "adoption_latency_ms": [round(x.latency_seconds * 1000, 3) for x in adopted],
            "pnl_bp": self.pnl * 1e4, "final_positions_long": self.last.get("long"),
            "signal": self.last.get("signal"), "source": self.market.source,
        }  # fmt: skip


# Whose memory an allocation is, by the innermost frame in one of these: the store (the history
# the engine asked to keep) first, then the engine's own code, then the client and the QAS
# services it runs in-process.
STORE_FILES = ("core/engine/store.py", "services/applier/pool.py", "shared/codecs.py",
               "shared/lossless.py", "shared/longdouble.py")  # fmt: skip
OWNERS = (("store", STORE_FILES), ("engine", ("examples/",)),
          ("client", ("core/", "services/", "shared/", "app/")))  # fmt: skip


def traced_bytes() -> dict[str, int]:
    """Bytes tracemalloc holds now, by owner (``--trace-client``)."""
    import tracemalloc

    out = {f"{name}_traced_bytes": 0 for name, _ in OWNERS} | {"other_traced_bytes": 0}
    root = str(Path(__file__).resolve().parent.parent) + "/"
    for stat in tracemalloc.take_snapshot().statistics("traceback"):
        owner = "other"
        for frame in reversed(stat.traceback):  # innermost first (tracemalloc lists oldest first)
            rel = frame.filename.removeprefix(root)
            owner = next((n for n, files in OWNERS if rel.startswith(files)), "other")
            if owner != "other":
                break
        out[f"{owner}_traced_bytes"] += stat.size
    return out


def emit(args: argparse.Namespace, record: dict[str, Any], text: str) -> None:
    if args.json:
        print(json.dumps(record, separators=(",", ":")), flush=True)
    else:
        print(text, flush=True)


def on_adopt(args: argparse.Namespace) -> Any:
    def show(a: Adopted) -> None:
        d = a.decision
        emit(args, {"type": "adopted", "t": a.adopted_at, "decision_id": d.decision_id,
                    "batch_size": d.batch_size, "precision_tier": d.precision_tier,
                    "precision_bits": d.precision_bits, "scaling_factor": d.scaling_factor,
                    "memory_budget_bytes": d.memory_budget_bytes,
                    "adoption_latency_ms": a.latency_seconds * 1000, "reasons": d.reasons},
             f"adopt {d.decision_id}: batch {d.batch_size}, {d.precision_tier}, factor "
             f"{d.scaling_factor:.2f} ({a.latency_seconds * 1000:.0f} ms after the decision): "
             + " ".join(d.reasons))  # fmt: skip

    return show


async def trade(args: argparse.Namespace, client: EngineClient | None) -> dict[str, Any]:
    engine = Engine(args, client)
    if client is not None:
        client.on_adopt = on_adopt(args)
    began = time.monotonic()
    deadline = None if args.duration is None else began + args.duration
    last_inputs = last_status = 0.0
    last_trace = began
    last_interval = began
    try:
        while (args.ticks is None or engine.ticks < args.ticks) and (
            deadline is None or time.monotonic() < deadline
        ):
            seconds = engine.step()
            now = time.monotonic()
            if args.json and now - last_interval >= args.interval_seconds:
                last_interval = now
                emit(args, engine.interval(now - began), "")
            if args.trace_client and now - last_trace >= args.trace_client:
                last_trace = now
                emit(args, {"type": "trace", "t": now - began, **traced_bytes(),
                            "rss_bytes": resident_bytes(), "history_bytes": engine.history.nbytes()}, "")
            if client is not None and now - last_inputs >= 0.2 and "entropy" in engine.last:
                await client.publish_inputs(
                    entropy=engine.last["entropy"], profit=engine.last["profit"]
                )
                last_inputs = now
            if now - last_status >= args.status_seconds:
                last_status = now
                report = client.reports[-1] if client is not None and client.reports else None
                emit(args, {"type": "status", "ticks": engine.ticks, "batch_ms": seconds * 1000,
                            "p99_ms": None if report is None else report.latency_p99_ms,
                            "objective_ms": args.latency_objective_ms,
                            "rss_bytes": resident_bytes(), "history_bytes": engine.history.nbytes(),
                            **{k: engine.last.get(k) for k in ("signal", "long", "vol", "mean_corr")}},
                     f"tick {engine.ticks}: batch {seconds * 1000:.1f} ms (p99 "
                     f"{'-' if report is None else f'{report.latency_p99_ms:.1f}'} ms, objective "
                     f"{args.latency_objective_ms:g} ms), history {engine.history.nbytes() / 2**20:.1f}"
                     f" MiB, signal {engine.last.get('signal', 0.0):+.4f}, {engine.last.get('long', 0)}"
                     f"/{args.symbols} long, mean corr {engine.last.get('mean_corr', 0.0):.2f}")  # fmt: skip
            pause = (
                0.0
                if args.rate <= 0
                else max(
                    0.0, 1.0 / args.rate * math.ceil(engine.batch_items / args.symbols) - seconds
                )
            )
            await asyncio.sleep(pause)  # lets the client adopt decisions and report between batches
    finally:
        if engine.positions_out is not None:
            engine.positions_out.close()
    if args.json and (engine.bars or engine.interval_lat):
        emit(args, engine.interval(time.monotonic() - began), "")
    return engine.summary(time.monotonic() - began)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.mode != "qas":
        return await trade(args, None)
    settings = Settings(host_id=args.host_id)
    limit = args.memory_limit
    keys = load_verify_key_file(args.verify_key_file) if args.verify_key_file else None
    if args.signing_key_file:  # a migration window: the old shared key, or a private key file
        log.warning("--signing-key-file: an engine needs only the decider's public key: "
                    "--verify-key-file %s", public_path(args.signing_key_file))  # fmt: skip
        held = load_key_file(args.signing_key_file, allow_hmac=True).public()
        keys = held if keys is None else keys.merged(held)
    if args.bootstrap_servers and keys is None:
        log.warning("decisions are not verified (no --verify-key-file): any client that "
                    "can write to qas.decisions can change this engine's settings")  # fmt: skip
    security = BrokerSecurity(
        args.security_protocol, ssl_cafile=args.ssl_cafile, ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile, sasl_mechanism=args.sasl_mechanism,
        sasl_username=args.sasl_username, sasl_password=sasl_password(args.sasl_password_file),
    )  # fmt: skip
    async with connect(
        keys=keys,
        security=security,
        bootstrap_servers=args.bootstrap_servers, settings=settings, host_id=args.host_id,
        latency_objective_ms=args.latency_objective_ms, memory_limit_bytes=limit,
        # the decider's cost model sizes batches from the configured size down to one bar
        batch_size=args.batch, min_batch_size=args.symbols, max_batch_size=args.batch,
        feedback_interval_seconds=args.feedback_interval,
        thermal_source=(lambda: read_thermal(args.thermal_file)) if args.thermal_file else None,
    ) as client:  # fmt: skip
        if args.bootstrap_servers:
            await asyncio.sleep(args.warmup)  # let the group join before the first decision
        summary = await trade(args, client)
        if args.linger:
            await asyncio.sleep(args.linger)
        summary["feedback_reports"] = len(client.reports)
        summary["refused"] = dict(client.follower.adopter.refused)
        summary["refused_unverified"] = client.follower.adopter.refused.get("unverified", 0)
        return summary


def read_thermal(path: Path) -> float:
    """The announced thermal state in ``path`` (0..1); a missing or unreadable file means 0."""
    try:
        return min(1.0, max(0.0, float(path.read_text().strip() or 0)))
    except (OSError, ValueError):
        return 0.0


def parse_bytes(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    return int(float(t[:-1]) * units[t[-1]]) if t and t[-1] in units else int(float(t))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT",
        help="Kafka; default: the embedded bus with QAS in-process",
    )
    p.add_argument("--mode", choices=("qas", "float64", "float16-naive"), default="qas")
    p.add_argument(
        "--csv", type=Path, default=SAMPLE, help="price CSV (default: the shipped S&P 500 sample)"
    )
    p.add_argument("--symbols", type=int, default=20, help="universe size (default 20)")
    p.add_argument("--seed", type=int, default=7, help="bootstrap seed (default 7)")
    p.add_argument(
        "--block", type=int, default=20, help="bootstrap block length in bars (default 20)"
    )
    p.add_argument("--ticks", type=int, help="stop after this many bars")
    p.add_argument("--tick-size", type=float, default=0.01,
                   help="quotes are multiples of this (default 0.01); 0: unrounded full-mantissa prices")
    p.add_argument("--recalibrate-every", type=int, default=2000,
                   help="bars between re-reads of the long history (default 2000)")
    p.add_argument("--long-window", type=int, default=10000,
                   help="bars of history each recalibration reads (default 10000)")
    p.add_argument("--return-scale", type=float, default=1 / math.sqrt(390),
                   help="the series' daily returns times this make one bar's (default 1/sqrt(390))")
    p.add_argument("--vol-target", type=float, default=0.0025,
                   help="leverage = vol target / a symbol's long-run per-bar volatility, 1..4 (default 0.0025)")
    p.add_argument("--trace-client", type=float, default=0.0, metavar="SECONDS",
                   help="--json: every SECONDS, a 'trace' record of tracemalloc's bytes by owner "
                   "(store, engine, client, other); slows the engine")
    p.add_argument("--bars-json", action="store_true",
                   help="--json: interval records list every bar's positions (large)")
    p.add_argument(
        "--duration", type=float, help="stop after this many seconds (default 30 without --ticks)"
    )
    p.add_argument(
        "--rate", type=float, default=0.0, help="bars per second; 0: as fast as it computes"
    )
    p.add_argument(
        "--batch", type=int, default=4096, help="items per batch without QAS (default 4096)"
    )
    p.add_argument(
        "--latency-objective-ms", type=float, default=25.0, help="p99 batch latency objective"
    )
    p.add_argument(
        "--memory-limit",
        "--memory-limit-bytes",
        dest="memory_limit",
        type=parse_bytes,
        help="the limit the engine runs under (bytes, or 512M, 2G)",
    )
    p.add_argument(
        "--corr-window", type=int, default=60, help="correlation window in bars (default 60)"
    )
    p.add_argument(
        "--bar-seconds",
        type=float,
        default=60.0,
        help="trading time one bar stands for (default 60)",
    )
    p.add_argument(
        "--feedback-interval", type=float, default=1.0, help="seconds between reports (default 1)"
    )
    p.add_argument(
        "--status-seconds", type=float, default=2.0, help="seconds between status lines (default 2)"
    )
    p.add_argument(
        "--positions-out", type=Path, help="write each bar's positions (int8, symbols per bar)"
    )
    p.add_argument("--host-id", default=socket.gethostname(), help="must match QAS's --host-id")
    p.add_argument(
        "--warmup", type=float, default=1.0, help="Kafka: seconds before trading (default 1)"
    )
    p.add_argument(
        "--linger", type=float, default=0.0, help="seconds to keep following after trading"
    )
    p.add_argument("--json", action="store_true", help="JSON lines on stdout")
    p.add_argument("--thermal-file", type=Path,
                   help="announced thermal state (0..1), re-read every interval; qas reports it")
    p.add_argument("--interval-seconds", type=float, default=1.0,
                   help="--json: seconds between interval records (default 1)")  # fmt: skip
    env = os.environ.get
    p.add_argument("--verify-key-file", type=Path, default=env("QAS_VERIFY_KEY_FILE") or None,
                   help="the decider's public key file (qas.key.pub): adopt only decisions it "
                        "signed")  # fmt: skip
    p.add_argument("--signing-key-file", type=Path, default=env("QAS_SIGNING_KEY_FILE") or None,
                   help="migration window: a private or previous-release HMAC key file")  # fmt: skip
    p.add_argument("--security-protocol", choices=PROTOCOLS,
                   default=env("QAS_SECURITY_PROTOCOL", "PLAINTEXT"))  # fmt: skip
    for name in ("ssl-cafile", "ssl-certfile", "ssl-keyfile", "sasl-password-file"):
        p.add_argument(f"--{name}", type=Path,
                       default=env(f"QAS_{name.upper().replace('-', '_')}"))  # fmt: skip
    p.add_argument("--sasl-mechanism", choices=MECHANISMS, default=env("QAS_SASL_MECHANISM"))
    p.add_argument("--sasl-username", default=env("QAS_SASL_USERNAME"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.trace_client:
        import tracemalloc

        tracemalloc.start(8)
    if args.ticks is None and args.duration is None:
        args.duration = 30.0
    logging.getLogger("qas.pool").setLevel(logging.ERROR)  # counted in the summary instead
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr
    )
    with contextlib.suppress(KeyboardInterrupt):
        summary = asyncio.run(run(args))
        emit(args, summary,
             f"{args.mode}: {summary['ticks']} bars x {args.symbols} symbols in {summary['wall_seconds']:.1f} s, "
             f"p99 batch {summary['p99_batch_ms']:.1f} ms (objective {args.latency_objective_ms:g} ms), "
             f"peak RSS {summary['peak_rss_bytes'] / 2**20:.0f} MiB, PnL {summary['pnl_bp']:+.1f} bp\n"
             f"adopted {summary['adopted']} configurations; "
             f"refused {summary.get('refused_unverified', 0)} unverified")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
