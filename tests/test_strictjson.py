"""The strict parser on its own, with properties checked by Hypothesis."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
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


def test_size_limit() -> None:
    with pytest.raises(PayloadTooLarge):
        strictjson.loads(b"[1,2,3]", max_bytes=3)


def test_valid_surrogate_pair_is_fine() -> None:
    assert strictjson.loads(b'"\\ud83d\\ude00"', max_bytes=100) == "\U0001f600"


def test_surrogate_in_key_is_refused() -> None:
    with pytest.raises(RequestError) as info:
        strictjson.loads(b'{"\\udfff": 1}', max_bytes=100)
    assert info.value.code == "invalid_unicode"
