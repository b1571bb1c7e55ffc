"""The demo tools as a stdio MCP server: ``python -m gatekeeper.demo.stdio``.

For trying a stdio upstream (``upstreams.NAME.command``) without installing anything, and for
the tests of the stdio bridge. The same simulated, harmless tools as the HTTP demo.
"""

from __future__ import annotations

import anyio
from mcp.server.stdio import stdio_server

from .mcp_app import make_mcp_server
from .tools import ReceivedLog
from .workspace import Workspace


async def serve() -> None:
    server = make_mcp_server(Workspace(), ReceivedLog())
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(serve)
