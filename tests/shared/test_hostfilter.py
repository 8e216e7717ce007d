"""The --hosts allowlist: exact ids and globs, from a comma list or a file's lines."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from app.options import hosts
from shared.hostfilter import HostFilterError, only, parse_hosts


def test_exact_ids_and_globs_are_matched_case_sensitively() -> None:
    f = parse_hosts("db-1, web-*,cache-[ab]")
    assert f.exact == frozenset({"db-1"}) and f.globs == ("web-*", "cache-[ab]")
    assert all(f.allows(h) for h in ("db-1", "web-7", "web-", "cache-a"))
    assert not any(f.allows(h) for h in ("db-10", "WEB-7", "cache-c", "flood-0"))
    assert not f.everything and parse_hosts("*").everything
    assert only("h1").allows("h1") and not only("h1").allows("h2")


def test_a_file_holds_one_or_more_a_line_with_comments(tmp_path: Path) -> None:
    path = tmp_path / "hosts.txt"
    path.write_text("# the trading floor\nengine-*  # every engine\n\nrisk-1, risk-2\n")
    f = hosts(f"@{path}")
    assert f.allows("engine-9") and f.allows("risk-2") and not f.allows("the")
    with pytest.raises(argparse.ArgumentTypeError, match="cannot read"):
        hosts(f"@{tmp_path / 'missing'}")


@pytest.mark.parametrize("text", ["", " , ,", "# only a comment", "a b", "x" * 254])
def test_an_empty_or_malformed_list_is_refused(text: str) -> None:
    with pytest.raises(HostFilterError):
        parse_hosts(text)
