"""``/mcp/{upstream}``: the gate in front of a Model Context Protocol server.

Streamable HTTP is passed through (sessions, SSE streams, GET and DELETE), except:
``tools/list`` answers are filtered to the tools the caller could ever use, and
``tools/call`` runs the same stages as ``/v1/invoke``. A refusal is returned as a
tool result with ``isError: true`` so the model reads why, with the decision in
``_meta``. Only protocol headers go upstream; the agent's token never does.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from mcp.shared.inbound import NAME_BEARING_METHODS, decode_header_value

from .. import strictjson
from ..config import Upstream
from ..errors import GatekeeperError, RequestError, SchemaError, UnknownTool, UpstreamError
from ..escalation import Pending
from ..models import Decision, Outcome
from ..pipeline import FAILURE_CODES, Exchange, need, record
from ..streams import read_body
from ..timefmt import iso8601
from ..tracing import current_request
from .budgets import refund_budgets, spend_budgets
from .invoke import decide, ensure_recordable, prefer_wait, read_json_body, recheck_after_hold
from .request_ids import request_id_of
from .responses import error_response, json_response
from .state import CLIENT_SESSION, CONFIG, ESCALATION, GATE, METRICS, SINKS, VERIFIER
from .written_code import inherit_written_code, record_written_code

log = structlog.get_logger("gatekeeper.mcp")

_FORWARD_REQUEST_HEADERS = (
    "Accept",
    "Content-Type",
    "Mcp-Session-Id",
    "MCP-Protocol-Version",
    "Mcp-Method",
    "Mcp-Name",
    "Last-Event-ID",
)
_FORWARD_RESPONSE_HEADERS = ("Content-Type", "Mcp-Session-Id", "MCP-Protocol-Version", "Cache-Control")
META_KEY = "gatekeeper/decision"


_TOO_LARGE = "the tool's answer is larger than the configured limit"


def _rpc_error_message(msg_id: Any, rpc_code: int, message: str, code: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": msg_id,
        "error": {"code": rpc_code, "message": message, "data": {"code": code}},
    }


def _rpc_error(status: int, msg_id: Any, rpc_code: int, message: str, code: str) -> web.Response:
    return json_response(status, _rpc_error_message(msg_id, rpc_code, message, code))


def _tool_result(request: web.Request, msg_id: Any, result: dict[str, Any]) -> dict[str, Any]:
    """A tools/call result we answer ourselves, in the shape the caller's protocol era expects."""
    version = request.headers.get("MCP-Protocol-Version", "")
    if version >= "2026":  # stateless era: results say they are complete
        result = {**result, "resultType": "complete"}
    return {"jsonrpc": "2.0", "id": msg_id, "result": result}


def _refusal_result(ex: Exchange, msg_id: Any) -> dict[str, Any]:
    decision = need(ex.decision, "decision")
    text = (
        f"Gatekeeper refused this call to {ex.tool}: {decision.reason}. "
        f"(code {decision.code}, rule {decision.rule or 'default deny'}, decision {ex.decision_id}). "
        "Do not retry it unchanged; choose another way to do the task or ask the user."
    )
    meta = {
        "decision_id": ex.decision_id,
        "outcome": "denied",
        "code": decision.code,
        "reason": decision.reason,
        "rule": decision.rule,
        "capability": decision.capability,
        "policy_version": decision.policy_version,
        "approval_id": decision.approval_id,
    }
    return _tool_result(
        ex.request,
        msg_id,
        {"content": [{"type": "text", "text": text}], "isError": True, "_meta": {META_KEY: meta}},
    )


def _pending_result(ex: Exchange, msg_id: Any, pending: Pending) -> dict[str, Any]:
    text = (
        f"This call to {ex.tool} is waiting for an operator's approval (approval {pending.approval_id}). "
        "Nothing has run. Retry exactly the same call later: once an operator approves it, it runs once."
    )
    meta = {
        "decision_id": ex.decision_id,
        "outcome": "pending",
        "approval_id": pending.approval_id,
        "expires_at": iso8601(pending.expires_at),
    }
    return _tool_result(
        ex.request,
        msg_id,
        {"content": [{"type": "text", "text": text}], "isError": True, "_meta": {META_KEY: meta}},
    )


def _sse_event(message: dict[str, Any]) -> bytes:
    return f"event: message\ndata: {json.dumps(message)}\n\n".encode()


class _Reply:
    """Where a tools/call answer goes: a plain JSON response, or an SSE stream already opened
    to carry progress notifications while the call was held."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.stream: web.StreamResponse | None = None

    async def open_stream(self) -> web.StreamResponse:
        if self.stream is None:
            self.stream = web.StreamResponse(
                status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
            )
            await self.stream.prepare(self.request)
        return self.stream

    async def send(self, message: dict[str, Any]) -> web.StreamResponse:
        if self.stream is None:
            return json_response(200, message)
        await self.stream.write(_sse_event(message))
        await self.stream.write_eof()
        return self.stream


async def handle_mcp(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    name = request.match_info["upstream"]
    upstream = config.upstreams.get(name)
    if upstream is None or upstream.mcp_url is None:
        return json_response(404, {"code": "unknown_upstream", "message": f"no MCP upstream named {name!r}"})
    try:
        principal = await request.app[VERIFIER].authenticate(request.headers, request.query)
    except GatekeeperError as exc:
        return error_response(exc)
    if request.method == "POST":
        return await _post(request, upstream, principal)
    if request.method in ("GET", "DELETE"):
        return await _relay(request, upstream, None, None)
    return json_response(405, {"code": "method_not_allowed", "message": "MCP uses POST, GET and DELETE"})


async def _post(request: web.Request, upstream: Upstream, principal: Any) -> web.StreamResponse:
    limits = request.app[CONFIG].limits
    try:
        message = await read_json_body(request, limits.max_body_bytes, limits.max_json_depth)
    except GatekeeperError as exc:
        return _rpc_error(
            exc.status, None, -32700 if exc.code == "invalid_json" else -32600, exc.message, exc.code
        )
    if isinstance(message, list):
        return _rpc_error(
            400,
            None,
            -32600,
            "JSON-RPC batches are not accepted; send one message per request",
            "batch_not_supported",
        )
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return _rpc_error(400, None, -32600, "not a JSON-RPC 2.0 message", "invalid_request")
    method = message.get("method")
    msg_id = message.get("id")
    mismatch = _header_mismatch(request, message)
    if mismatch:
        return _rpc_error(400, msg_id, -32600, mismatch, "header_mismatch")
    if method == "tools/call":
        if "id" not in message:  # a notification would run the tool with nobody to refuse to
            return _rpc_error(400, None, -32600, "tools/call must be a request with an id", "invalid_request")
        return await _tools_call(request, upstream, principal, message)
    filter_tools = method == "tools/list" and "id" in message
    return await _relay(
        request, upstream, json.dumps(message).encode(), principal if filter_tools else None, msg_id=msg_id
    )


def _header_mismatch(request: web.Request, message: dict[str, Any]) -> str | None:
    """The 2026 transport repeats the method and the name (tool, prompt or resource URI) in
    headers; both readings must agree, or the gate and the upstream could see different calls."""
    for header in ("Mcp-Method", "Mcp-Name"):
        if len(request.headers.getall(header, [])) > 1:
            return f"{header} sent more than once"
    method = message.get("method")
    method_header = request.headers.get("Mcp-Method")
    if method_header is not None and method_header != method:
        return "Mcp-Method header does not match the body's method"
    field = NAME_BEARING_METHODS.get(method) if isinstance(method, str) else None
    name_header = request.headers.get("Mcp-Name")
    if name_header is not None:
        params = message.get("params")
        body_value = params.get(field) if field is not None and isinstance(params, dict) else None
        if body_value is None or decode_header_value(name_header) != body_value:
            return f"Mcp-Name header does not match the body's params.{field or 'name'}"
    elif method == "tools/call" and method_header is not None:
        return "Mcp-Name header is required with Mcp-Method: tools/call"
    return None


async def _tools_call(
    request: web.Request, upstream: Upstream, principal: Any, message: dict[str, Any]
) -> web.StreamResponse:
    msg_id = message["id"]
    params = message.get("params")
    ex = Exchange(entry="mcp", request=request, request_id=request_id_of(request))
    ex.principal = principal
    reply = _Reply(request)
    try:
        if not isinstance(params, dict) or not isinstance(params.get("name"), str):
            raise RequestError("tools/call needs params.name", code="invalid_request")
        ex.tool = params["name"]
        ex.arguments = params.get("arguments", {})
        if not isinstance(ex.arguments, dict):
            raise SchemaError("arguments must be an object")
        gate = request.app[GATE]
        if gate.policy_set is None or ex.tool not in gate.policy_set.manifests:
            raise UnknownTool(f"no tool named {ex.tool!r} is configured")
        if gate.policy_set.manifests[ex.tool].upstream != upstream.name:
            raise UnknownTool(f"tool {ex.tool!r} is not served by {upstream.name!r}")
        await decide(ex)
        await inherit_written_code(ex)
        await spend_budgets(ex)
        decision = need(ex.decision, "decision")
        monitor = request.app[CONFIG].mode == "monitor"
        if decision.outcome is Outcome.ESCALATE and ex.call is not None and not monitor:
            held = await _hold(ex, params, reply)
            if isinstance(held, Pending):
                ex.approval_id = held.approval_id
                return await reply.send(_pending_result(ex, msg_id, held))
            decision = ex.decision = recheck_after_hold(ex, decision, held)
            ex.approval_id = held.approval_id
        if decision.outcome is not Outcome.ALLOW:
            if not monitor or decision.code in FAILURE_CODES:
                return await reply.send(_refusal_result(ex, msg_id))
            ex.enforced = False
        call = need(ex.call, "understood call")
        forwarded = {**message, "params": {**params, "arguments": call.arguments}}
        await record_written_code(ex)
        ensure_recordable(request.app)
        ex.forwarded = True  # the upstream answers from here on; a failure is reported as a tool error
        return await _relay(
            request,
            upstream,
            strictjson.dumps_fast(forwarded),
            None,
            msg_id=msg_id,
            into=reply.stream,
            answer_limit=request.app[CONFIG].limits.max_response_bytes,
        )
    except UnknownTool as exc:
        ex.error = exc
        return await reply.send(_rpc_error_message(msg_id, -32602, exc.message, exc.code))
    except SchemaError as exc:
        ex.error = exc
        text = f"Invalid arguments for {ex.tool}: {exc.message}"
        meta = {META_KEY: {"decision_id": ex.decision_id, "code": exc.code}}
        return await reply.send(
            _tool_result(
                request, msg_id, {"content": [{"type": "text", "text": text}], "isError": True, "_meta": meta}
            )
        )
    except GatekeeperError as exc:
        ex.error = exc
        return await reply.send(_rpc_error_message(msg_id, -32603, exc.message, exc.code))
    except Exception:  # a bug or a store driver's error while deciding: refuse, record it as an error
        log.exception("tools_call_failed", decision_id=ex.decision_id)
        ex.error = GatekeeperError("internal error; the call was refused")
        if reply.stream is None:
            return _rpc_error(500, msg_id, -32603, ex.error.message, ex.error.code)
        return await reply.send(_rpc_error_message(msg_id, -32603, ex.error.message, ex.error.code))
    finally:
        try:
            await refund_budgets(ex)
        finally:
            record(ex, request.app[METRICS], request.app[CONFIG].mode, request.app.get(SINKS))


async def _hold(ex: Exchange, params: dict[str, Any], reply: _Reply) -> Decision | Pending:
    """Hold an escalated call; with a progress token, keep the client informed over SSE."""
    call, decision = need(ex.call, "understood call"), need(ex.decision, "decision")
    meta = params.get("_meta")
    token = meta.get("progressToken") if isinstance(meta, dict) else None
    accepts_sse = "text/event-stream" in ex.request.headers.get("Accept", "")
    progress = None
    if token is not None and isinstance(token, str | int) and accepts_sse:

        async def progress(elapsed: float, total: float) -> None:
            stream = await reply.open_stream()
            note = {
                "jsonrpc": "2.0",
                "method": "notifications/progress",
                "params": {
                    "progressToken": token,
                    "progress": round(elapsed, 3),
                    "total": round(total, 3),
                    "message": "waiting for an operator to approve this call",
                },
            }
            await stream.write(_sse_event(note))

    held: Decision | Pending = await ex.request.app[ESCALATION].hold(
        call, decision, wait_seconds=prefer_wait(ex.request), progress=progress
    )
    return held


async def _relay(
    request: web.Request,
    upstream: Upstream,
    body: bytes | None,
    filter_for: Any,
    *,
    msg_id: Any = None,
    into: web.StreamResponse | None = None,
    answer_limit: int | None = None,
) -> web.StreamResponse:
    """Send the (possibly rewritten) request upstream and stream its answer back.

    ``into`` is an SSE stream already open to the client (a held call that sent progress
    notifications); the upstream's answer is then carried as events on it. ``answer_limit``
    bounds a tool's answer (``tools/call``): past it the client gets an error, never the rest.
    """
    mcp_url = need(upstream.mcp_url, "MCP upstream URL")
    headers = {**upstream.headers}
    for name in _FORWARD_REQUEST_HEADERS:
        value = request.headers.get(name)
        if value is not None:
            headers[name] = value
    ids = current_request.get()
    if ids is not None:
        headers.update(ids.upstream_headers())
    session = request.app[CLIENT_SESSION]
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=upstream.timeout_seconds)
    try:
        upstream_resp = await session.request(
            request.method,
            mcp_url,
            data=body,
            headers=headers,
            timeout=timeout,
            allow_redirects=False,
        )
    except aiohttp.ClientError as exc:
        err = UpstreamError(f"MCP upstream {upstream.name!r} could not be reached: {type(exc).__name__}")
        if into is not None:
            await into.write(_sse_event(_rpc_error_message(msg_id, -32603, err.message, err.code)))
            await into.write_eof()
            return into
        return _rpc_error(502, msg_id, -32603, err.message, err.code)
    async with upstream_resp:
        if into is not None:
            return await _relay_into(request, upstream_resp, into, msg_id)
        out_headers = {
            h: upstream_resp.headers[h] for h in _FORWARD_RESPONSE_HEADERS if h in upstream_resp.headers
        }
        ctype = upstream_resp.headers.get("Content-Type", "").lower()
        sse = ctype.startswith("text/event-stream")
        limit = request.app[CONFIG].limits.max_response_bytes
        if (filter_for is not None or answer_limit is not None) and not sse:
            # One JSON answer (or something else): read whole, bounded, then answered at once.
            raw = await read_body(upstream_resp.content, limit if answer_limit is None else answer_limit)
            if filter_for is not None:  # a tools/list we cannot read shows nothing, never everything
                data = _filter_tools_message(request, filter_for, raw)
            elif answer_limit is not None and len(raw) > answer_limit:
                return _rpc_error(502, msg_id, -32603, _TOO_LARGE, "upstream_response_too_large")
            else:
                data = raw
            return web.Response(status=upstream_resp.status, body=data, headers=out_headers)
        response = web.StreamResponse(status=upstream_resp.status, headers=out_headers)
        await response.prepare(request)
        if filter_for is not None:
            async for block in _sse_blocks(upstream_resp.content):
                await response.write(_filter_sse_block(request, filter_for, block))
        else:  # nothing to rewrite: relay the bytes as they arrive, not line by line
            relayed = 0
            async for chunk in upstream_resp.content.iter_any():
                relayed += len(chunk)
                if answer_limit is not None and relayed > answer_limit:
                    log.warning("mcp_answer_too_large", upstream=upstream.name, limit=answer_limit)
                    message = _rpc_error_message(msg_id, -32603, _TOO_LARGE, "upstream_response_too_large")
                    await response.write(b"\n\n" + _sse_event(message))  # ends any event cut short
                    break
                await response.write(chunk)
        await response.write_eof()
        return response


async def _relay_into(
    request: web.Request, upstream_resp: aiohttp.ClientResponse, into: web.StreamResponse, msg_id: Any
) -> web.StreamResponse:
    limit = request.app[CONFIG].limits.max_response_bytes
    if upstream_resp.headers.get("Content-Type", "").lower().startswith("text/event-stream"):
        relayed = 0
        async for block in _sse_blocks(upstream_resp.content):
            relayed += len(block)
            if relayed > limit:  # whole events only: the client gets an error instead of the rest
                message = _rpc_error_message(msg_id, -32603, _TOO_LARGE, "upstream_response_too_large")
                await into.write(_sse_event(message))
                break
            await into.write(block)
    else:
        raw = await read_body(upstream_resp.content, limit)
        if len(raw) > limit:  # never relay a cut-off message: the caller gets an error instead
            message = _rpc_error_message(msg_id, -32603, _TOO_LARGE, "upstream_response_too_large")
            await into.write(_sse_event(message))
        elif raw.strip():
            await into.write(b"event: message\ndata: " + raw.strip().replace(b"\n", b"") + b"\n\n")
    await into.write_eof()
    return into


async def _sse_blocks(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Yield whole SSE events (lines up to and including the blank line)."""
    pending: list[bytes] = []
    async for line in content:
        pending.append(line)
        if line in (b"\n", b"\r\n"):
            yield b"".join(pending)
            pending = []
    if pending:
        yield b"".join(pending)


def _filter_tools_message(request: web.Request, principal: Any, raw: bytes) -> bytes:
    try:
        message = json.loads(raw)
    except ValueError:  # cut off or not JSON: show nothing rather than everything
        message = {"jsonrpc": "2.0", "id": None, "result": {"tools": []}}
    return json.dumps(_filter_tools(request, principal, message)).encode()


def _filter_tools(request: web.Request, principal: Any, message: Any) -> Any:
    """Drop every tool the principal could never be allowed to call (unknown tools too)."""
    if isinstance(message, dict) and isinstance(message.get("result"), dict):
        tools = message["result"].get("tools")
        if isinstance(tools, list):
            gate = request.app[GATE]
            message["result"]["tools"] = [
                t
                for t in tools
                if isinstance(t, dict)
                and isinstance(t.get("name"), str)
                and gate.tool_visible(principal, t["name"])
            ]
    return message


def _filter_sse_block(request: web.Request, principal: Any, block: bytes) -> bytes:
    lines = block.decode("utf-8", "replace").splitlines()
    data_lines = [
        line[5:].lstrip(" ") if line.startswith("data:") else "" for line in lines if line.startswith("data:")
    ]
    if not data_lines:
        return block
    try:
        message = json.loads("\n".join(data_lines))
    except ValueError:  # a tools/list event we cannot read is dropped, not passed on unfiltered
        return b": dropped an unreadable event\n\n"
    filtered = json.dumps(_filter_tools(request, principal, message))
    kept = [line for line in lines if line and not line.startswith("data:")]
    return ("\n".join([*kept, f"data: {filtered}"]) + "\n\n").encode()
