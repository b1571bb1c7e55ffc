"""Transports that carry allowed calls to tools."""

from __future__ import annotations

from typing import Final, Protocol

from ..config import Upstream
from ..models import ToolCall
from .http import HttpTransport

# Sent with each tools/call the proxy forwards to a stdio upstream's bridge (which trusts it only
# beside its secret): the call's decision id, so the server's own connections meet their call.
DECISION_HEADER: Final = "X-Gatekeeper-Decision-Id"


class ToolTransport(Protocol):
    """Carries one allowed call to its tool and returns the tool's JSON answer as bytes."""

    async def call_tool(
        self,
        upstream: Upstream,
        tool: str,
        canonical_arguments: bytes,
        decision_id: str,
        call: ToolCall | None = None,
    ) -> bytes: ...


__all__ = ["DECISION_HEADER", "HttpTransport", "ToolTransport"]
