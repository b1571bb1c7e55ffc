"""Typed Python client for Gatekeeper's agent-facing ``POST /v1/invoke``.

``invoke`` returns an ``InvokeResult`` only when the call was allowed and forwarded; every other
outcome (denied, pending, any failure) is a ``GatekeeperError`` subclass, so an agent runtime
cannot mistake a refusal for a tool answer.
"""

from ._async import AsyncGatekeeperClient, InvokeResult
from ._errors import (
    AuthenticationFailed,
    BadRequest,
    CallDenied,
    CallPending,
    GatekeeperError,
    GatekeeperTimeout,
    GatekeeperUnreachable,
    PayloadTooLarge,
    Unavailable,
    UnknownTool,
    UpstreamFailed,
    UpstreamTimeout,
)
from ._sync import GatekeeperClient

__all__ = [
    "AsyncGatekeeperClient",
    "AuthenticationFailed",
    "BadRequest",
    "CallDenied",
    "CallPending",
    "GatekeeperClient",
    "GatekeeperError",
    "GatekeeperTimeout",
    "GatekeeperUnreachable",
    "InvokeResult",
    "PayloadTooLarge",
    "Unavailable",
    "UnknownTool",
    "UpstreamFailed",
    "UpstreamTimeout",
]
