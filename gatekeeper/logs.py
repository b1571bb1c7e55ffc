"""structlog set-up: JSON lines on stdout, with secrets masked before rendering.

Every line is JSON, whoever writes it: the standard library's loggers (aiohttp, asyncio, the
MCP SDK) go through the same renderer, on stderr. And no line carries a credential: besides
masking secret-named keys, every string in a line (exception text and tracebacks included) has
bearer tokens and JWTs cut out, since a library's error message may quote a request header.
"""

from __future__ import annotations

import datetime
import functools
import json
import logging
import re
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from .tracing import current_request

_SECRET_KEYS = frozenset({"token", "authorization", "password", "secret", "api_key", "headers", "jwt", "key"})
_UTC = datetime.UTC


# A JWT (three base64url parts, the first a JSON object: "eyJ"), a Bearer credential, or a Basic
# one (base64, so "basic checks" in a sentence is left alone).
_CREDENTIAL = re.compile(
    r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]+\.?[A-Za-z0-9_-]*"
    r"|(?i:\bbearer(?:\s|\\[tnr]|%20)+)[^\s\"',;\\]+"
    r"|(?i:\bbasic(?:\s|\\[tnr]|%20)+)[A-Za-z0-9+/]{8,}={0,2}"
)
_MASK = "[masked]"


def _may_hold_credential(text: str) -> bool:
    """False when ``text`` cannot hold what ``_CREDENTIAL`` matches (the common case: a few
    substring scans, no regex). ``ScrubbingRenderer`` has the same test inline."""
    low = text.lower()  # any case: "bEaRer x", "BASIC x" are credentials to _CREDENTIAL too
    return "eyj" in low or "bearer" in low or "basic" in low


def scrub_credential_text(text: str) -> str:
    """``text`` with every bearer token and JWT in it replaced by ``[masked]``."""
    if not _may_hold_credential(text):
        return text
    return _CREDENTIAL.sub(_scrubbed, text)


def _scrubbed(match: re.Match[str]) -> str:
    found = match.group(0)
    if found.startswith("eyJ"):
        return _MASK
    scheme = re.match(r"(?i)(bearer|basic)", found)
    return f"{scheme.group(1) if scheme else ''} {_MASK}"


def scrub_credentials(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Cut tokens out of every string of a line, however they got there (an exception's message,
    a traceback, a library's text): a log is never where a credential is found."""
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = scrub_credential_text(value)
        elif isinstance(value, dict | list | tuple):
            event[key] = _scrub_nested(value, 0)
    return event


def _scrub_nested(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return scrub_credential_text(value)
    if depth > 20:
        return value
    if isinstance(value, dict):
        return {k: _scrub_nested(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_nested(v, depth + 1) for v in value]
    return value


def add_request_id(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The id of the request being handled (``tracing.current_request``) on every line written
    while it is: read from its context variable, nothing bound or unbound per request."""
    ids = current_request.get()
    if ids is not None:
        event.setdefault("request_id", ids.request_id)
    return event


def mask_secrets(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Never let a token or an upstream credential reach a log line, whoever logged it."""
    for key in _secret_keys(tuple(event)):
        event[key] = "[masked]"
    return event


# A line's keys come from the code: a few dozen shapes (the decision line's every call), so the
# secret ones are looked up once per shape rather than key by key on every line.
@functools.lru_cache(maxsize=4096)
def _secret_keys(keys: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(k for k in keys if isinstance(k, str) and _is_secret_key(k))


@functools.lru_cache(maxsize=4096)
def _is_secret_key(key: str) -> bool:
    return key.lower() in _SECRET_KEYS


class ScrubbingRenderer:
    """``scrub_credentials`` then the JSON renderer, with the same line as the result, for less.

    The line is rendered first. Every string ``scrub_credentials`` would edit appears in the
    rendered text with its letters as they are (rendering escapes only quotes, backslashes and
    control and line-break characters, none of them in ``_may_hold_credential``'s markers), so a
    rendered line without a marker has no string a scrub would change, and is the line. Only a
    line with one (a JWT, "Bearer", "basic": rare) is scrubbed field by field and rendered again.
    A decision line has about twenty strings: one scan of the line replaces twenty."""

    def __init__(self, renderer: structlog.processors.JSONRenderer) -> None:
        self.renderer = renderer

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> str:
        rendered = self.renderer(logger, method, event)  # _render and _may_hold_credential, inline:
        if not isinstance(rendered, str):  # every line goes through here
            rendered = rendered.decode()
        low = rendered.lower()
        if "eyj" not in low and "bearer" not in low and "basic" not in low:
            return rendered
        return self._render(logger, method, scrub_credentials(logger, method, event))

    def _render(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> str:
        rendered = self.renderer(logger, method, event)
        return rendered if isinstance(rendered, str) else rendered.decode()


def _dumps(value: Any, **kw: Any) -> str:
    """orjson (a decision line renders ~6x faster); anything it cannot encode, such as an
    integer past 64 bits, goes through ``json`` instead: a log line must never raise."""
    default = kw.get("default")
    try:
        text = orjson.dumps(value, default=default, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, RecursionError):  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, default=default or repr)
    if not text.isascii():  # escape what some readers take for line breaks: one record, one line
        text = text.translate(_LINE_BREAKS)
    return text


# Inside JSON strings only (orjson escapes every other control character), so escaping is safe.
_LINE_BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})


@dataclass(frozen=True, slots=True)
class _Lines:
    """What ``configure_logging`` set up, for ``info_line``: the processor list (to notice a
    reconfiguration), the renderer, the printer and the level."""

    processors: list[Any]
    renderer: ScrubbingRenderer
    printer: structlog.PrintLogger
    level: int


_lines: _Lines | None = None


def configure_logging(level: str = "info", stream: Any = None, error_stream: Any = None) -> None:
    """structlog's lines on ``stream`` (stdout), the standard library's on ``error_stream``
    (stderr, or ``stream`` when only that is given), all JSON, all masked and scrubbed."""
    global _lines
    numeric = getattr(logging, level.upper(), logging.INFO)
    renderer = ScrubbingRenderer(structlog.processors.JSONRenderer(serializer=_dumps))
    _configure_stdlib(numeric, renderer, error_stream or stream or sys.stderr)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_request_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        mask_secrets,
        structlog.processors.format_exc_info,
        renderer,  # scrub_credentials, then JSON
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=True,  # binding the processor chain once per logger, not per line
    )
    _lines = _Lines(processors, renderer, structlog.PrintLogger(stream or sys.stdout), numeric)


class _JsonLines(logging.StreamHandler[Any]):
    """Ours, so a second ``configure_logging`` replaces it rather than adding another."""


def _configure_stdlib(level: int, renderer: ScrubbingRenderer, stream: Any) -> None:
    """The root logger writes JSON through structlog's chain; tracebacks become a field."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_logger_name,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            mask_secrets,
            structlog.processors.format_exc_info,
            renderer,  # scrub_credentials, then JSON
        ],
    )
    handler = _JsonLines(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _JsonLines)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # A library's warning is a JSON line too (logger py.warnings), not raw stderr. Off first, so the
    # hook is set again even if something restored warnings.showwarning since the last call.
    logging.captureWarnings(False)
    logging.captureWarnings(True)
    for noisy in ("aiohttp.access", "casbin", "uvicorn", "uvicorn.error", "uvicorn.access", "mcp", "httpx2"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def info_line(event: str, fields: dict[str, Any]) -> bool:
    """Write one info line exactly as the configured pipeline would (same keys, masking and
    renderer) without going through its generic machinery: the decision line is written once
    per call, and the general path costs about twice as much.

    False when structlog is not configured by ``configure_logging`` (tests capture logs, say):
    the caller then logs through structlog as usual. ``fields`` is not modified.
    """
    lines = _lines
    if lines is None or structlog.get_config()["processors"] is not lines.processors:
        return False
    if lines.level > logging.INFO:
        return True  # filtered out, as the bound logger would
    event_dict: dict[str, Any] = {**fields, "event": event}
    structlog.contextvars.merge_contextvars(None, "info", event_dict)
    add_request_id(None, "info", event_dict)
    event_dict["level"] = "info"
    event_dict["timestamp"] = datetime.datetime.now(tz=_UTC).isoformat().replace("+00:00", "Z")
    mask_secrets(None, "info", event_dict)
    lines.printer.msg(lines.renderer(None, "info", event_dict))
    return True
