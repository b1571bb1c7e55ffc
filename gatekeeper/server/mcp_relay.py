"""Carrying one MCP message to its upstream and its answer back (streamable HTTP).

``relay`` sends a request upstream and streams the answer to the client as it arrives: one
JSON body, or SSE events. ``rewrite`` edits each JSON-RPC message of the answer (a list the
caller sees filtered); ``answer_limit`` bounds a tool's answer, past which the client gets an
error, never the rest. ``into`` is an SSE stream already open to the client (a held call that
sent progress notifications): the answer is then carried as events on it.

``McpForward`` is the MCP entry point's ``Transport``: the decided call, as the message the
upstream gets. Only protocol headers go upstream; the agent's token never does. A client that
went away is ``ClientGone``, never an error of ours.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import structlog
from aiohttp import web
from yarl import URL

from gatekeeper import codes

from .. import strictjson
from ..config import Upstream
from ..errors import UpstreamError
from ..mcp_methods import is_method_tool
from ..models import ToolCall
from ..pipeline import Exchange, need
from ..streams import read_body
from ..tracing import current_request
from ..upstream import DECISION_HEADER
from .mcp_events import EventIds, IdRewriter
from .responses import json_response
from .state import CLIENT_SESSION, CONFIG, RUNNER, TRANSPORT

log = structlog.get_logger("gatekeeper.mcp")

_FORWARD_REQUEST_HEADERS = (
    "Accept",
    "Content-Type",
    "Mcp-Session-Id",
    "MCP-Protocol-Version",
    "Mcp-Method",
    "Mcp-Name",
)
_FORWARD_RESPONSE_HEADERS = ("Content-Type", "Mcp-Session-Id", "MCP-Protocol-Version", "Cache-Control")
TOO_LARGE = "the tool's answer is larger than the configured limit"
Rewrite = Callable[[Any], Awaitable[Any]]
# Sees the upstream's answer first; returns what to await before it is relayed, if anything.
OnAnswer = Callable[[aiohttp.ClientResponse], Awaitable[None] | None]


class ClientGone(Exception):
    """The client closed its connection before its answer was written."""

    def __init__(self, response: web.StreamResponse | None = None) -> None:
        super().__init__("the client went away")
        self.response = response

    def answer(self) -> web.StreamResponse:
        """The response begun for the client (aiohttp needs one to return), or a stand-in."""
        return self.response if self.response is not None else web.Response(status=499)


def rpc_error_message(msg_id: Any, rpc_code: int, message: str, code: str, **data: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": msg_id,
        "error": {"code": rpc_code, "message": message, "data": {"code": code, **data}},
    }


def sse_event(message: dict[str, Any]) -> bytes:
    return f"event: message\ndata: {json.dumps(message)}\n\n".encode()


class _AnswerStream(web.StreamResponse):
    """An upstream's streamed answer to a POST: its headers leave with its first bytes, in one
    write (aiohttp sends a stream's headers on their own otherwise). The client cannot use an
    answer's headers before its first event, so nothing reaches it later than it could be used."""

    _send_headers_immediately = False


class Reply:
    """Where an answer we make ourselves goes: a plain JSON response, or an SSE stream already
    opened to carry progress notifications while the call was held."""

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

    async def send(self, message: dict[str, Any], status: int = 200) -> web.StreamResponse:
        if self.stream is None:
            return json_response(status, message)
        try:
            await self.stream.write(sse_event(message))
            await self.stream.write_eof()
        except ConnectionResetError:
            raise ClientGone(self.stream) from None
        return self.stream


@dataclass(slots=True)
class McpRequest:
    """One JSON-RPC message posted to ``/mcp/{upstream}``, as the entry point read it."""

    http: web.Request
    upstream: Upstream
    message: dict[str, Any]
    on_answer: OnAnswer | None = None
    event_ids: EventIds | None = None
    reply: Reply = field(init=False)
    msg_id: Any = field(init=False)  # read once: the message is never changed
    method: str = field(init=False)

    def __post_init__(self) -> None:
        self.reply = Reply(self.http)
        self.msg_id = self.message.get("id")
        self.method = str(self.message.get("method"))


def tool_result(mcp: McpRequest, result: dict[str, Any]) -> dict[str, Any]:
    """A tools/call result we answer ourselves, in the shape the caller's protocol era expects."""
    version = mcp.http.headers.get("MCP-Protocol-Version", "")
    if version >= "2026":  # stateless era: results say they are complete
        result = {**result, "resultType": "complete"}
    return {"jsonrpc": "2.0", "id": mcp.msg_id, "result": result}


class McpForward:
    """The decided call to the MCP upstream, rebuilt from what was decided (the canonical
    arguments, not the bytes the client sent)."""

    def __init__(self, mcp: McpRequest, rewrite: Rewrite | None = None) -> None:
        self.mcp = mcp
        self.rewrite = rewrite

    async def forward(self, ex: Exchange) -> web.StreamResponse:
        call = need(ex.call, "understood call")
        message = self.mcp.message
        runner = ex.app.get(RUNNER)
        if runner is not None and runner.takes(call):  # contained tools run in the sandbox, not upstream
            return await self._run_contained(ex, call)
        if is_method_tool(call.tool):
            params = dict(call.arguments["params"])
            sent = message.get("params")
            if isinstance(sent, dict) and "_meta" in sent:  # protocol metadata, not decided on
                params["_meta"] = sent["_meta"]
            outgoing = {**message, "params": params} if "params" in message else message
        else:
            outgoing = {**message, "params": {**message["params"], "arguments": call.arguments}}
        # A stdio server learns which call it is serving, so its own connections meet that call.
        named = self.mcp.upstream.command is not None and not is_method_tool(call.tool)
        try:
            return await relay(
                self.mcp.http,
                self.mcp.upstream,
                strictjson.dumps_fast(outgoing),
                msg_id=self.mcp.msg_id,
                into=self.mcp.reply.stream,
                answer_limit=ex.app[CONFIG].limits.max_response_bytes,
                rewrite=self.rewrite,
                on_answer=self.mcp.on_answer,
                extra_headers={DECISION_HEADER: ex.decision_id} if named else None,
                event_ids=self.mcp.event_ids,
            )
        except ClientGone as gone:
            ex.delivery = "client_gone"
            return gone.answer()

    async def _run_contained(self, ex: Exchange, call: ToolCall) -> web.StreamResponse:
        """The runner's tools answer as MCP tool results: the JSON as text and structured content."""
        answer = await ex.app[TRANSPORT].call_tool(
            self.mcp.upstream, call.tool, call.canonical_arguments, ex.decision_id, call
        )
        result = orjson.loads(answer)
        is_error = isinstance(result, dict) and isinstance(result.get("error"), dict)
        content = [{"type": "text", "text": answer.decode()}]
        message = tool_result(
            self.mcp, {"content": content, "structuredContent": result, "isError": is_error}
        )
        try:
            return await self.mcp.reply.send(message)
        except ClientGone as gone:
            ex.delivery = "client_gone"
            return gone.answer()


async def relay(
    request: web.Request,
    upstream: Upstream,
    body: bytes | None,
    *,
    msg_id: Any = None,
    into: web.StreamResponse | None = None,
    answer_limit: int | None = None,
    rewrite: Rewrite | None = None,
    on_answer: OnAnswer | None = None,
    extra_headers: dict[str, str] | None = None,
    event_ids: EventIds | None = None,
) -> web.StreamResponse:
    """Send the (possibly rewritten) request upstream and stream its answer back; ``on_answer``
    sees the upstream's answer before the client does (a new session is bound to its owner
    before the client can use it). Raises
    ``UpstreamError`` when the upstream cannot be reached, ``ClientGone`` (with the response
    begun) when the client leaves mid-answer. ``event_ids`` tags the event ids of an SSE answer
    for the caller and reads a ``Last-Event-ID`` back (``mcp_events``); without it, neither goes."""
    mcp_url = _url(need(upstream.mcp_url, "MCP upstream URL"))
    headers = {**upstream.headers}
    for name in _FORWARD_REQUEST_HEADERS:
        value = request.headers.get(name)
        if value is not None:
            headers[name] = value
    sent_session = request.headers.get("Mcp-Session-Id")
    resume = request.headers.get("Last-Event-ID")
    if resume is not None and event_ids is not None:
        inner = event_ids.untag(sent_session, resume)
        if inner is not None:  # the entry point refused any other before it got here
            headers["Last-Event-ID"] = inner
    ids = current_request.get()
    if ids is not None:
        headers.update(ids.upstream_headers())
    if extra_headers:
        headers.update(extra_headers)
    app = request.app
    session = app[CLIENT_SESSION]
    timeout = _connect_timeout(upstream.timeout_seconds)
    try:
        upstream_resp = await session.request(
            request.method, mcp_url, data=body, headers=headers, timeout=timeout, allow_redirects=False
        )
    except aiohttp.ClientError as exc:
        raise UpstreamError(
            f"MCP upstream {upstream.name!r} could not be reached: {type(exc).__name__}"
        ) from None
    limit = app[CONFIG].limits.max_response_bytes
    response: web.StreamResponse | None = into
    try:
        async with upstream_resp:
            before_relay = on_answer(upstream_resp) if on_answer is not None else None
            if before_relay is not None:
                await before_relay
            sse = upstream_resp.headers.get("Content-Type", "").lower().startswith("text/event-stream")
            tagger: IdRewriter | _NoIds = _NoIds()
            if event_ids is not None and sse:
                tagger = _session_ids(event_ids, upstream_resp, sent_session)
            if into is not None:
                return await _relay_into(upstream_resp, into, msg_id, limit, tagger, rewrite)
            out_headers = {
                h: upstream_resp.headers[h] for h in _FORWARD_RESPONSE_HEADERS if h in upstream_resp.headers
            }
            if (rewrite is not None or answer_limit is not None) and not sse:
                # One JSON answer (or something else): read whole, bounded, then answered at once.
                raw = await read_body(upstream_resp.content, limit if answer_limit is None else answer_limit)
                if rewrite is not None:  # a list we cannot read shows nothing, never everything
                    data = await _rewrite_json(rewrite, raw)
                elif answer_limit is not None and len(raw) > answer_limit:
                    message = rpc_error_message(msg_id, -32603, TOO_LARGE, codes.UPSTREAM_RESPONSE_TOO_LARGE)
                    return json_response(502, message)
                else:
                    data = raw
                return web.Response(status=upstream_resp.status, body=data, headers=out_headers)
            # A GET opens a stream of the server's own messages: its headers go at once.
            stream = _AnswerStream if request.method == "POST" else web.StreamResponse
            response = stream(status=upstream_resp.status, headers=out_headers)
            await response.prepare(request)
            if rewrite is not None:
                # An answer is bounded; a GET's stream of the server's own messages is not.
                bound = (
                    (limit if answer_limit is None else answer_limit) if request.method == "POST" else None
                )
                relayed = 0
                async for block in _sse_blocks(upstream_resp.content):
                    relayed += len(block)
                    if bound is not None and relayed > bound:  # whole events only, then an error
                        message = rpc_error_message(
                            msg_id, -32603, TOO_LARGE, codes.UPSTREAM_RESPONSE_TOO_LARGE
                        )
                        await response.write(sse_event(message))
                        break
                    await response.write(tagger.feed(await _rewrite_sse_block(rewrite, block)))
            else:  # nothing to rewrite: relay the bytes as they arrive, not line by line
                relayed = 0
                async for chunk in upstream_resp.content.iter_any():
                    relayed += len(chunk)
                    if answer_limit is not None and relayed > answer_limit:
                        log.warning("mcp_answer_too_large", upstream=upstream.name, limit=answer_limit)
                        message = rpc_error_message(
                            msg_id, -32603, TOO_LARGE, codes.UPSTREAM_RESPONSE_TOO_LARGE
                        )
                        await response.write(b"\n\n" + sse_event(message))  # ends any event cut short
                        break
                    await response.write(tagger.feed(chunk))
            await response.write_eof()
            return response
    except ConnectionResetError:  # our client left (writing to it failed); the upstream is done with
        log.info("mcp_client_gone", upstream=upstream.name)
        raise ClientGone(response) from None
    except aiohttp.ClientError as exc:  # the upstream broke off mid-answer
        log.warning("mcp_upstream_broke_off", upstream=upstream.name, error=type(exc).__name__)
        if response is None:
            raise UpstreamError(
                f"MCP upstream {upstream.name!r} failed mid-answer: {type(exc).__name__}",
                code=codes.UPSTREAM_ERROR,
            ) from None
        return response


@functools.lru_cache(maxsize=256)
def _url(url: str) -> URL:
    """An upstream's URL, parsed once (aiohttp would parse the string on every request)."""
    return URL(url)


@functools.lru_cache(maxsize=64)
def _connect_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """No bound on the whole answer (streams last), one on connecting; one object per value."""
    return aiohttp.ClientTimeout(total=None, sock_connect=seconds)


class _NoIds:
    """An answer with no event ids to tag (one JSON body, or no caller to tag them for)."""

    @staticmethod
    def feed(chunk: bytes) -> bytes:
        return chunk


def _session_ids(event_ids: EventIds, answer: aiohttp.ClientResponse, sent_session: str | None) -> IdRewriter:
    """Tags ids for the session the answer belongs to (the one it opens, for an initialize)."""
    return event_ids.rewriter(answer.headers.get("Mcp-Session-Id") or sent_session)


async def _relay_into(
    upstream_resp: aiohttp.ClientResponse,
    into: web.StreamResponse,
    msg_id: Any,
    limit: int,
    ids: IdRewriter | _NoIds,
    rewrite: Rewrite | None,
) -> web.StreamResponse:
    """The answer to a call that was held, as events on the stream its progress went to: edited
    (``rewrite``) and bounded as any other answer."""
    if upstream_resp.headers.get("Content-Type", "").lower().startswith("text/event-stream"):
        relayed = 0
        async for block in _sse_blocks(upstream_resp.content):
            relayed += len(block)
            if relayed > limit:  # whole events only: the client gets an error instead of the rest
                message = rpc_error_message(msg_id, -32603, TOO_LARGE, codes.UPSTREAM_RESPONSE_TOO_LARGE)
                await into.write(sse_event(message))
                break
            if rewrite is not None:
                block = await _rewrite_sse_block(rewrite, block)
            await into.write(ids.feed(block))
    else:
        raw = await read_body(upstream_resp.content, limit)
        if len(raw) > limit:  # never relay a cut-off message: the caller gets an error instead
            message = rpc_error_message(msg_id, -32603, TOO_LARGE, codes.UPSTREAM_RESPONSE_TOO_LARGE)
            await into.write(sse_event(message))
        elif raw.strip():
            if rewrite is not None:
                raw = await _rewrite_json(rewrite, raw)
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


async def _rewrite_json(rewrite: Rewrite, raw: bytes) -> bytes:
    try:
        message = json.loads(raw)
    except ValueError:  # cut off or not JSON: an empty answer rather than everything
        message = {"jsonrpc": "2.0", "id": None, "error": {"code": -32603, "message": "unreadable answer"}}
    return json.dumps(await rewrite(message)).encode()


async def _rewrite_sse_block(rewrite: Rewrite, block: bytes) -> bytes:
    lines = block.decode("utf-8", "replace").splitlines()
    data_lines = [line[5:].lstrip(" ") for line in lines if line.startswith("data:")]
    if not "".join(data_lines).strip():  # no message (a priming event's id, a comment): as it came
        return block
    try:
        message = json.loads("\n".join(data_lines))
    except ValueError:  # an event we cannot read is dropped, not passed on unfiltered
        return b": dropped an unreadable event\n\n"
    rewritten = json.dumps(await rewrite(message))
    kept = [line for line in lines if line and not line.startswith("data:")]
    return ("\n".join([*kept, f"data: {rewritten}"]) + "\n\n").encode()
