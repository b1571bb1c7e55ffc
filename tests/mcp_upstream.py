"""A real MCP server (the official SDK's ``MCPServer``) with tools, resources and prompts.

It stands for a filesystem-style MCP server: it serves what it is asked for, credentials
included, so only the gate stands between an agent and ``file:///root/.ssh/id_rsa``. Every
request it answers is appended to ``seen`` as ``(method, what)``: a test can assert that a
refused request never reached it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from mcp.types import (
    Completion,
    CompletionArgument,
    EmbeddedResource,
    JSONRPCMessage,
    PromptReference,
    ResourceTemplateReference,
    TextContent,
    TextResourceContents,
)

from gatekeeper.demo.mcp_app import McpDemoServer

README = "file:///workspace/README.md"
SSH_KEY = "file:///root/.ssh/id_rsa"
NOTE = "note://today"
FAKE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n"


def make_server(seen: list[tuple[str, str]]) -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer("fs-like")

    @server.tool(name="file.read", description="Read a file.")
    def read(path: str) -> str:
        seen.append(("tools/call", path))
        return f"contents of {path}"

    @server.resource(README, name="readme", mime_type="text/markdown")
    def readme() -> str:
        seen.append(("resources/read", README))
        return "# Example project\n"

    @server.resource(SSH_KEY, name="ssh-key", mime_type="text/plain")
    def ssh_key() -> str:
        seen.append(("resources/read", SSH_KEY))
        return FAKE_KEY

    @server.resource(NOTE, name="note", mime_type="text/plain")
    def note() -> str:
        seen.append(("resources/read", NOTE))
        return "a note"

    @server.resource("file:///workspace/src/{name}", name="source")
    def source(name: str) -> str:
        seen.append(("resources/read", name))
        return f"source {name}"

    @server.resource("file:///root/.ssh/{name}", name="ssh-keys")  # listed to no agent
    def ssh_keys(name: str) -> str:
        seen.append(("resources/read", name))
        return FAKE_KEY

    @server.prompt(name="review", description="Review a file.")
    def review(path: str) -> str:
        seen.append(("prompts/get", path))
        return f"Please review {path}."

    @server.prompt(name="quote", description="Quote a file in full.")
    def quote(path: str) -> list[UserMessage]:
        seen.append(("prompts/get", path))
        text = FAKE_KEY if path == "/root/.ssh/id_rsa" else f"contents of {path}"
        embedded = EmbeddedResource(
            type="resource", resource=TextResourceContents(uri=f"file://{path}", text=text)
        )
        return [
            UserMessage(content=TextContent(type="text", text="Here it is:")),
            UserMessage(content=embedded),
        ]

    @server.completion()
    async def complete(
        ref: PromptReference | ResourceTemplateReference, argument: CompletionArgument, context: Any
    ) -> Completion:
        seen.append(("completion/complete", argument.name))
        return Completion(values=["README.md", "src/app.py"])

    return server


class SequentialEventStore(EventStore):
    """Resumable streams with event ids 0, 1, 2 ... shared by every session, as the SDK's own
    stores are: an id names its stream whatever session presents it (easy to guess, here)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, JSONRPCMessage | None]] = []

    async def store_event(self, stream_id: str, message: JSONRPCMessage | None) -> str:
        self.events.append((stream_id, message))
        return str(len(self.events) - 1)

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        if not last_event_id.isdigit() or int(last_event_id) >= len(self.events):
            return None
        stream = self.events[int(last_event_id)][0]
        for n, (other, message) in enumerate(self.events[int(last_event_id) + 1 :], int(last_event_id) + 1):
            if other == stream and message is not None:
                await send_callback(EventMessage(message, str(n)))
        return stream


@asynccontextmanager
async def serving(
    *, json_response: bool = False, event_store: EventStore | None = None
) -> AsyncIterator[tuple[str, list[tuple[str, str]]]]:
    """(its streamable-HTTP URL, what it was asked) while it runs on a loopback port."""
    seen: list[tuple[str, str]] = []
    server = make_server(seen)
    async with McpDemoServer(
        json_response=json_response, server=server._lowlevel_server, event_store=event_store
    ) as running:
        yield running.url, seen
