"""Typed Python client for Gatekeeper's agent-facing ``POST /v1/invoke``.

``invoke`` returns an ``InvokeResult`` only when the call was allowed and forwarded; every other
outcome (denied, pending, any failure) is a ``GatekeeperError`` subclass, so an agent runtime
cannot mistake a refusal for a tool answer.

``AsyncOperatorClient`` / ``OperatorClient`` (module ``gatekeeper_client.operator``) work the
approval queue through the operator API: list, inspect, approve, deny, grants, live events.
"""

from ._async import AsyncGatekeeperClient, Decision, InvokeResult
from ._errors import (
    AuthenticationFailed,
    BadRequest,
    CallDenied,
    CallPending,
    Conflict,
    Forbidden,
    GatekeeperError,
    GatekeeperTimeout,
    GatekeeperUnreachable,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    UnknownTool,
    UpstreamFailed,
    UpstreamTimeout,
)
from ._sync import GatekeeperClient
from .operator import (
    ApprovalView,
    AsyncOperatorClient,
    GrantView,
    OperatorClient,
    QueueEvent,
    VoteView,
)

__all__ = [
    "ApprovalView",
    "AsyncGatekeeperClient",
    "AsyncOperatorClient",
    "AuthenticationFailed",
    "BadRequest",
    "CallDenied",
    "CallPending",
    "Conflict",
    "Decision",
    "Forbidden",
    "GatekeeperClient",
    "GatekeeperError",
    "GatekeeperTimeout",
    "GatekeeperUnreachable",
    "GrantView",
    "InvokeResult",
    "NotFound",
    "OperatorClient",
    "PayloadTooLarge",
    "QueueEvent",
    "Unavailable",
    "UnknownTool",
    "UpstreamFailed",
    "UpstreamTimeout",
    "VoteView",
]
