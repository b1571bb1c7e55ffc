"""``POST /v1/invoke``: the JSON entry point, as a list of stages."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.streams import EofStream

from gatekeeper import codes

from .. import strictjson
from ..config import Upstream
from ..errors import PayloadTooLarge, RequestError, RequestTimeout
from ..pipeline import Exchange, Stage, need
from ..streams import read_body
from ..timefmt import iso8601
from ..upstream import ToolTransport
from .api_schema import CALL_REQUEST, check_object
from .request_ids import request_id_of
from .responses import error_response, json_response
from .stages import ENFORCE_STAGES, process, refused, settle_record
from .state import CONFIG, TOOL_CALLS, VERIFIER

_JSON_HEADERS = {"Content-Type": "application/json"}
# A client that sends its headers and then only part of its body holds a connection no longer.
BODY_READ_SECONDS = 30.0
_NO_QUERY: dict[str, str] = {}
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d{1,6})(?:$|[,;\s])", re.IGNORECASE)


async def read_json_body(request: web.Request, max_bytes: int, max_depth: int) -> Any:
    """One strict read: JSON content type, bounded size, strict parse."""
    ctype = request.headers.get("Content-Type", "")
    if request.headers.getall("Content-Type", []).__len__() > 1:
        raise RequestError("send exactly one Content-Type header", code=codes.AMBIGUOUS_CONTENT_TYPE)
    if ctype.split(";", 1)[0].strip().lower() != "application/json":
        raise RequestError(
            f"Content-Type must be application/json, got {ctype or 'nothing'!r}",
            code=codes.UNSUPPORTED_CONTENT_TYPE,
        )
    charset = request.charset
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        raise RequestError("JSON must be UTF-8", code=codes.UNSUPPORTED_CONTENT_TYPE)
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(f"body is {request.content_length} bytes; the limit is {max_bytes}")
    try:
        async with asyncio.timeout(BODY_READ_SECONDS):
            body = await read_body(request.content, max_bytes)
    except TimeoutError:
        raise RequestTimeout(
            f"the request body did not arrive within {BODY_READ_SECONDS:g} s", code=codes.BODY_TIMEOUT
        ) from None
    except (ConnectionError, aiohttp.ClientPayloadError, asyncio.IncompleteReadError, EofStream):
        raise RequestError(
            "the request body ended before its declared length", code=codes.INCOMPLETE_BODY
        ) from None
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"body is larger than the limit of {max_bytes} bytes")
    return strictjson.loads(body, max_bytes=max_bytes, max_depth=max_depth)


def prefer_wait(request: web.Request) -> float | None:
    """RFC 7240 ``Prefer: wait=N``; None when the caller did not say."""
    for value in request.headers.getall("Prefer", []):
        match = _PREFER_WAIT.search(value)
        if match:
            return float(match.group(1))
    return None


async def authenticate(ex: Exchange) -> None:
    request: web.Request = ex.request
    # No query string, nothing to check there: skips building the query mapping on every call.
    query = request.query if request.query_string else _NO_QUERY
    ex.principal = await request.app[VERIFIER].authenticate(request.headers, query)


async def parse_invoke(ex: Exchange) -> None:
    request: web.Request = ex.request
    limits = request.app[CONFIG].limits
    body = await read_json_body(request, limits.max_body_bytes, limits.max_json_depth)
    body = check_object(CALL_REQUEST, body)  # the schema /openapi.json publishes
    ex.tool, ex.arguments = body["tool"], body.get("arguments", {})
    ex.wait_seconds = prefer_wait(request)


class CallTool:
    """The invoke entry's transport: the call's canonical arguments to its tool (plain HTTP, or
    the sandboxed runner); the tool's JSON answer comes back as bytes."""

    def __init__(self, tools: ToolTransport, upstreams: Mapping[str, Upstream]) -> None:
        self.tools = tools
        self.upstreams = upstreams

    async def forward(self, ex: Exchange) -> bytes:
        call = need(ex.call, "understood call")
        # The canonical bytes the digest covers are the bytes the tool gets: encoded once.
        return await self.tools.call_tool(
            self.upstreams[call.upstream], call.tool, call.canonical_arguments, ex.decision_id, call
        )


# The whole flow of a JSON call, in order. Every MCP method runs the same stages after its parse.
INVOKE_STAGES: tuple[Stage, ...] = (authenticate, parse_invoke, *ENFORCE_STAGES)


async def render_invoke(ex: Exchange) -> web.StreamResponse:
    if ex.error is not None:
        extra = {"decision_id": ex.decision_id}
        if ex.decision is not None:
            extra["outcome"] = "error"
        return error_response(ex.error, **extra)
    decision = need(ex.decision, "decision")
    if ex.pending is not None:
        return json_response(
            202,
            {
                "outcome": "pending",
                "decision_id": ex.decision_id,
                "approval_id": ex.pending.approval_id,
                "expires_at": iso8601(ex.pending.expires_at),
                "reason": decision.reason,
            },
        )
    if refused(ex):
        return json_response(
            403,
            {
                "outcome": "denied",
                "decision_id": ex.decision_id,
                "code": decision.code,
                "reason": f"{ex.tool} refused: {decision.reason}",
                "rule": decision.rule,
                "capability": decision.capability,
                "policy_version": decision.policy_version,
                "approval_id": decision.approval_id,
            },
        )
    # Splice the tool's validated JSON in as-is: no second encoding on the hot path. The
    # decision id is hex, so it needs no escaping.
    body = b'{"outcome": "allowed", "decision_id": "%s", "result": %s}' % (
        ex.decision_id.encode(),
        ex.answer,
    )
    return web.Response(status=200, body=body, headers=_JSON_HEADERS)


async def handle_invoke(request: web.Request) -> web.StreamResponse:
    app = request.app
    ex = Exchange(
        entry="invoke", app=app, request=request, transport=app[TOOL_CALLS], request_id=request_id_of(request)
    )
    response = await process(INVOKE_STAGES, ex, render_invoke)
    unrecorded = await settle_record(ex)
    if unrecorded is not None:
        return error_response(unrecorded, decision_id=ex.decision_id)
    return response
