"""shared/fingerprint.py: stable across readings and rounding noise, changed by real changes."""

from __future__ import annotations

import json

import msgspec
import pytest

from shared.fingerprint import canonical_inventory, fingerprint, hash_identifier
from tests.support.factories import GIB, RTX_3060_TI, inventory, reference_host


def test_is_a_sha256_hex_digest_and_deterministic() -> None:
    fp = fingerprint(reference_host())
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert fp == fingerprint(reference_host())


def test_canonical_form_has_sorted_keys_and_integer_mhz() -> None:
    raw = canonical_inventory(inventory(cpu_max_freq_mhz=4500.4, cpu_quota_cores=1.23456))
    doc = json.loads(raw)
    assert list(doc) == sorted(doc)
    assert doc["cpu_max_freq_mhz"] == 4500 and doc["cpu_quota_cores"] == 1.235


def test_stable_under_frequency_and_quota_noise() -> None:
    a = inventory(cpu_max_freq_mhz=4500.2, cpu_quota_cores=2.0001)
    b = inventory(cpu_max_freq_mhz=4499.8, cpu_quota_cores=1.9999)
    assert fingerprint(a) == fingerprint(b)


@pytest.mark.parametrize("change", [
    {"gpus": []},                                   # a GPU lost
    {"gpus": [RTX_3060_TI, msgspec.structs.replace(RTX_3060_TI, index=1)]},  # one added
    {"memory_limit_bytes": 4 * GIB},                # a memory limit set
    {"cpu_quota_cores": 2.0},                       # a CPU limit set
    {"logical_cores": 16},
    {"memory_total_bytes": 64 * GIB},
])  # fmt: skip
def test_inventory_changes_change_it(change: dict[str, object]) -> None:
    base = reference_host()
    assert fingerprint(msgspec.structs.replace(base, **change)) != fingerprint(base)


def test_hash_identifier_hides_the_value() -> None:
    h = hash_identifier("GPU-1234-abcd")
    assert len(h) == 64 and "1234" not in h and h == hash_identifier("GPU-1234-abcd")
    assert h != hash_identifier("GPU-1234-abce")
