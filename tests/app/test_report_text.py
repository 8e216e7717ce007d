from __future__ import annotations

from pathlib import Path

from app.report_text import topics_markdown
from shared.topics import TABLE

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_documented_topic_list_is_the_topic_table() -> None:
    table = topics_markdown()
    assert len(table.splitlines()) == len(TABLE) + 2
    assert table in OPERATIONS.read_text(), "docs/operations.md's Topics table is stale: paste topics_markdown()"
