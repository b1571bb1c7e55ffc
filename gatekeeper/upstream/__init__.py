"""Transports that carry allowed calls to tools."""

from __future__ import annotations

from typing import Protocol

from ..config import Upstream
from ..models import ToolCall
from .http import HttpTransport


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


__all__ = ["HttpTransport", "ToolTransport"]
