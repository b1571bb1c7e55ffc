"""One strict parse of every request body.

Ambiguity is where smuggling lives: two parsers that disagree on duplicate keys,
lone surrogates or huge numbers let a call mean one thing to the gate and another
to the tool. We accept exactly one reading and refuse everything else with a 400.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from gatekeeper import codes

from .errors import PayloadTooLarge, RequestError

MAX_SAFE_INTEGER = 2**53 - 1
DEFAULT_MAX_DEPTH = 64

# A lone surrogate escape: \uD800-\uDFFF not part of a valid high+low pair.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}|\\u[dD][c-fC-F][0-9a-fA-F]{2}")


def _reject_constant(name: str) -> Any:
    raise RequestError(f"{name} is not valid JSON; send numbers as finite values", code=codes.INVALID_NUMBER)


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise RequestError(
                f"duplicate key {key!r} in JSON object; send each key once", code=codes.DUPLICATE_KEY
            )
        obj[key] = value
    return obj


def _parse_int(text: str) -> int:
    value = int(text)
    if abs(value) > MAX_SAFE_INTEGER:
        raise RequestError(
            f"integer {text[:24]} is outside the safe range ±(2^53-1); send it as a string",
            code=codes.NUMBER_OUT_OF_RANGE,
        )
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")) or (
        abs(value) > float(MAX_SAFE_INTEGER) and value.is_integer()
    ):
        raise RequestError(f"number {text[:24]} is outside the safe range", code=codes.NUMBER_OUT_OF_RANGE)
    return value


_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs,
    parse_constant=_reject_constant,
    parse_int=_parse_int,
    parse_float=_parse_float,
)


def _check_strings(value: Any, depth: int, max_depth: int) -> None:
    """Walk the parsed value: bound nesting and refuse lone surrogates (also in keys)."""
    if depth > max_depth:
        raise RequestError(f"JSON nesting deeper than {max_depth} levels", code=codes.NESTING_TOO_DEEP)
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_strings(item, depth + 1, max_depth)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item, depth + 1, max_depth)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError("string contains a lone UTF-16 surrogate", code=codes.INVALID_UNICODE) from None


def _depth_exceeds(value: Any, max_depth: int) -> bool:
    """Walk containers only (not characters): cheap even for a large body of small strings."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def loads(body: bytes, *, max_bytes: int, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse ``body`` as strict UTF-8 JSON or raise a RequestError with a stable code."""
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"body is {len(body)} bytes; the limit is {max_bytes}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("body is not valid UTF-8", code=codes.INVALID_UNICODE) from None
    if text.startswith("\ufeff"):
        raise RequestError(
            "body starts with a byte-order mark; send plain UTF-8 JSON", code=codes.INVALID_JSON
        )
    try:
        value = _DECODER.decode(text)
    except RequestError:
        raise
    except RecursionError:  # the C decoder's own guard against a body of '[[[[...'
        raise RequestError(
            f"JSON nesting deeper than {max_depth} levels", code=codes.NESTING_TOO_DEEP
        ) from None
    except (json.JSONDecodeError, ValueError) as exc:
        raise RequestError(f"body is not valid JSON: {exc}", code=codes.INVALID_JSON) from None
    deep_possible = text.count("[") + text.count("{") > max_depth  # two C scans; most bodies stop here
    if deep_possible and _depth_exceeds(value, max_depth):
        raise RequestError(f"JSON nesting deeper than {max_depth} levels", code=codes.NESTING_TOO_DEEP)
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        _check_strings(value, 0, max_depth)
    return value


def dumps_canonical(value: Any, *, allow_nan: bool = False) -> bytes:
    """Canonical bytes: sorted keys, no whitespace, UTF-8 (RFC 8785-like for our value set).

    The definition is ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
    (``reference_canonical``): digests and the audit chain depend on these exact bytes. orjson
    writes the same bytes several times faster for plain JSON values once floats are given as
    Python writes them; anything else it would write differently it refuses, and ``json`` does it.
    A differential test holds the two to the same bytes.
    """
    try:
        return orjson.dumps(_python_floats(value), option=_CANONICAL_OPTIONS)
    except (TypeError, RecursionError, _NotPlain):  # orjson.JSONEncodeError is a TypeError
        return reference_canonical(value, allow_nan=allow_nan)


def reference_canonical(value: Any, *, allow_nan: bool = False) -> bytes:
    """The canonical form's definition (slow for large values; see ``dumps_canonical``)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=allow_nan
    ).encode()


# Subclasses of str/int/dict/list, dataclasses and datetimes are refused, not written orjson's way.
_CANONICAL_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
)
_PLAIN_LEAVES = frozenset({str, int, bool, type(None)})


class _NotPlain(Exception):
    """A value ``json`` and orjson might write differently: leave it to ``json``."""


def _python_floats(value: Any) -> Any:
    """``value`` with every float as the text ``json`` writes for it (orjson writes 1e-05 as
    0.00001); containers are copied only where a float is found. Raises ``_NotPlain`` for
    anything that is not a plain JSON value."""
    kind = type(value)
    if kind in _PLAIN_LEAVES:
        return value
    if kind is float:
        if value != value or value in (_INF, -_INF):
            raise _NotPlain  # json decides: NaN is refused, or written as NaN where allowed
        return orjson.Fragment(float.__repr__(value))
    if kind is dict:
        out: dict[Any, Any] | None = None
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            if type(item) in _PLAIN_LEAVES:  # most values: no call needed
                continue
            new = _python_floats(item)
            if new is not item:
                if out is None:
                    out = dict(value)
                out[key] = new
        return value if out is None else out
    if kind is list or kind is tuple:
        items: list[Any] | None = None
        for index, item in enumerate(value):
            if type(item) in _PLAIN_LEAVES:
                continue
            new = _python_floats(item)
            if new is not item:
                if items is None:
                    items = list(value)
                items[index] = new
        return value if items is None else items
    raise _NotPlain


_INF = float("inf")


def canonical_call(tool: str, canonical_arguments: bytes) -> bytes:
    """``dumps_canonical({"tool": tool, "arguments": arguments})`` from the arguments' canonical
    bytes, so they are encoded once (keys sorted: "arguments" comes before "tool")."""
    return b'{"arguments":' + canonical_arguments + b',"tool":' + dumps_canonical(tool) + b"}"


def dumps_fast(value: Any) -> bytes:
    """Compact JSON bytes for a value that came out of ``loads`` (so plain JSON types): orjson,
    with ``json`` for anything it refuses (an integer past 64 bits, say)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
