"""The strict parser on its own, with properties checked by Hypothesis."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper import strictjson
from gatekeeper.errors import GatekeeperError, PayloadTooLarge, RequestError

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False, max_value=1e15, min_value=-1e15)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_round_trips_every_ordinary_value(value: Any) -> None:
    assert strictjson.loads(json.dumps(value).encode(), max_bytes=10**6) == value


@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_raise_request_error(data: bytes) -> None:
    try:
        strictjson.loads(data, max_bytes=10**6)
    except GatekeeperError as exc:
        assert exc.status in (400, 413)


@given(json_values)
def test_canonical_form_is_stable(value: Any) -> None:
    once = strictjson.dumps_canonical(value)
    assert strictjson.dumps_canonical(json.loads(once)) == once


@given(st.text(min_size=1, max_size=40), st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_canonical_call_is_the_canonical_form_of_the_whole_call(tool: str, arguments: dict[str, Any]) -> None:
    """The digest and the forwarded body come from one encoding of the arguments: spliced, it must
    be byte for byte what encoding the whole call gives."""
    spliced = strictjson.canonical_call(tool, strictjson.dumps_canonical(arguments))
    assert spliced == strictjson.dumps_canonical({"tool": tool, "arguments": arguments})


@given(json_values)
def test_fast_dumps_reads_back_as_the_same_value(value: Any) -> None:
    assert strictjson.loads(strictjson.dumps_fast(value), max_bytes=10**6) == value


def test_fast_dumps_takes_what_orjson_refuses() -> None:
    assert strictjson.dumps_fast({"n": 2**70}) == b'{"n":1180591620717411303424}'


_any_text = st.text(
    st.characters(exclude_categories=("Cs",))
    | st.sampled_from('\x00\x1f\x7f\u2028\u2029"\\/\ud7ff\ue000\uffff'),
    max_size=12,
)
_canonical_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e-05, 1e-7, 1e16, 1e22, -0.0, 5e-324, 1.7976931348623157e308, 0.1, 100.0])
    | _any_text,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(_any_text, children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=600, deadline=None)
@given(_canonical_values)
def test_canonical_bytes_are_the_reference_bytes(value: Any) -> None:
    """Digests and the audit chain hash these bytes: the fast writer must never differ from the
    definition, for any value, floats and odd characters included."""
    assert strictjson.dumps_canonical(value) == strictjson.reference_canonical(value)
    assert strictjson.dumps_canonical(value, allow_nan=True) == strictjson.reference_canonical(
        value, allow_nan=True
    )


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    [
        {1: "int key"},
        {"nan": float("nan")},
        {"inf": float("-inf")},
        ["\ud800"],
        {"deep": _nested(300)},  # deeper than orjson goes
    ],
)
def test_what_the_fast_writer_refuses_is_written_as_json_writes_it(value: Any) -> None:
    try:
        expected: bytes | type[Exception] = strictjson.reference_canonical(value, allow_nan=True)
    except (ValueError, UnicodeEncodeError) as exc:
        expected = type(exc)
    if isinstance(expected, bytes):
        assert strictjson.dumps_canonical(value, allow_nan=True) == expected
    else:
        with pytest.raises(expected):
            strictjson.dumps_canonical(value, allow_nan=True)


def test_size_limit() -> None:
    with pytest.raises(PayloadTooLarge):
        strictjson.loads(b"[1,2,3]", max_bytes=3)


def test_valid_surrogate_pair_is_fine() -> None:
    assert strictjson.loads(b'"\\ud83d\\ude00"', max_bytes=100) == "\U0001f600"


def test_surrogate_in_key_is_refused() -> None:
    with pytest.raises(RequestError) as info:
        strictjson.loads(b'{"\\udfff": 1}', max_bytes=100)
    assert info.value.code == "invalid_unicode"
