"""The engine's declared batch sizes: where its sizer starts, what it adopts, what it reports."""

from __future__ import annotations

import msgspec
import pytest

from core.engine import BatchSizer, EngineClient
from core.engine.options import ClientOptionError
from services.bus.memory import MemoryBus
from shared.messages import FeedbackReport, decode, encode
from tests.core.test_engine_client import decision


def test_the_sizer_starts_at_the_configured_size_and_bounds_what_it_adopts() -> None:
    c = EngineClient(MemoryBus(), host_id="h", batch_size=1000, min_batch_size=16,
                     max_batch_size=4096, clock=lambda: 0.0)  # fmt: skip
    assert c.sizer.size == 1000  # before any decision: the engine's own size
    d = decision(host="h")
    assert c.sizer.adopt(msgspec.structs.replace(d, batch_size=5)) == 16
    assert c.sizer.adopt(msgspec.structs.replace(d, batch_size=65536)) == 4096
    assert c.sizer.adopt(msgspec.structs.replace(d, batch_size=700)) == 700


def test_reports_declare_the_bounds_to_the_decider() -> None:
    c = EngineClient(MemoryBus(), host_id="h", batch_size=1000, min_batch_size=16,
                     max_batch_size=4096, clock=lambda: 0.0)  # fmt: skip
    c.record_batch(0.02, 1000)
    r = decode(encode(c.reporter.report()), FeedbackReport)
    assert (r.batch_min, r.batch_max, r.batch_configured, r.batch_size) == (16, 4096, 1000, 1000)


def test_undeclared_sizes_leave_the_configured_size_out() -> None:
    c = EngineClient(MemoryBus(), host_id="h", clock=lambda: 0.0)
    assert c.sizer.size == 256
    c.record_batch(0.02, 256)
    r = c.reporter.report()
    assert r.batch_configured is msgspec.UNSET and b"batch_configured" not in encode(r)
    assert (r.batch_min, r.batch_max) == (1, 1 << 20)


@pytest.mark.parametrize("kw", [dict(min_batch_size=100, max_batch_size=10),
                                dict(batch_size=5, min_batch_size=16),
                                dict(batch_size=0), dict(min_batch_size=True)])  # fmt: skip
def test_bad_sizes_fail_at_construction(kw: dict[str, object]) -> None:
    with pytest.raises(ClientOptionError):
        EngineClient(MemoryBus(), host_id="h", **kw)  # type: ignore[arg-type]


def test_a_sizer_given_whole_is_used_as_it_is() -> None:
    s = BatchSizer(size=64, minimum=8, maximum=128, configured=64)
    c = EngineClient(MemoryBus(), host_id="h", sizer=s, clock=lambda: 0.0)
    assert c.sizer is s and c.reporter.sizer is s
