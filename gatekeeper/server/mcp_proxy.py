"""``/mcp/{upstream}``: the gate in front of a Model Context Protocol server.

An entry point like ``/v1/invoke``: its parse stage reads one JSON-RPC message, the same
enforcement stages decide it (``stages.ENFORCE_STAGES``), ``McpForward`` carries it, and the
renderer below answers in JSON-RPC. Every method is decided and recorded: ``tools/call`` as the
tool it names, every other method as ``mcp.method:NAME`` with what its parameters name
(``mcp_methods``); only the protocol's own plumbing (handshake, ping, cancellation, answers to
the server's requests) passes undecided. ``tools/list``, ``resources/list`` and ``prompts/list``
show only what the caller could use. A refused ``tools/call`` is a tool result with
``isError: true`` so the model reads why; any other refused method is a JSON-RPC error. The
decision is in ``_meta`` / ``error.data`` either way.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from mcp.shared.inbound import NAME_BEARING_METHODS, decode_header_value

from gatekeeper import codes

from .. import strictjson
from ..config import Upstream
from ..errors import GatekeeperError, RequestError, SchemaError, UnknownTool, UpstreamError
from ..mcp_methods import FILTERED_LISTS, PROTOCOL_METHODS, method_arguments, method_tool
from ..mcp_sessions import SessionOwners, session_key
from ..models import Principal
from ..pipeline import Exchange, Stage, need
from ..timefmt import iso8601
from .invoke import prefer_wait, read_json_body
from .mcp_events import EventIds
from .mcp_lists import CONTENT_FILTERED, answer_filter, content_filter, list_filter
from .mcp_relay import (
    ClientGone,
    McpForward,
    McpRequest,
    OnAnswer,
    Rewrite,
    relay,
    rpc_error_message,
    sse_event,
    tool_result,
)
from .request_ids import current_request_id
from .responses import error_response, json_response
from .stages import ENFORCE_STAGES, process, refused, settle_record
from .state import CONFIG, GATE, MCP_EVENT_KEY, MCP_SESSIONS, TOOL_PINS, VERIFIER

log = structlog.get_logger("gatekeeper.mcp")

META_KEY = "gatekeeper/decision"
RPC_INVALID_PARAMS = -32602
RPC_INTERNAL = -32603
RPC_REFUSED = -32001  # a method the gate refused (or holds): the decision is in error.data


def _rpc_error(status: int, msg_id: Any, rpc_code: int, message: str, code: str) -> web.Response:
    return json_response(status, rpc_error_message(msg_id, rpc_code, message, code))


_NO_QUERY: dict[str, str] = {}


async def handle_mcp(request: web.Request) -> web.StreamResponse:
    app = request.app  # a property of a property: read once per request
    config = app[CONFIG]
    name = request.match_info["upstream"]
    upstream = config.upstreams.get(name)
    if upstream is None or upstream.mcp_url is None:
        return json_response(
            404, {"code": codes.UNKNOWN_UPSTREAM, "message": f"no MCP upstream named {name!r}"}
        )
    try:
        # No query string, nothing to check there: the query mapping is not built on every call.
        query = request.query if request.query_string else _NO_QUERY
        principal = await app[VERIFIER].authenticate(request.headers, query)
    except GatekeeperError as exc:
        return error_response(exc)
    if request.method not in ("POST", "GET", "DELETE"):
        return json_response(
            405, {"code": codes.METHOD_NOT_ALLOWED, "message": "MCP uses POST, GET and DELETE"}
        )
    refused = await _foreign_session(request, app[MCP_SESSIONS], upstream, principal)
    if refused is not None:
        return refused
    event_ids = EventIds(app[MCP_EVENT_KEY], upstream.name, principal)
    refused = _foreign_event_id(request, event_ids)
    if refused is not None:
        return refused
    if request.method == "POST":
        return await _post(request, app, upstream, principal, event_ids)
    # A GET stream carries the server's own messages, and replays (Last-Event-ID) of answers
    # first sent on a POST: those are filtered here as they were there.
    rewrite = answer_filter(app[GATE], principal, upstream.name, app.get(TOOL_PINS))
    response = await _pass_through(
        request,
        upstream,
        None,
        rewrite if request.method == "GET" else None,
        principal=principal,
        event_ids=event_ids,
    )
    session_id = request.headers.get("Mcp-Session-Id")
    if request.method == "DELETE" and session_id is not None and response.status < 300:
        await app[MCP_SESSIONS].forget_session(session_key(upstream.name, session_id))
    return response


async def _foreign_session(
    request: web.Request, sessions: SessionOwners, upstream: Upstream, principal: Principal
) -> web.Response | None:
    """A session belongs to the principal that opened it: to anyone else (and for an id this
    gate never handed out) it does not exist, the spec's 404, whatever the request."""
    ids = request.headers.getall("Mcp-Session-Id", [])
    if not ids:
        return None
    if len(ids) > 1:
        return _rpc_error(400, None, -32600, "Mcp-Session-Id sent more than once", codes.HEADER_MISMATCH)
    key = session_key(upstream.name, ids[0])
    owner = sessions.known_owner(key)  # remembered (every request of a session but its first)
    if owner is None:
        owner = await sessions.session_owner(key)
    if owner == (principal.issuer, principal.subject):
        return None
    log.warning(
        "mcp_session_refused",
        upstream=upstream.name,
        principal=principal.subject,
        reason="unknown session" if owner is None else "another principal's session",
    )
    return _rpc_error(404, None, -32001, "session not found; start a new one", codes.SESSION_NOT_FOUND)


def _foreign_event_id(request: web.Request, event_ids: EventIds) -> web.Response | None:
    """A stream is resumed only from an event id relayed to this caller, in this session: the
    upstream would replay any stream the id names, another principal's included."""
    resume = request.headers.getall("Last-Event-ID", [])
    if not resume:
        return None
    if len(resume) == 1 and event_ids.untag(request.headers.get("Mcp-Session-Id"), resume[0]) is not None:
        return None
    log.warning("mcp_event_id_refused", upstream=event_ids.upstream, principal=event_ids.subject)
    return _rpc_error(
        400,
        None,
        -32600,
        "Last-Event-ID names no event of this session; send the request again",
        codes.UNKNOWN_EVENT_ID,
    )


def _binder(request: web.Request, upstream: Upstream, principal: Principal) -> OnAnswer:
    """Binds a session the upstream opens to the principal that asked, before it is answered."""
    sent = request.headers.get("Mcp-Session-Id")

    def bind(answer: aiohttp.ClientResponse) -> Awaitable[None] | None:
        session_id = answer.headers.get("Mcp-Session-Id")
        if session_id is None or session_id == sent:
            return None  # no new session (every answer within one): nothing to bind, nothing to await
        key = session_key(upstream.name, session_id)
        return request.app[MCP_SESSIONS].bind_session(
            key, upstream.name, principal.issuer, principal.subject, now=time.time()
        )

    return bind


async def _post(
    request: web.Request, app: web.Application, upstream: Upstream, principal: Principal, event_ids: EventIds
) -> web.StreamResponse:
    limits = app[CONFIG].limits
    try:
        message = await read_json_body(request, limits.max_body_bytes, limits.max_json_depth)
    except GatekeeperError as exc:
        rpc_code = -32700 if exc.code == codes.INVALID_JSON else -32600
        return _rpc_error(exc.status, None, rpc_code, exc.message, exc.code)
    if isinstance(message, list):
        return _rpc_error(
            400,
            None,
            -32600,
            "JSON-RPC batches are not accepted; send one message per request",
            codes.BATCH_NOT_SUPPORTED,
        )
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return _rpc_error(400, None, -32600, "not a JSON-RPC 2.0 message", codes.INVALID_REQUEST)
    method = message.get("method")
    msg_id = message.get("id")
    mismatch = _header_mismatch(request, message)
    if mismatch:
        return _rpc_error(400, msg_id, -32600, mismatch, codes.HEADER_MISMATCH)
    if method is None and not _is_response(message):
        return _rpc_error(
            400, msg_id, -32600, "neither a request, a notification nor a response", codes.INVALID_REQUEST
        )
    if method is None or method in PROTOCOL_METHODS:  # answers to the server's requests, plumbing
        return await _pass_through(request, upstream, message, principal=principal, event_ids=event_ids)
    if not isinstance(method, str):
        return _rpc_error(400, msg_id, -32600, "method must be a string", codes.INVALID_REQUEST)
    if method == "tools/list":  # nothing to decide: what it shows is filtered by the policy
        rewrite = list_filter(app[GATE], principal, upstream.name, method, app.get(TOOL_PINS))
        return await _pass_through(
            request, upstream, message, rewrite, principal=principal, event_ids=event_ids
        )
    if "id" not in message:  # a notification would act with nobody to refuse to
        return _rpc_error(400, None, -32600, f"{method} must be a request with an id", codes.INVALID_REQUEST)
    mcp = McpRequest(request, upstream, message, _binder(request, upstream, principal), event_ids)
    rewrite = None
    if method in FILTERED_LISTS:
        rewrite = list_filter(app[GATE], principal, upstream.name, method)
    elif method in CONTENT_FILTERED:
        rewrite = content_filter(app[GATE], principal, upstream.name, method, message.get("params"))
    ex = Exchange(
        entry="mcp",
        app=app,
        request=mcp,
        transport=McpForward(mcp, rewrite),
        upstream=upstream.name,
        principal=principal,
        request_id=current_request_id(),
    )
    response = await process(MCP_STAGES, ex, render_mcp)
    if response.prepared:
        return response  # an event stream already carried the answer: nothing left to hold
    unrecorded = await settle_record(ex)
    if unrecorded is not None:
        return _rpc_error(503, mcp.msg_id, RPC_INTERNAL, unrecorded.message, unrecorded.code)
    return response


def _is_response(message: dict[str, Any]) -> bool:
    """A client's answer to a server's request: an id and exactly one of result and error."""
    return "id" in message and set(message) - {"jsonrpc", "id"} in ({"result"}, {"error"})


async def _pass_through(
    request: web.Request,
    upstream: Upstream,
    message: dict[str, Any] | None,
    rewrite: Rewrite | None = None,
    *,
    principal: Principal,
    event_ids: EventIds,
) -> web.StreamResponse:
    """Relay what needs no decision (plumbing, a stream, a list filtered on its way back)."""
    msg_id = message.get("id") if message is not None else None
    body = None if message is None else strictjson.dumps_fast(message)
    bind = _binder(request, upstream, principal)
    try:
        return await relay(
            request, upstream, body, msg_id=msg_id, rewrite=rewrite, on_answer=bind, event_ids=event_ids
        )
    except UpstreamError as exc:
        return _rpc_error(exc.status, msg_id, RPC_INTERNAL, exc.message, exc.code)
    except ClientGone as gone:
        return gone.answer()


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


# --- the parse stage ---------------------------------------------------------------------------


def parse_mcp(ex: Exchange) -> None:
    """What the message asks for: the tool ``tools/call`` names, or the method itself."""
    mcp: McpRequest = ex.request
    params = mcp.message.get("params")
    if mcp.method == "tools/call":
        if not isinstance(params, dict) or not isinstance(params.get("name"), str):
            raise RequestError("tools/call needs params.name", code=codes.INVALID_REQUEST)
        ex.tool = params["name"]
        ex.arguments = params.get("arguments", {})
        if not isinstance(ex.arguments, dict):
            raise SchemaError("arguments must be an object")
        gate = ex.app[GATE]
        if gate.policy_set is None or ex.tool not in gate.policy_set.manifests:
            raise UnknownTool(f"no tool named {ex.tool!r} is configured")
        if gate.policy_set.manifests[ex.tool].upstream != mcp.upstream.name:
            raise UnknownTool(f"tool {ex.tool!r} is not served by {mcp.upstream.name!r}")
    else:
        if params is not None and not isinstance(params, dict):
            raise SchemaError(f"{mcp.method} params must be an object")
        ex.tool = method_tool(mcp.method)
        ex.arguments = method_arguments(mcp.upstream.name, params)
    ex.wait_seconds = prefer_wait(mcp.http)
    ex.progress = _progress(mcp, params)


def _progress(mcp: McpRequest, params: Any) -> Any:
    """With a progress token and an SSE-capable client, a held call tells it it is waiting."""
    meta = params.get("_meta") if isinstance(params, dict) else None
    token = meta.get("progressToken") if isinstance(meta, dict) else None
    if token is None or not isinstance(token, str | int):
        return None
    if "text/event-stream" not in mcp.http.headers.get("Accept", ""):
        return None

    async def progress(elapsed: float, total: float) -> None:
        if gone:
            return
        stream = await mcp.reply.open_stream()
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
        try:
            await stream.write(sse_event(note))
        except ConnectionResetError:  # the client left; the call stays held (and recorded) all the same
            gone.append(True)
            log.info("mcp_client_gone", while_held=True)

    gone: list[bool] = []
    return progress


MCP_STAGES: tuple[Stage, ...] = (parse_mcp, *ENFORCE_STAGES)


# --- the renderer ------------------------------------------------------------------------------


async def render_mcp(ex: Exchange) -> web.StreamResponse:
    mcp: McpRequest = ex.request
    try:
        return await _render(ex, mcp)
    except ClientGone as gone:
        ex.delivery = "client_gone"
        log.info("mcp_client_gone", decision_id=ex.decision_id)
        return gone.answer()


async def _render(ex: Exchange, mcp: McpRequest) -> web.StreamResponse:
    reply, msg_id = mcp.reply, mcp.msg_id
    meta: dict[str, Any]
    tools_call = mcp.method == "tools/call"
    if ex.error is not None:
        exc = ex.error
        if isinstance(exc, SchemaError) and tools_call:
            text = f"Invalid arguments for {ex.tool}: {exc.message}"
            return await reply.send(_tool_error(mcp, text, {"decision_id": ex.decision_id, "code": exc.code}))
        rpc_code = RPC_INVALID_PARAMS if isinstance(exc, UnknownTool | SchemaError) else RPC_INTERNAL
        message = rpc_error_message(msg_id, rpc_code, exc.message, exc.code, decision_id=ex.decision_id)
        return await reply.send(message, exc.status if exc.status >= 500 else 200)
    if ex.pending is not None:
        meta = {
            "decision_id": ex.decision_id,
            "outcome": "pending",
            "approval_id": ex.pending.approval_id,
            "expires_at": iso8601(ex.pending.expires_at),
        }
        what = f"This call to {ex.tool}" if tools_call else f"This {mcp.method} request"
        text = (
            f"{what} is waiting for an operator's approval (approval {ex.pending.approval_id}). "
            "Nothing has run. Retry exactly the same call later: once an operator approves it, it runs once."
        )
        return await reply.send(_refusal(mcp, msg_id, text, meta))
    if refused(ex):
        decision = need(ex.decision, "decision")
        what = f"this call to {ex.tool}" if tools_call else f"this {mcp.method} request"
        text = (
            f"Gatekeeper refused {what}: {decision.reason}. "
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
        return await reply.send(_refusal(mcp, msg_id, text, meta))
    answer: web.StreamResponse = ex.answer
    return answer


def _refusal(mcp: McpRequest, msg_id: Any, text: str, meta: dict[str, Any]) -> dict[str, Any]:
    """A tools/call refusal is a tool result the model reads; any other method's, an error."""
    if mcp.method == "tools/call":
        return _tool_error(mcp, text, meta)
    data = {key: value for key, value in meta.items() if key != "code"}
    return rpc_error_message(msg_id, RPC_REFUSED, text, str(meta.get("code") or meta["outcome"]), **data)


def _tool_error(mcp: McpRequest, text: str, meta: dict[str, Any]) -> dict[str, Any]:
    content = [{"type": "text", "text": text}]
    return tool_result(mcp, {"content": content, "isError": True, "_meta": {META_KEY: meta}})


__all__ = ["MCP_STAGES", "handle_mcp", "parse_mcp", "render_mcp"]
