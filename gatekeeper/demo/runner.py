"""Run the whole demo upstream: the plain HTTP tools and the MCP tools, side by side.

``gatekeeper serve`` starts one on 127.0.0.1:8090 (HTTP) and 127.0.0.1:8091 (MCP) when no
config names other upstreams; tests start one on free ports (``0``) and read the URLs back.
Both servers share one in-memory workspace, as two front doors to the same simulated machine.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from gatekeeper.demo.http_app import RECEIVED, make_http_app
from gatekeeper.demo.mcp_app import McpDemoServer
from gatekeeper.demo.tools import ReceivedCall
from gatekeeper.demo.workspace import Workspace
from gatekeeper.listen import binding

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_HTTP_PORT: Final = 8090
DEFAULT_MCP_PORT: Final = 8091


class DemoUpstream:
    """Both demo servers in the running event loop; ``start()`` then ``stop()``, or ``async with``."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        http_port: int = DEFAULT_HTTP_PORT,
        mcp_port: int = DEFAULT_MCP_PORT,
        *,
        mcp_json_response: bool = False,
        workspace: Workspace | None = None,
    ) -> None:
        self.host = host
        self.http_port = http_port
        self.workspace = Workspace() if workspace is None else workspace
        self.http_app = make_http_app(self.workspace)
        self.mcp = McpDemoServer(host, mcp_port, json_response=mcp_json_response, workspace=self.workspace)
        self._http_runner: web.AppRunner | None = None

    @property
    def http_url(self) -> str:
        """Base URL of the plain HTTP tools, e.g. ``http://127.0.0.1:8090`` (tools at ``/tools/{name}``)."""
        return f"http://{_url_host(self.host)}:{self.http_port}"

    @property
    def mcp_url(self) -> str:
        """The MCP endpoint, e.g. ``http://127.0.0.1:8091/mcp``."""
        return self.mcp.url

    @property
    def http_received(self) -> list[ReceivedCall]:
        """Every ``POST /tools/...`` the HTTP demo received, in order."""
        return self.http_app[RECEIVED]

    @property
    def mcp_received(self) -> list[ReceivedCall]:
        """Every ``tools/call`` the MCP demo received, in order."""
        return self.mcp.received

    async def start(self) -> None:
        runner = web.AppRunner(self.http_app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.http_port)
            with binding("demo HTTP", self.host, self.http_port):
                await site.start()
            self.http_port = _bound_port(runner, self.http_port)
            with binding("demo MCP", self.host, self.mcp.port):
                await self.mcp.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._http_runner = runner

    async def stop(self) -> None:
        runner, self._http_runner = self._http_runner, None
        try:
            await self.mcp.stop()
        finally:
            if runner is not None:
                await runner.cleanup()

    async def __aenter__(self) -> DemoUpstream:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def _bound_port(runner: web.AppRunner, requested: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return requested


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
