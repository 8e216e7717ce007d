from __future__ import annotations

from services.applier.service import ApplierService
from services.bus.memory import MemoryBus
from services.decider.service import DeciderService
from shared.config import Settings
from shared.topics import BY_ROLE, TABLE, Topics


def test_every_row_has_a_configurable_name_and_every_name_a_row() -> None:
    assert set(Topics.__struct_fields__) == {s.role for s in TABLE}
    t = Topics()
    assert [t.name(s.role) for s in TABLE] == [s.default for s in TABLE]
    assert t.compacted() == ["qas.hardware"]


def test_a_renamed_topic_is_what_the_bus_creates() -> None:
    t = Topics(entropy="x.entropy")
    assert "x.entropy" in t.all() and "market.entropy" not in t.all()


def test_services_consume_exactly_what_the_table_says() -> None:
    bus, s = MemoryBus(), Settings()
    for svc in (DeciderService(bus, s, "h"), ApplierService(bus, s, "h")):
        assert set(svc.handlers()) == {spec.role for spec in s.topics.consumed_by(svc.service)}
        for topic, route in svc.routes().items():
            role = next(r for r in BY_ROLE if s.topics.name(r) == topic)
            assert route.kind is BY_ROLE[role].message
