"""A fleet of deciders on the real broker: separate `qas decider` processes in one group share
the hosts; one is SIGKILLed and its hosts are decided by the others (bench/fleet.py, small)."""

from __future__ import annotations

import asyncio

import pytest

from bench.fleet import FleetRun, fleet

pytestmark = pytest.mark.kafka


def test_a_killed_deciders_hosts_are_decided_by_the_others_within_the_session_timeout() -> None:
    run = FleetRun(hosts=60, deciders=3, partitions=6, period=2.0, seconds=24.0)
    row = asyncio.run(fleet(run, progress=False))
    print(row)
    # Every decider owned hosts before the kill: the group shared them.
    assert len(row["hosts_per_decider"]) == 3 and min(row["hosts_per_decider"]) > 0, row
    assert sum(row["hosts_per_decider"]) >= 60, row  # a takeover may count a host twice
    # The killed one's hosts moved to the others and were decided on again, none lost.
    assert row["killed_decider_hosts"] > 0 and row["moved_hosts"] == row["killed_decider_hosts"]
    assert row["lost_hosts"] == 0, row["lost_examples"]
    assert row["max_gap_seconds"] <= run.session_timeout + 5.0, row
