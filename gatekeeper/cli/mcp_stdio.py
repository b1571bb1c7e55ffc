"""``gatekeeper mcp stdio --upstream NAME``: Gatekeeper's ``/mcp/NAME`` for stdio-only clients.

An MCP client that can only start a server process runs this instead: each JSON-RPC line it
writes on stdin is posted to ``{url}/mcp/NAME`` with the agent's token (``$GATEKEEPER_TOKEN``),
and every message of the answer (one JSON body or SSE events) comes back as a line on stdout.
Nothing is decided here: the gate behind the URL decides, so this bridge holds no policy, and a
call it cannot deliver is answered with a JSON-RPC error (fail closed). Requests run
concurrently, so a call held for an operator does not hold up pings. Both protocol eras: the
handshake's session id and version are kept for later requests; in the 2026 era each request's
own version (its ``_meta`` envelope) and method name go in the headers the transport wants.
Messages the server would push on a ``GET`` stream are not relayed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any, BinaryIO

import aiohttp
from mcp.shared.inbound import NAME_BEARING_METHODS, encode_header_value
from mcp_types import PROTOCOL_VERSION_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from gatekeeper import codes

URL_ENV = "GATEKEEPER_URL"
TOKEN_ENV = "GATEKEEPER_TOKEN"  # noqa: S105 - the name of a variable, not a secret
DEFAULT_URL = "http://127.0.0.1:8080"
RPC_UNDELIVERED = -32001


def register(sub: Any) -> None:
    p = sub.add_parser("mcp", help="MCP clients that speak only stdio")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    stdio = verbs.add_parser("stdio", help="bridge stdin/stdout to /mcp/NAME on a running Gatekeeper")
    stdio.add_argument("--upstream", required=True, help="the MCP upstream's name")
    stdio.add_argument("--url", default=None, help=f"agent listener (default ${URL_ENV} or {DEFAULT_URL})")
    stdio.set_defaults(run=run_stdio)


def run_stdio(args: argparse.Namespace) -> int:
    token = os.environ.get(TOKEN_ENV)
    if not token:
        print(f"gatekeeper: missing_token: set ${TOKEN_ENV} to an agent token", file=sys.stderr)
        return 2
    base = args.url or os.environ.get(URL_ENV) or DEFAULT_URL
    bridge = StdioBridge(f"{base.rstrip('/')}/mcp/{args.upstream}", token, sys.stdout.buffer)
    asyncio.run(bridge.run(sys.stdin.buffer))
    return 0


class StdioBridge:
    def __init__(self, url: str, token: str, out: BinaryIO) -> None:
        self.url = url
        self.token = token
        self.out = out
        self.session_id: str | None = None
        self.version: str | None = None  # the handshake era's negotiated version
        self._write = asyncio.Lock()

    async def run(self, stdin: BinaryIO) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
        tasks: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http:
            while line := await reader.readline():
                if not line.strip():
                    continue
                try:
                    message = json.loads(line)
                except ValueError:
                    await self.emit(
                        {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}}
                    )
                    continue
                if isinstance(message, dict) and message.get("method") == "initialize":
                    await self.post(http, message)  # the session id must be known before the next one
                    continue
                task = asyncio.create_task(self.post(http, message))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)
            if self.session_id is not None:
                try:
                    async with http.delete(self.url, headers=self.headers(None)):
                        pass
                except aiohttp.ClientError:
                    pass

    def headers(self, message: Any) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        }
        if self.session_id is not None:
            headers["Mcp-Session-Id"] = self.session_id
        params = message.get("params") if isinstance(message, dict) else None
        meta = params.get("_meta") if isinstance(params, dict) else None
        stamped = meta.get(PROTOCOL_VERSION_META_KEY) if isinstance(meta, dict) else None
        version = stamped if isinstance(stamped, str) else self.version
        if version is not None:
            headers["MCP-Protocol-Version"] = version
        if version in MODERN_PROTOCOL_VERSIONS and isinstance(message, dict):
            method = message.get("method")
            if isinstance(method, str):
                headers["Mcp-Method"] = method
                field = NAME_BEARING_METHODS.get(method)
                value = params.get(field) if field and isinstance(params, dict) else None
                if isinstance(value, str):
                    headers["Mcp-Name"] = encode_header_value(value)
        return headers

    async def post(self, http: aiohttp.ClientSession, message: Any) -> None:
        msg_id = message.get("id") if isinstance(message, dict) else None
        try:
            async with http.post(self.url, data=json.dumps(message), headers=self.headers(message)) as resp:
                if message.get("method") == "initialize" and "Mcp-Session-Id" in resp.headers:
                    self.session_id = resp.headers["Mcp-Session-Id"]
                if resp.headers.get("Content-Type", "").startswith("text/event-stream"):
                    async for answer in _sse_messages(resp.content):
                        await self.answer(message, answer)
                    return
                raw = await resp.read()
            if not raw.strip():
                return  # 202: a notification or a response was accepted
            answer = json.loads(raw)
            if isinstance(answer, dict) and "jsonrpc" in answer:
                await self.answer(message, answer)
            elif msg_id is not None:  # the gate refused at the HTTP level (401, 404 ...)
                why = answer.get("message") if isinstance(answer, dict) else None
                code = answer.get("code") if isinstance(answer, dict) else None
                await self.fail(msg_id, f"HTTP {resp.status}: {why or 'refused'}", code or codes.HTTP_ERROR)
        except (aiohttp.ClientError, ValueError, OSError) as exc:
            if msg_id is not None:
                await self.fail(
                    msg_id, f"Gatekeeper could not be reached: {type(exc).__name__}", codes.UNREACHABLE
                )

    async def answer(self, request: Any, answer: Any) -> None:
        if isinstance(request, dict) and request.get("method") == "initialize" and isinstance(answer, dict):
            result = answer.get("result")
            if isinstance(result, dict) and isinstance(result.get("protocolVersion"), str):
                self.version = result["protocolVersion"]
        await self.emit(answer)

    async def fail(self, msg_id: Any, message: str, code: str) -> None:
        error = {"code": RPC_UNDELIVERED, "message": message, "data": {"code": code}}
        await self.emit({"jsonrpc": "2.0", "id": msg_id, "error": error})

    async def emit(self, message: Any) -> None:
        async with self._write:
            self.out.write(json.dumps(message, ensure_ascii=False).encode() + b"\n")
            self.out.flush()


async def _sse_messages(content: aiohttp.StreamReader) -> Any:
    data: list[str] = []
    async for raw in content:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data:
                try:
                    yield json.loads("\n".join(data))
                except ValueError:
                    pass
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
    if data:
        try:
            yield json.loads("\n".join(data))
        except ValueError:
            pass
