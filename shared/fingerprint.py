"""SHA-256 fingerprint of the stable inventory.

The seed's sample hashes ``f"{gpu.name}{gpu.memory_gb}{ram_gb}{cpu_cores}{timestamp}"``: with a
timestamp in it, every sample hashes differently and every sample would be a "quantum collapse".
We hash only stable facts, canonically (sorted keys, bytes and MHz as integers, floats rounded),
so the same machine gives the same fingerprint across runs and reboots, and only a real change
(a GPU added or lost, a memory or CPU limit changed) gives a new one.
"""

from __future__ import annotations

import hashlib

import msgspec

from shared.messages import Inventory

_enc = msgspec.json.Encoder(order="sorted")


def canonical_inventory(inv: Inventory) -> bytes:
    canon = msgspec.structs.replace(
        inv,
        cpu_max_freq_mhz=None if inv.cpu_max_freq_mhz is None else round(inv.cpu_max_freq_mhz),
        cpu_quota_cores=None if inv.cpu_quota_cores is None else round(inv.cpu_quota_cores, 3),
    )
    return _enc.encode(canon)


def fingerprint(inv: Inventory) -> str:
    return hashlib.sha256(canonical_inventory(inv)).hexdigest()


def hash_identifier(value: str) -> str:
    """Serial numbers and UUIDs leave the host only as this digest."""
    return hashlib.sha256(value.encode()).hexdigest()
