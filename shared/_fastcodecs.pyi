from typing import Any

KERNEL: str

def encode(
    x: Any, q: Any, lo: Any, hi: Any, ref: Any, scale: Any, block: int, levels: float,
    portable: bool = ..., /,
) -> bool: ...
def narrow32(x: Any, f: Any, portable: bool = ..., /) -> tuple[float, float, float]: ...
def decode(q: Any, ref: Any, scale: Any, out: Any, block: int, /) -> None: ...
