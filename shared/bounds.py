"""Bounds on untrusted bytes from the bus, checked before any decoder sees them.

msgspec decodes a record in C, but it raises ``RecursionError`` on deep nesting (even inside an
unknown field it would skip) and, before 0.23, ``UnicodeDecodeError`` on invalid UTF-8 inside a
string (shared/messages.py ``decode`` turns either into InvalidMessage); and a
record's size bounds every string in it. So a record is refused here, with a reason, when it is
larger than ``max_bytes`` or nested deeper than ``max_depth``; ``dead_letter_payload`` keeps a
dead letter of any record under the broker's request limit.
"""

from __future__ import annotations

import hashlib
import re

MAX_RECORD_BYTES = 256 * 1024  # every QAS message is a few KB; a bound on every string in it
MAX_DEPTH = 32  # the deepest QAS message nests 4 levels
MAX_LETTER_PAYLOAD = 64 * 1024  # a dead letter's payload above this keeps only its first bytes

# A JSON string (escapes included) or one bracket: brackets inside strings are not nesting.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def nesting_depth(data: bytes, limit: int) -> int:
    """The deepest nesting of ``[``/``{`` in ``data``; the scan stops once it passes ``limit``."""
    depth = deepest = 0
    for m in _TOKEN.finditer(data):
        tok = m.group()
        if tok in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif tok in (b"]", b"}"):
            depth -= 1
    return deepest


def refusal(data: bytes, max_bytes: int = MAX_RECORD_BYTES, max_depth: int = MAX_DEPTH) -> str:
    """Why ``data`` must not be decoded at all, or "" when it may be."""
    if len(data) > max_bytes:
        return f"record of {len(data)} bytes is larger than {max_bytes}"
    # bytes.count runs in C: a record with few brackets (every valid one) skips the scan.
    few = data.count(b"[") + data.count(b"{") <= max_depth
    if not few and nesting_depth(data, max_depth) > max_depth:
        return f"nested deeper than {max_depth}"
    return ""


def dead_letter_payload(
    value: bytes, max_bytes: int = MAX_LETTER_PAYLOAD
) -> tuple[bytes, int, str]:
    """The payload a dead letter carries: the whole value when it fits, else its first
    ``max_bytes``; with the original size and the SHA-256 (hex) of the whole value."""
    return value[:max_bytes], len(value), hashlib.sha256(value).hexdigest()
