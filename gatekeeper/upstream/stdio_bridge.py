"""A stdio MCP server as an ordinary MCP upstream: started, supervised, bridged onto loopback.

``upstreams.NAME.command: [argv...]`` names a program that speaks MCP on stdin/stdout. The
bridge runs it through the official SDK's stdio client and serves what it offers (tools,
resources, prompts) with the SDK's streamable HTTP server on a loopback port; the MCP proxy
then fronts that URL like any other ``mcp_url``, with the same gating. So ``/mcp/NAME`` needs
no code of its own for stdio, and both MCP protocol eras work on the HTTP side.

The bridge's port is on loopback, where other local processes (an agent in the same pod, say)
could reach it too: every request must carry a bearer secret the bridge made at start-up, which
only the proxy knows (it is injected as an upstream header, like any upstream credential), so
the only way to the server is through the gate.

Supervision: a child that exits or stops answering pings is restarted with exponential
backoff (reset once it has run a while). A call that was in flight when it died is answered
with an error, never replayed: a tool call runs at most once.

With the runner enabled the child runs in the sandbox (``runner/stdio_server.py``), its way out
the egress gate with a credential of its own; the proxy names each forwarded tool call's decision
id (``X-Gatekeeper-Decision-Id``, trusted only with the bridge's secret), so a connection the
server opens while exactly one call is in flight is recorded under that call.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import secrets
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.server import Server, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INTERNAL_ERROR,
    CallToolRequestParams,
    CallToolResult,
    GetPromptRequestParams,
    GetPromptResult,
    ListPromptsResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    ListToolsResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    ReadResourceResult,
)

from .. import __version__
from ..config import Upstream
from ..demo.mcp_app import McpDemoServer
from ..errors import ConfigError
from . import DECISION_HEADER

if TYPE_CHECKING:
    from ..runner.stdio_server import ContainedServer

log = structlog.get_logger("gatekeeper.stdio")
R = TypeVar("R")


def resolve_command(upstream: Upstream) -> tuple[str, ...]:
    """The argv with its program found now: a missing one stops start-up with a clear error."""
    if not upstream.command:
        raise ConfigError(f"upstreams.{upstream.name}: no command")
    program, *rest = upstream.command
    cwd = Path(upstream.cwd) if upstream.cwd else None
    if cwd is not None and not cwd.is_dir():
        raise ConfigError(f"upstreams.{upstream.name}.cwd: {cwd} is not a directory")
    if os.sep in program:
        path = Path(program) if Path(program).is_absolute() or cwd is None else cwd / program
        found = str(path) if path.is_file() and os.access(path, os.X_OK) else None
    else:
        found = shutil.which(program, path=upstream.env.get("PATH", os.environ.get("PATH")))
    if found is None:
        raise ConfigError(
            f"upstreams.{upstream.name}.command: {program!r} was not found or is not executable "
            "(install it, or give its full path)"
        )
    return (found, *rest)


class StdioBridge(McpDemoServer):
    """One supervised stdio MCP server, served over streamable HTTP at ``url`` (loopback only)."""

    def __init__(
        self,
        upstream: Upstream,
        *,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 30.0,
        ping_seconds: float = 2.0,
        contained: ContainedServer | None = None,
    ) -> None:
        super().__init__("127.0.0.1", 0)
        self.upstream = upstream
        self.contained = contained  # the sandbox it runs in (runner.enabled), checked already
        self.argv = contained.command if contained is not None else resolve_command(upstream)
        self.in_flight: dict[int, str] = {}  # tools/call in progress: their decision ids ("" unknown)
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.ping_seconds = ping_seconds
        self.restarts = 0  # how many times the child was started again after it ended
        self.pid: int | None = None  # the running child's process id, when known
        self._client: Client | None = None
        self._ready = asyncio.Event()
        self._broken = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._schemas: dict[str, dict[str, Any]] = {}
        self.secret = secrets.token_urlsafe(32)  # the proxy sends it; nothing else can reach the server

    @property
    def upstream_headers(self) -> dict[str, str]:
        """What the proxy must send: the bridge refuses every request without it."""
        return {"Authorization": f"Bearer {self.secret}"}

    def wrap_app(self, app: Any) -> Any:
        expected = f"Bearer {self.secret}".encode()

        async def only_the_gate(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                given = dict(scope.get("headers") or []).get(b"authorization", b"")
                if not hmac.compare_digest(given, expected):
                    await send({"type": "http.response.start", "status": 401, "headers": []})
                    await send({"type": "http.response.body", "body": b""})
                    return
            await app(scope, receive, send)

        return only_the_gate

    async def start(self) -> None:
        await super().start()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"stdio:{self.upstream.name}")
        with contextlib.suppress(TimeoutError):  # a slow first start is not fatal: calls wait for it
            async with asyncio.timeout(self.upstream.timeout_seconds):
                await self._ready.wait()

    async def stop(self) -> None:
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        await super().stop()

    # --- supervision ------------------------------------------------------------------------
    async def _supervise(self) -> None:
        failures = 0
        first = True
        while True:
            started = time.monotonic()
            try:
                await self._run_once(first)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the child failed to start, died, or stopped answering
                log.warning(
                    "stdio_upstream_ended",
                    upstream=self.upstream.name,
                    error=f"{type(exc).__name__}: {exc}"[:500],
                )
            finally:
                self._client, self.pid = None, None
                self._ready.clear()
            first = False
            if time.monotonic() - started > 4 * self.max_backoff_seconds:
                failures = 0  # it ran a good while: start again promptly
            delay = min(self.max_backoff_seconds, self.backoff_seconds * (2**failures))
            failures += 1
            log.info("stdio_upstream_restarting", upstream=self.upstream.name, in_seconds=delay)
            await asyncio.sleep(delay)
            self.restarts += 1

    def current_call(self) -> str | None:
        """The decision id of the tools/call in flight, if exactly one is (else None: with two,
        a connection cannot be told apart; cheap, and never a guess)."""
        if len(self.in_flight) != 1:
            return None
        return next(iter(self.in_flight.values())) or None

    async def _run_once(self, first: bool) -> None:
        self._broken.clear()
        if self.contained is not None:
            process = self.contained.process(self.current_call)
            async with Client(process, read_timeout_seconds=self.upstream.timeout_seconds) as client:
                self.pid = process.pid
                await self._serve_child(client, first)
            return
        program, *args = self.argv
        params = StdioServerParameters(
            command=program, args=args, env=dict(self.upstream.env) or None, cwd=self.upstream.cwd
        )
        async with Client(stdio_client(params), read_timeout_seconds=self.upstream.timeout_seconds) as client:
            self.pid = _child_pid(self.argv)
            await self._serve_child(client, first)

    async def _serve_child(self, client: Client, first: bool) -> None:
        """Offer the live child to calls, and watch it until it ends or stops answering."""
        self._client = client
        self._ready.set()
        log.info(
            "stdio_upstream_started",
            upstream=self.upstream.name,
            restarted=not first,
            sandboxed=self.contained is not None,
        )
        while not self._broken.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.ping_seconds):
                    await self._broken.wait()
            if self._broken.is_set():
                raise ConnectionError("a call found the server gone")
            async with asyncio.timeout(max(self.ping_seconds, 5.0)):
                await client.send_ping()

    async def _call(self, what: str, run: Callable[[Client], Awaitable[R]]) -> R:
        """Run one request on the live child, waiting (bounded) for it to be up."""
        try:
            async with asyncio.timeout(self.upstream.timeout_seconds):
                await self._ready.wait()
        except TimeoutError:
            raise MCPError(
                code=INTERNAL_ERROR, message=f"the stdio server {self.upstream.name!r} is not running"
            ) from None
        client = self._client
        if client is None:
            raise MCPError(code=INTERNAL_ERROR, message=f"the stdio server {self.upstream.name!r} restarted")
        try:
            return await run(client)
        except MCPError:
            raise  # the server's own answer (unknown tool, bad params): pass it on
        except Exception as exc:  # the pipe broke under the call: restart, and say it did not finish
            self._broken.set()
            raise MCPError(
                code=INTERNAL_ERROR,
                message=f"the stdio server {self.upstream.name!r} failed during {what}: "
                f"{type(exc).__name__}; it is being restarted",
            ) from None

    # --- the served side ----------------------------------------------------------------------
    def make_server(self) -> Server[Any]:
        async def list_tools(
            ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
        ) -> ListToolsResult:
            cursor = params.cursor if params else None
            result = await self._call(
                "tools/list", lambda c: c.list_tools(cursor=cursor, cache_mode="refresh")
            )
            for tool in result.tools:
                self._schemas[tool.name] = dict(tool.input_schema)
            return result

        async def call_tool(ctx: ServerRequestContext[Any], params: CallToolRequestParams) -> CallToolResult:
            headers = getattr(ctx.request, "headers", None)
            decision_id = headers.get(DECISION_HEADER) if headers is not None else None
            key = id(ctx)
            self.in_flight[key] = decision_id if isinstance(decision_id, str) else ""
            try:
                return await self._call("tools/call", lambda c: c.call_tool(params.name, params.arguments))
            finally:
                self.in_flight.pop(key, None)

        async def list_resources(
            ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
        ) -> ListResourcesResult:
            cursor = params.cursor if params else None
            return await self._call("resources/list", lambda c: c.list_resources(cursor=cursor))

        async def list_templates(
            ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
        ) -> ListResourceTemplatesResult:
            cursor = params.cursor if params else None
            return await self._call(
                "resources/templates/list", lambda c: c.list_resource_templates(cursor=cursor)
            )

        async def read_resource(
            ctx: ServerRequestContext[Any], params: ReadResourceRequestParams
        ) -> ReadResourceResult:
            return await self._call("resources/read", lambda c: c.read_resource(params.uri))

        async def list_prompts(
            ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
        ) -> ListPromptsResult:
            cursor = params.cursor if params else None
            return await self._call("prompts/list", lambda c: c.list_prompts(cursor=cursor))

        async def get_prompt(
            ctx: ServerRequestContext[Any], params: GetPromptRequestParams
        ) -> GetPromptResult:
            return await self._call("prompts/get", lambda c: c.get_prompt(params.name, params.arguments))

        return Server(
            f"gatekeeper-stdio-{self.upstream.name}",
            version=__version__,
            get_tool_input_schema=self._schemas.get,
            on_list_tools=list_tools,
            on_call_tool=call_tool,
            on_list_resources=list_resources,
            on_list_resource_templates=list_templates,
            on_read_resource=read_resource,
            on_list_prompts=list_prompts,
            on_get_prompt=get_prompt,
        )


def _child_pid(argv: tuple[str, ...]) -> int | None:
    """The newest child of this process running ``argv`` (the SDK does not hand out its process)."""
    me = str(os.getpid())
    found: list[tuple[float, int]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if (
            len(fields) > 19
            and fields[1] == me
            and [p.decode(errors="replace") for p in cmdline[: len(argv)]] == list(argv)
        ):
            found.append((float(fields[19]), int(entry.name)))
    return max(found)[1] if found else None
