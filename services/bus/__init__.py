"""The message bus: one small interface (base.py), two transports (memory.py, kafka.py)."""

from services.bus.base import Bus, BusError, Consumer, Record
from services.bus.memory import MemoryBus

__all__ = ["Bus", "BusError", "Consumer", "MemoryBus", "Record"]
