"""Use after close raises one clear ClientClosed everywhere; close() is idempotent."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from core.engine import (
    BackgroundClient,
    ClientClosed,
    ClientFailed,
    EngineClient,
    EngineStore,
    connect,
)
from services.bus.memory import MemoryBus
from shared.config import Settings


async def test_async_client_after_the_block_refuses_every_call() -> None:
    bus = MemoryBus()
    await bus.start()
    async with connect(bus=bus, host_id="h", embedded_qas=False) as qas:
        qas.record_batch(0.001, 10)
        assert qas.store.append("s", [1.0, 2.0]) and qas.current is None and qas.healthy
    with pytest.raises(ClientClosed, match="record_batch after"):
        qas.record_batch(0.001, 10)
    with pytest.raises(ClientClosed, match="current after"):
        _ = qas.current
    with pytest.raises(ClientClosed):
        await qas.publish_tick("SPX", 1.0)
    with pytest.raises(ClientClosed):
        await qas.publish_inputs(entropy=0.5)
    with pytest.raises(ClientClosed, match=r"append\('s'\) after"):
        qas.store.append("s", [3.0])
    assert not qas.healthy
    qas.close()  # again: nothing
    assert np.array_equal(qas.store.read("s"), [1.0, 2.0])  # reads still answer
    await bus.stop()


def test_engine_client_close_is_idempotent() -> None:
    c = EngineClient(MemoryBus(), host_id="h")
    c.close()
    c.close()
    assert c.stop.is_set() and c.closed
    with pytest.raises(ClientClosed):
        c.record_batch(0.1, 1)


def test_bare_store_close() -> None:
    s = EngineStore(1 << 20)
    s.close()
    s.close()
    with pytest.raises(ClientClosed):
        s.append("x", [1.0])


def test_background_client_after_close_raises_client_closed_without_warnings() -> None:
    s = Settings(host_id="bg")
    qas = BackgroundClient(settings=s, host_id="bg", embedded_qas=False).start()
    store = qas.store
    qas.record_batch(0.001, 5)
    qas.publish_tick("SPX", 100.0)
    qas.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "coroutine was never awaited"
        for call in (
            lambda: qas.record_batch(0.001, 5),
            lambda: qas.publish_tick("SPX", 1.0),
            lambda: qas.publish_ticks([("SPX", 1.0)]),
            lambda: qas.publish_inputs(profit=0.5),
            lambda: qas.current,
            lambda: qas.store,
            lambda: store.append("x", [1.0]),
            lambda: next(iter(qas.decisions())),
            qas.start,
        ):
            with pytest.raises(ClientClosed):
                call()
    qas.close()  # idempotent
    assert not qas.healthy


def test_background_client_whose_thread_died_raises_client_failed() -> None:
    qas = BackgroundClient(settings=Settings(host_id="dead"), host_id="dead", embedded_qas=False)
    qas.start()
    assert qas.healthy
    loop = qas._loop
    assert loop is not None
    loop.call_soon_threadsafe(loop.stop)  # the thread's loop ends under the client
    qas._thread.join(10)
    assert not qas.healthy
    for call in (lambda: qas.record_batch(0.001, 1), lambda: qas.current, qas.decisions):
        with pytest.raises(ClientFailed, match="thread has stopped"):
            call()
    assert isinstance(qas.last_error, RuntimeError)
    with pytest.raises(RuntimeError, match="Event loop stopped"):
        qas.close()  # the failure, once
    qas.close()
