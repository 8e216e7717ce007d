"""Checks compiled from what a message type declares, run once per message.

msgspec checks ``Meta`` constraints only on decode and writes NaN as ``null``. Rather than walk
every value of every message asking "is this a float?" (and decode each encoded message again to
reach the constraints), each Struct type is read once with :func:`msgspec.inspect.type_info` and
turned into a check that visits only the fields whose type can hold something to check:

- ``full`` (messages built in code, before they are encoded): types, ranges, lengths, patterns,
  literals and finiteness, with msgspec's wording (``Expected `float` <= 1.0 - at `$.value```);
- finite-only (messages just decoded, whose constraints msgspec has checked): the float fields
  that a constraint does not already bound, where ``1e999`` decodes to ``inf``.

- exact (messages about to be signed): full, and an ``int`` in a ``float`` field is reported
  (:data:`INT_IN_FLOAT`): it encodes as ``1`` but decodes as ``1.0``, so its bytes would not be
  the bytes a reader re-encodes.

This is the only finiteness and range check: a type declaring something this module cannot
check is refused (:class:`Unsupported`) rather than walked value by value, so a new field type is
never silently unchecked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any, Final, Literal, cast

import msgspec
import msgspec.inspect as mi

#: a check returns None, or where the value is wrong and why: ("$.a.b", "is nan: ...")
Check = Callable[[Any], tuple[str, str] | None]

#: what a check covers: after a decode, before an encode, before a signature (see above)
Mode = Literal[0, 1, 2]
DECODED: Final[Mode] = 0
FULL: Final[Mode] = 1
EXACT: Final[Mode] = 2


class Unsupported(Exception):
    """A declared type with no compiled check."""


_NUMBER: Final = (int, float)
#: the reason an exact check gives for an int in a float field (not a fault for ``full``)
INT_IN_FLOAT: Final = "is an int in a float field"


def _at(path: str, fault: tuple[str, str] | None) -> tuple[str, str] | None:
    return None if fault is None else (path + fault[0], fault[1])


def _bounds(t: mi.FloatType | mi.IntType, kind: str) -> list[tuple[Callable[[Any], bool], str]]:
    out: list[tuple[Callable[[Any], bool], str]] = []
    if t.ge is not None:
        ge = t.ge
        out.append((lambda v: v >= ge, f"Expected `{kind}` >= {ge}"))
    if t.gt is not None:
        gt = t.gt
        out.append((lambda v: v > gt, f"Expected `{kind}` > {gt}"))
    if t.le is not None:
        le = t.le
        out.append((lambda v: v <= le, f"Expected `{kind}` <= {le}"))
    if t.lt is not None:
        lt = t.lt
        out.append((lambda v: v < lt, f"Expected `{kind}` < {lt}"))
    if t.multiple_of is not None:
        raise Unsupported("multiple_of")
    return out


def _float(t: mi.FloatType, mode: Mode) -> Check | None:
    bounds = _bounds(t, "float")
    full, exact = mode >= FULL, mode == EXACT
    if not full:
        if t.le is not None or t.lt is not None:
            if t.ge is not None or t.gt is not None:
                return None  # msgspec's own bounds keep inf and -inf out
        return lambda v: None if math.isfinite(v) else ("", f"is {v!r}: not a finite number")

    def check(v: Any) -> tuple[str, str] | None:
        if not isinstance(v, _NUMBER) or isinstance(v, bool):
            return "", f"Expected `float`, got `{type(v).__name__}`"
        if not math.isfinite(v):
            return "", f"is {v!r}: not a finite number"
        for ok, why in bounds:
            if not ok(v):
                return "", why
        if exact and type(v) is not float:
            return "", INT_IN_FLOAT
        return None

    return check


def _int(t: mi.IntType) -> Check:
    bounds = _bounds(t, "int")

    def check(v: Any) -> tuple[str, str] | None:
        if not isinstance(v, int) or isinstance(v, bool):
            return "", f"Expected `int`, got `{type(v).__name__}`"
        for ok, why in bounds:
            if not ok(v):
                return "", why
        return None

    return check


def _str(t: mi.StrType) -> Check:
    lo, hi = t.min_length, t.max_length
    pattern = None if t.pattern is None else re.compile(t.pattern)

    def check(v: Any) -> tuple[str, str] | None:
        if not isinstance(v, str):
            return "", f"Expected `str`, got `{type(v).__name__}`"
        if lo is not None and len(v) < lo:
            return "", f"Expected `str` of length >= {lo}"
        if hi is not None and len(v) > hi:
            return "", f"Expected `str` of length <= {hi}"
        if pattern is not None and pattern.search(v) is None:
            return "", f"Expected `str` matching regex {pattern.pattern!r}"
        return None

    return check


def _kind(kinds: tuple[type, ...], name: str) -> Check:
    def check(v: Any) -> tuple[str, str] | None:
        if isinstance(v, kinds):
            return None
        return "", f"Expected `{name}`, got `{type(v).__name__}`"

    return check


def _items(item: Check, kinds: tuple[type, ...], name: str) -> Check:
    def check(v: Any) -> tuple[str, str] | None:
        if not isinstance(v, kinds):
            return "", f"Expected `{name}`, got `{type(v).__name__}`"
        items = cast("Iterable[Any]", v)
        for i, x in enumerate(items):
            fault = item(x)
            if fault is not None:
                return f"[{i}]{fault[0]}", fault[1]
        return None

    return check


def _compile(t: mi.Type, mode: Mode, cache: dict[tuple[type, Mode], Check | None]) -> Check | None:
    """None: nothing of this type can be wrong (in this mode)."""
    if isinstance(t, mi.FloatType):
        return _float(t, mode)
    if isinstance(t, mi.DictType):
        return _dict(t, mode, cache)
    if not mode:
        # after decode only unbounded floats need a look: descend only where they can be
        if isinstance(t, mi.StructType):
            return _struct(t, mode, cache)
        if isinstance(t, mi.ListType | mi.VarTupleType | mi.SetType | mi.FrozenSetType):
            inner = _compile(t.item_type, mode, cache)
            return None if inner is None else _items(inner, (list, tuple, set, frozenset), "array")
        if isinstance(t, mi.TupleType):
            checks = [_compile(x, mode, cache) for x in t.item_types]
            return _tuple(checks) if any(c is not None for c in checks) else None
        if isinstance(t, mi.UnionType):
            return _union(t, mode, cache)
        if isinstance(t, mi.IntType | mi.StrType | mi.BoolType | mi.NoneType | mi.BytesType
                      | mi.LiteralType | mi.AnyType):  # fmt: skip
            return None
        raise Unsupported(type(t).__name__)
    if isinstance(t, mi.IntType):
        return _int(t)
    if isinstance(t, mi.StrType):
        return _str(t)
    if isinstance(t, mi.BoolType):
        return _kind((bool,), "bool")
    if isinstance(t, mi.NoneType):
        return lambda v: None if v is None else ("", f"Expected `null`, got `{type(v).__name__}`")
    if isinstance(t, mi.BytesType):
        if t.min_length is not None or t.max_length is not None:
            raise Unsupported("bytes length")
        return _kind((bytes, bytearray), "bytes")
    if isinstance(t, mi.LiteralType):
        values = frozenset(t.values)
        shown = ", ".join(repr(x) for x in t.values)
        return lambda v: (
            None
            if isinstance(v, str | int) and v in values
            else ("", f"Invalid enum value {v!r} ({shown})")
        )
    if isinstance(t, mi.ListType):
        inner = _compile(t.item_type, mode, cache)
        items = _items(inner or (lambda v: None), (list, tuple), "array")
        lo, hi = t.min_length, t.max_length
        if lo is None and hi is None:
            return items

        def sized(v: Any) -> tuple[str, str] | None:
            if isinstance(v, list | tuple):
                if lo is not None and len(v) < lo:
                    return "", f"Expected `array` of length >= {lo}"
                if hi is not None and len(v) > hi:
                    return "", f"Expected `array` of length <= {hi}"
            return items(v)

        return sized
    if isinstance(t, mi.TupleType):
        checks = [_compile(x, mode, cache) for x in t.item_types]
        n = len(checks)
        inner_tuple = _tuple(checks)

        def fixed(v: Any) -> tuple[str, str] | None:
            if not isinstance(v, tuple | list) or len(v) != n:
                return "", f"Expected `array` of length {n}"
            return inner_tuple(v)

        return fixed
    if isinstance(t, mi.StructType):
        return _struct(t, mode, cache)
    if isinstance(t, mi.UnionType):
        return _union(t, mode, cache)
    if isinstance(t, mi.AnyType):
        return None
    raise Unsupported(type(t).__name__)


def _dict(t: mi.DictType, mode: Mode, cache: dict[tuple[type, Mode], Check | None]) -> Check | None:
    if t.min_length is not None or t.max_length is not None:
        raise Unsupported("object length")
    keys, values = _compile(t.key_type, mode, cache), _compile(t.value_type, mode, cache)
    if not mode and keys is None and values is None:
        return None

    def check(v: Any) -> tuple[str, str] | None:
        if not isinstance(v, dict):
            return "", f"Expected `object`, got `{type(v).__name__}`"
        for k, x in v.items():
            fault = None if keys is None else keys(k)
            if fault is None and values is not None:
                fault = values(x)
            if fault is not None:
                return f"[{k!r}]{fault[0]}", fault[1]
        return None

    return check


def _tuple(checks: list[Check | None]) -> Check:
    def check(v: Any) -> tuple[str, str] | None:
        for i, (c, x) in enumerate(zip(checks, v, strict=False)):
            if c is not None:
                fault = c(x)
                if fault is not None:
                    return f"[{i}]{fault[0]}", fault[1]
        return None

    return check


def _union(
    t: mi.UnionType, mode: Mode, cache: dict[tuple[type, Mode], Check | None]
) -> Check | None:
    nullable = any(isinstance(x, mi.NoneType) for x in t.types)
    rest = [x for x in t.types if not isinstance(x, mi.NoneType)]
    if len(rest) != 1:
        raise Unsupported("union of several types")
    inner = _compile(rest[0], mode, cache)
    if inner is None:
        return None
    if not nullable:
        return inner
    return lambda v: None if v is None else inner(v)


def _struct(
    t: mi.StructType, mode: Mode, cache: dict[tuple[type, Mode], Check | None]
) -> Check | None:
    key = (t.cls, mode)
    if key in _BUILDING:
        raise Unsupported("recursive struct")
    if key in cache:
        return cache[key]
    _BUILDING.add(key)
    try:
        fields = [(f.name, c) for f in t.fields if (c := _compile(f.type, mode, cache)) is not None]
    finally:
        _BUILDING.discard(key)
    if not fields and not mode:
        cache[key] = None
        return None
    if mode:
        fast = _generate(t, dict(fields))
        cache[key] = fast
        return fast

    def check(v: Any) -> tuple[str, str] | None:
        for name, c in fields:
            fault = c(getattr(v, name))
            if fault is not None:
                return f".{name}{fault[0]}", fault[1]
        return None

    cache[key] = check
    return check


def _compare(t: mi.FloatType | mi.IntType, x: str, cast: type) -> list[str]:
    out = []
    for attr, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        bound = getattr(t, attr)
        if bound is not None:
            out.append(f"{x} {op} {cast(bound)!r}")
    return out


def _fast_test(t: mi.Type, x: str, env: dict[str, Any], k: str) -> str | None:
    """A Python expression that is True when value ``x`` passes (None: no inline form). It may
    refuse more than the check does (an int in a float field, a list for a tuple): a value it
    refuses is handed to the compiled check, which decides."""
    if isinstance(t, mi.FloatType):
        parts = [f"type({x}) is float", *_compare(t, x, float)]
        lower = next((b for b in (t.ge, t.gt) if b is not None), None)
        upper = next((b for b in (t.le, t.lt) if b is not None), None)
        if lower is None or upper is None or not math.isfinite(lower - upper):
            parts.insert(1, f"{x} - {x} == 0.0")  # finite: nan and inf fail
        return " and ".join(parts)  # two finite bounds: nan and inf fail the comparisons
    if isinstance(t, mi.IntType):
        return " and ".join([f"type({x}) is int", *_compare(t, x, int)])
    if isinstance(t, mi.StrType):
        parts = [f"type({x}) is str"]
        if t.min_length is not None:
            parts.append(f"len({x}) >= {t.min_length}")
        if t.max_length is not None:
            parts.append(f"len({x}) <= {t.max_length}")
        if t.pattern is not None:
            env[f"_re{k}"] = re.compile(t.pattern)
            parts.append(f"_re{k}.search({x}) is not None")
        return " and ".join(parts)
    if isinstance(t, mi.BoolType):
        return f"type({x}) is bool"
    if isinstance(t, mi.LiteralType):
        env[f"_lit{k}"] = frozenset(t.values)
        return f"(type({x}) is str or type({x}) is int) and {x} in _lit{k}"
    if isinstance(t, mi.TupleType):
        items = [_fast_test(u, f"{x}[{i}]", env, f"{k}_{i}") for i, u in enumerate(t.item_types)]
        if any(test is None for test in items):
            return None
        n = len(items)
        return " and ".join([f"type({x}) is tuple and len({x}) == {n}", *map("({})".format, items)])
    if isinstance(t, mi.UnionType):
        rest = [u for u in t.types if not isinstance(u, mi.NoneType)]
        if len(rest) == 1 and len(t.types) == 2:
            inner = _fast_test(rest[0], x, env, k)
            return None if inner is None else f"({x} is None or ({inner}))"
    return None


def _or_unset(check: Check) -> Check:
    return lambda v: None if v is msgspec.UNSET else check(v)


def _generate(t: mi.StructType, checks: dict[str, Check]) -> Check:
    """One generated function per Struct type: the scalar fields' checks inline (a comparison
    each), lists of scalars as one inline loop, the rest (nested structs) through their compiled
    checks. A value the inline test refuses is handed to its compiled check, for msgspec's
    wording (or to accept what the inline test is stricter about)."""
    env: dict[str, Any] = {"_cls": t.cls}
    # A field declared ``T | UnsetType = UNSET`` is left out of the encoding while UNSET (so a
    # field added that way keeps older messages' bytes, which a signature covers): nothing to check.
    unset = {f.name for f in msgspec.structs.fields(t.cls) if f.default is msgspec.UNSET}
    lines = ["def check(v):",
             "    if not isinstance(v, _cls):",
             f"        return '', 'Expected `{t.cls.__name__}`, got `' + type(v).__name__ + '`'"]  # fmt: skip
    for k, f in enumerate(t.fields):
        if f.name not in checks:
            continue
        env[f"_c{k}"] = checks[f.name] if f.name not in unset else _or_unset(checks[f.name])
        lines.append(f"    x = v.{f.name}")
        fail = [f"fault = _c{k}(x)", "if fault is not None:",
                f"    return '.{f.name}' + fault[0], fault[1]"]  # fmt: skip
        test = None if f.name in unset else _fast_test(f.type, "x", env, str(k))
        item = f.type.item_type if isinstance(f.type, mi.ListType) and f.name not in unset else None
        each = None if item is None else _fast_test(item, "y", env, f"{k}_i")
        if test is not None:
            lines.append(f"    if not ({test}):")
            lines += [f"        {line}" for line in fail]
        elif each is not None:
            lines += ["    ok = type(x) is list",
                      "    if ok:",
                      "        for y in x:",
                      f"            if not ({each}):",
                      "                ok = False",
                      "                break",
                      "    if not ok:"]  # fmt: skip
            lines += [f"        {line}" for line in fail]
        else:
            lines += [f"    {line}" for line in fail]
    lines.append("    return None")
    exec("\n".join(lines), env)
    check: Check = env["check"]
    return check


_BUILDING: set[tuple[type, Mode]] = set()
_CACHE: dict[tuple[type, Mode], Check | None] = {}
_CHECKS: dict[tuple[type, Mode], Check | Unsupported | None] = {}


def checker(kind: type[msgspec.Struct], mode: Mode) -> Check | Unsupported | None:
    """The compiled check for a Struct type (cached): a Check, None (nothing to check), or the
    Unsupported reason when the type declares something this module cannot check."""
    key = (kind, mode)
    got = _CHECKS.get(key)
    if got is None and key not in _CHECKS:
        try:
            got = _compile(mi.type_info(kind), mode, _CACHE)
        except Unsupported as exc:
            got = exc
        _CHECKS[key] = got
    return got
