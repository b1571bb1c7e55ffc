"""The demo tools over MCP (streamable HTTP at ``/mcp``), built on the official SDK's low-level server.

The low-level ``Server`` is used rather than ``MCPServer`` because it advertises exactly the
names (with dots) and input schemas we give it: ``tools/list`` shows ``TOOL_SCHEMAS`` verbatim,
the same shapes the plain HTTP demo accepts. A tool-level error (a missing file, arguments that
do not fit the schema) is a result with ``isError: true``; an unknown tool is a JSON-RPC error
(``-32602``), as the specification asks.

``McpDemoServer`` runs the app with uvicorn inside the caller's event loop, without threads
and without touching signal handlers, so tests and ``gatekeeper serve`` can embed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Final

import uvicorn
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http import EventStore
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
    Tool,
)
from starlette.applications import Starlette

from gatekeeper import __version__
from gatekeeper.demo.tools import (
    TOOL_DESCRIPTIONS,
    TOOL_NAMES,
    TOOL_SCHEMAS,
    InvalidArguments,
    JSONObject,
    ReceivedCall,
    ReceivedLog,
    UnknownTool,
    call_tool,
    is_tool_error,
    tool_error,
)
from gatekeeper.demo.workspace import Workspace

MCP_PATH: Final = "/mcp"
SERVER_NAME: Final = "gatekeeper-demo"


def make_mcp_server(workspace: Workspace, received: list[ReceivedCall]) -> Server[Any]:
    """The SDK server object with the five demo tools; every ``tools/call`` is appended to ``received``."""

    async def list_tools(
        ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        return ListToolsResult(tools=[_describe(name) for name in TOOL_NAMES])

    async def call(ctx: ServerRequestContext[Any], params: CallToolRequestParams) -> CallToolResult:
        arguments = {} if params.arguments is None else params.arguments
        received.append(ReceivedCall(params.name, arguments, _headers_of(ctx)))
        try:
            result = call_tool(workspace, params.name, arguments)
        except UnknownTool:
            raise MCPError(code=INVALID_PARAMS, message=f"Unknown tool: {params.name}") from None
        except InvalidArguments as exc:
            result = tool_error(InvalidArguments.code, str(exc))
        return _as_tool_result(result)

    return Server(
        SERVER_NAME,
        version=__version__,
        description="Simulated, harmless tools for trying out Gatekeeper.",
        # Lets the SDK check 2026-07-28 `Mcp-Param-*` headers without calling tools/list.
        get_tool_input_schema=TOOL_SCHEMAS.get,
        on_list_tools=list_tools,
        on_call_tool=call,
    )


def make_mcp_asgi_app(
    *,
    json_response: bool = False,
    stateless: bool = False,
    workspace: Workspace | None = None,
    received: list[ReceivedCall] | None = None,
    host: str = "127.0.0.1",
) -> Starlette:
    """The ASGI app serving MCP at ``/mcp``; its lifespan (uvicorn runs it) starts the sessions.

    ``json_response`` answers handshake-era POSTs with one ``application/json`` body instead of
    an SSE stream; ``stateless`` drops ``Mcp-Session-Id``. ``host`` only tunes the SDK's DNS
    rebinding check: on a loopback host it accepts ``Host``/``Origin`` of 127.0.0.1, localhost
    and [::1] on any port.
    """
    workspace = Workspace() if workspace is None else workspace
    server = make_mcp_server(workspace, ReceivedLog() if received is None else received)
    return _streamable_http_app(server, json_response=json_response, stateless=stateless, host=host)


def _streamable_http_app(
    server: Server[Any],
    *,
    json_response: bool,
    stateless: bool,
    host: str,
    event_store: EventStore | None = None,
) -> Starlette:
    return server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        json_response=json_response,
        stateless_http=stateless,
        host=host,
        event_store=event_store,
    )


class McpDemoServer:
    """The MCP demo on a loopback port, served by uvicorn in the running event loop.

    ``port=0`` picks a free port; ``port`` and ``url`` hold the real one after ``start()``.
    Start it once; ``stop()`` ends open sessions (and their SSE streams) before it closes.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        json_response: bool = False,
        stateless: bool = False,
        workspace: Workspace | None = None,
        shutdown_timeout: int = 2,
        server: Server[Any] | None = None,
        event_store: EventStore | None = None,
    ) -> None:
        self.host = host
        self.event_store = event_store  # resumable streams (Last-Event-ID), for tests
        self._server = server  # another SDK server to serve instead of the demo tools (tests)
        self.port = port
        self.json_response = json_response
        self.stateless = stateless
        self.workspace = Workspace() if workspace is None else workspace
        self.received: list[ReceivedCall] = ReceivedLog()
        self._shutdown_timeout = shutdown_timeout
        self._uvicorn: _EmbeddedUvicorn | None = None
        self._serving: asyncio.Task[None] | None = None
        self._sessions: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{MCP_PATH}"

    async def start(self) -> None:
        if self._serving is not None or self._closing.is_set():
            raise RuntimeError("an McpDemoServer can be started only once")
        server = self.make_server()
        app = self.wrap_app(
            _streamable_http_app(
                server,
                json_response=self.json_response,
                stateless=self.stateless,
                host=self.host,
                event_store=self.event_store,
            )
        )
        # Bind here, not in uvicorn, so a busy port raises OSError to the caller (uvicorn would
        # sys.exit) and the real port is known before the first request.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.create_server((self.host, self.port), family=family)
        # asyncio sets TCP_NODELAY only on accepted sockets whose proto is IPPROTO_TCP, which a
        # create_server() socket is not; accepted sockets inherit it from the listener on Linux.
        # Without it every answer waits ~40 ms for the client's delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.port = sock.getsockname()[1]
            await self._start_sessions(server)
            config = uvicorn.Config(
                app,
                # The session manager runs in a task of ours instead of the app's lifespan, so
                # stop() can end the sessions before uvicorn waits for their streams to drain.
                lifespan="off",
                http="h11",
                ws="none",
                log_config=None,  # leave the process's logging configuration alone
                access_log=False,
                timeout_graceful_shutdown=self._shutdown_timeout,
            )
            self._uvicorn = _EmbeddedUvicorn(config, before_shutdown=self._stop_sessions)
            self._serving = asyncio.create_task(self._uvicorn.serve([sock]), name=f"mcp-demo:{self.port}")
            while not self._uvicorn.started:
                if self._serving.done():
                    raise RuntimeError("the MCP demo server did not start; see the log for why")
                await asyncio.sleep(0.01)
        except BaseException:
            sock.close()
            await self.stop()
            raise

    def wrap_app(self, app: Starlette) -> Any:
        """The ASGI app uvicorn serves (the stdio bridge puts its access check in front)."""
        return app

    def make_server(self) -> Server[Any]:
        """The SDK server this serves: the demo tools, or the one given (the stdio bridge, tests)."""
        if self._server is not None:
            return self._server
        return make_mcp_server(self.workspace, self.received)

    async def stop(self) -> None:
        serving, self._serving = self._serving, None
        if serving is not None and self._uvicorn is not None:
            self._uvicorn.should_exit = True
            try:
                await serving
            except SystemExit:
                pass  # uvicorn exits the process on some failures; an embedded server must not
        await self._stop_sessions()

    async def __aenter__(self) -> McpDemoServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _start_sessions(self, server: Server[Any]) -> None:
        running = asyncio.Event()

        async def run_sessions() -> None:
            async with server.session_manager.run():
                running.set()
                await self._closing.wait()

        self._sessions = asyncio.create_task(run_sessions(), name=f"mcp-demo-sessions:{self.port}")
        started = asyncio.create_task(running.wait())
        await asyncio.wait({self._sessions, started}, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if self._sessions.done():
            await self._sessions  # raises why the session manager could not start

    async def _stop_sessions(self) -> None:
        self._closing.set()
        sessions, self._sessions = self._sessions, None
        if sessions is not None:
            await sessions


class _EmbeddedUvicorn(uvicorn.Server):
    """A uvicorn server that leaves signals to the process's owner and can run a hook on shutdown."""

    def __init__(self, config: uvicorn.Config, *, before_shutdown: Callable[[], Awaitable[None]]) -> None:
        super().__init__(config)
        self._before_shutdown = before_shutdown

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # stop accepting first; uvicorn's own close below is then a no-op
        await self._before_shutdown()
        await super().shutdown(sockets)


def _describe(name: str) -> Tool:
    return Tool(name=name, description=TOOL_DESCRIPTIONS[name], input_schema=dict(TOOL_SCHEMAS[name]))


def _as_tool_result(result: JSONObject) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(result))],
        structured_content=result,
        is_error=is_tool_error(result),
    )


def _headers_of(ctx: ServerRequestContext[Any]) -> dict[str, str]:
    """The HTTP request headers behind this call (starlette lower-cases the names)."""
    headers = getattr(ctx.request, "headers", None)
    return {} if headers is None else {str(key).lower(): str(value) for key, value in headers.items()}
