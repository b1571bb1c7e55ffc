"""The production logging path (``configure_logging``): JSON lines, masking, and the decision
line's fast writer, which must write what the structlog pipeline would."""

from __future__ import annotations

import copy
import functools
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from gatekeeper.logs import configure_logging, info_line
from gatekeeper.tracing import current_request, ids_from_headers


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging("info", out)
    yield out
    structlog.reset_defaults()


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    text = out.getvalue()
    assert "\u2028" not in text and "\x85" not in text  # one record, one line, for every reader
    return [json.loads(line) for line in text.splitlines()]


FIELDS = {
    "decision_id": "d1",
    "tool": "evil\u2028tool\x85",
    "roles": ["agent"],
    "outcome": "allowed",
    "token": "eyJ-secret",
    "Authorization": "Bearer x",
    "latency_ms": 0.5,
}


def test_the_fast_decision_line_is_the_line_structlog_writes(stream: io.StringIO) -> None:
    assert info_line("decision", FIELDS)
    structlog.get_logger("gatekeeper.decision").info("decision", **FIELDS)
    fast, slow = _lines(stream)
    assert fast.pop("timestamp") and slow.pop("timestamp")
    assert fast == slow
    assert fast["token"] == fast["Authorization"] == "[masked]"
    assert fast["tool"] == "evil\u2028tool\x85" and fast["level"] == "info" and fast["event"] == "decision"
    assert FIELDS["token"] == "eyJ-secret"  # the caller's dict is not changed


def test_contextvars_are_merged_and_masked(stream: io.StringIO) -> None:
    structlog.contextvars.bind_contextvars(request_id="r1", api_key="k")
    try:
        assert info_line("decision", {"decision_id": "d2"})
    finally:
        structlog.contextvars.clear_contextvars()
    (line,) = _lines(stream)
    assert line["request_id"] == "r1" and line["api_key"] == "[masked]"


def test_lines_written_while_a_request_is_handled_carry_its_id(stream: io.StringIO) -> None:
    """The request id comes from the request's context variable, on the fast line and on every
    other line alike; a line that names its own request_id keeps it."""
    reset = current_request.set(ids_from_headers("req-7", None))
    try:
        structlog.get_logger("x").warning("something", n=1)
        assert info_line("decision", {"decision_id": "d3"})
        assert info_line("decision", {"decision_id": "d4", "request_id": "its-own"})
    finally:
        current_request.reset(reset)
    structlog.get_logger("x").info("after")
    other, fast, own, after = _lines(stream)
    assert other["request_id"] == fast["request_id"] == "req-7" and own["request_id"] == "its-own"
    assert "request_id" not in after


def test_values_orjson_cannot_write_still_make_a_line(stream: io.StringIO) -> None:
    structlog.get_logger("x").info("odd", n=2**70, keys={1: "int key"}, obj=object())
    (line,) = _lines(stream)
    assert line["n"] == 2**70 and line["keys"] == {"1": "int key"}
    assert line["obj"].startswith("<object object")  # structlog's fallback: the repr


def test_below_the_level_nothing_is_written() -> None:
    out = io.StringIO()
    configure_logging("warning", out)
    try:
        assert info_line("decision", {"decision_id": "d3"})  # handled: filtered, as structlog would
        structlog.get_logger("x").info("quiet")
    finally:
        structlog.reset_defaults()
    assert out.getvalue() == ""


def test_when_structlog_is_configured_elsewhere_the_fast_writer_steps_aside(stream: io.StringIO) -> None:
    structlog.configure(processors=[structlog.testing.LogCapture()])
    assert not info_line("decision", {"decision_id": "d4"})
    assert stream.getvalue() == ""


def test_tokens_are_cut_out_of_every_string_tracebacks_included(stream: io.StringIO) -> None:
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJl"
    try:
        raise ValueError(f"Invalid header: b'Authorization: Bearer {jwt}\\r\\n  folded'")
    except ValueError:
        structlog.get_logger("x").exception(
            "failed", note=f"Authorization: Basic dXNlcjpwYXNzd29yZA==; {jwt}"
        )
    try:
        raise RuntimeError("token Bearer opaque-token-123 in a library's message")
    except RuntimeError:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s", "127.0.0.1")
    text = stream.getvalue()
    lines = _lines(stream)  # every line JSON, the standard library's too
    assert jwt not in text and "eyJzdWIi" not in text and "opaque-token-123" not in text
    assert "dXNlcjpwYXNzd29yZA" not in text
    assert "Bearer [masked]" in lines[0]["exception"] and "Basic [masked]" in lines[0]["note"]
    assert lines[1]["logger"] == "aiohttp.server" and "Bearer [masked]" in lines[1]["exception"]
    structlog.get_logger("x").info("prose", reason="basic checks passed")
    assert _lines(stream)[-1]["reason"] == "basic checks passed"


def test_a_library_warning_is_a_json_line_not_raw_stderr() -> None:
    """The SDK's deprecation warnings (and any library's) go through logging as JSON lines."""
    import warnings

    out, err = io.StringIO(), io.StringIO()
    try:
        with warnings.catch_warnings():  # pytest records warnings itself: route them inside this block
            configure_logging("info", out, err)
            warnings.simplefilter("always")
            warnings.warn("ping is removed", DeprecationWarning, stacklevel=1)
        lines = [json.loads(line) for line in err.getvalue().splitlines()]
        assert any(
            "ping is removed" in line["event"] and line["logger"] == "py.warnings" for line in lines
        ), lines
    finally:
        logging.captureWarnings(False)
        configure_logging("info")


JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJl"
LINES: list[dict[str, Any]] = [
    {"event": "plain", "tool": "file.read", "roles": ["agent"], "n": 3, "ok": True, "none": None},
    {"event": "jwt in a list", "args": ["x", (JWT, {"deep": f"id {JWT}"})]},
    {"event": "control characters around it", "error": "line one\nBearer tok-123\tand\u2028more"},
    {"event": "escaped separators", "text": "Authorization: Bearer\\tnot-a-space tail", "q": 'say "basic"'},
    {"event": "basic", "note": "Basic dXNlcjpwYXNzd29yZA== sent", "prose": "basic checks passed"},
    {"event": "a marker only in a key", "fields": {"Bearer x": "plain value"}, "other": "quiet"},
    {"event": "any case", "a": "Authorization: bEaRer tok-123", "b": "BASIC dXNlcjpwYXNzd29yZA=="},
    {"event": "unicode", "who": "Zoë \u2029 \x85", "big": 2**70, "obj": object()},
    {"event": "deep", "v": functools.reduce(lambda inner, _: [inner], range(22), ["Bearer deep-1"])},
]


@pytest.mark.parametrize("fields", LINES, ids=[str(line["event"]) for line in LINES])
def test_the_scrubbing_renderer_writes_what_scrubbing_every_field_then_rendering_writes(
    fields: dict[str, Any],
) -> None:
    """The renderer scans the rendered line for a credential's markers instead of every field:
    the line must be exactly the one scrubbing each field first would give, whatever it holds."""
    from gatekeeper.logs import ScrubbingRenderer, _dumps, scrub_credentials

    plain = structlog.processors.JSONRenderer(serializer=_dumps)
    expected = plain(None, "info", scrub_credentials(None, "info", copy.deepcopy(fields)))
    got = ScrubbingRenderer(plain)(None, "info", copy.deepcopy(fields))
    assert got == expected
    assert JWT not in got and "tok-123" not in got and "dXNlcjpw" not in got
    if fields["event"] == "deep":  # past 20 levels values are left as they are, both ways
        assert "Bearer deep-1" in got
    if fields["event"] == "plain":  # nothing to scrub: the line is the plain rendering
        assert got == plain(None, "info", dict(fields))
