"""One id that links an agent's call, its decision line, its audit record and the upstream request.

An incoming ``X-Request-Id`` is kept when it is well formed (1-128 of ``A-Z a-z 0-9 . _ : -``); else
the trace id of a valid W3C ``traceparent``; else one is minted. The id is echoed in the answer's
``X-Request-Id``, bound to every log line written while the request is handled, written in the
decision line and in the audit record's ``extra.request_id``, and sent upstream as
``X-Request-Id`` with a ``traceparent`` that continues the caller's trace (same trace id, the
gate's own span id) or starts one.
"""

from __future__ import annotations

import os
import random
import re
from contextvars import ContextVar
from dataclasses import dataclass

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_ids = random.Random(os.urandom(32))  # noqa: S311 - ids must be unique, not secret


@dataclass(frozen=True, slots=True)
class RequestIds:
    request_id: str
    trace_id: str
    sampled: str = "01"

    def upstream_headers(self) -> dict[str, str]:
        """Headers for the request the gate sends upstream on this call's behalf."""
        span = f"{_ids.getrandbits(64):016x}"
        return {"X-Request-Id": self.request_id, "traceparent": f"00-{self.trace_id}-{span}-{self.sampled}"}


current_request: ContextVar[RequestIds | None] = ContextVar("gatekeeper_request_ids", default=None)


def _trace(value: str | None) -> tuple[str, str] | None:
    """(trace id, flags) of a valid ``traceparent`` (version 00 layout; ff is invalid)."""
    if value is None:
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace, span, flags = match.groups()
    if version == "ff" or trace == _ZERO_TRACE or span == _ZERO_SPAN:
        return None
    return trace, flags


def ids_from_headers(request_id: str | None, traceparent: str | None) -> RequestIds:
    trace = _trace(traceparent) if traceparent is not None else None
    trace_id, flags = trace if trace is not None else (f"{_ids.getrandbits(128):032x}", "01")
    if request_id is not None and _REQUEST_ID.fullmatch(request_id):
        return RequestIds(request_id, trace_id, flags)
    return RequestIds(trace_id, trace_id, flags)
