"""Per-call egress credentials: minted when a call is forwarded to the runner, revoked when it ends.

A credential is the only thing that makes the egress gate connect anything, and it carries the
call's principal and decision id, so every connection is decided as that principal and recorded
under that call. A credential from another call, an expired one or none at all: 407.

A stdio MCP server in the sandbox lives longer than any call, so it gets a *service* credential
instead (``mint_service``): minted when its process starts, revoked when that process ends, for
the service principal ``upstream:NAME`` (see ``service_principal``). Its connections are decided on
their capabilities alone (no tool of its own to grant), and attributed to the one tool call in
flight on the server when there is exactly one.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Final

from ..models import Principal

# The issuer of service principals: no token's issuer, so an approval or a digest made for
# ``upstream:NAME`` never matches an agent's (digests bind issuer and subject).
SERVICE_ISSUER: Final = "gatekeeper:upstream"
SERVICE_PREFIX: Final = "upstream:"


def service_principal(upstream: str) -> Principal:
    """Who a sandboxed stdio server is to the policy: subject and role ``upstream:NAME``, so
    ``p, upstream:NAME, net.egress:HOST:PORT, allow`` (or ``g, upstream:NAME, ROLE``) grants it.
    Tokens cannot carry that role: the verifier refuses roles that start with ``upstream:``."""
    name = f"{SERVICE_PREFIX}{upstream}"
    return Principal(subject=name, roles=(name,), issuer=SERVICE_ISSUER, expires_at=math.inf)


@dataclass(frozen=True, slots=True)
class EgressGrant:
    """Who may connect through the gate, for which call, until when (monotonic seconds)."""

    principal: Principal
    tool: str
    decision_id: str
    expires_at: float
    # A service grant (a stdio server's): decided without a tool object, and ``current_call``
    # names the decision id of the one call in flight on the server (None: none, or several).
    service: bool = False
    current_call: Callable[[], str | None] | None = None
    # Served by a sandbox's own listener: good there only, never on the gate's TCP listener
    # (a credential carried out of the sandbox opens nothing elsewhere).
    sandboxed: bool = False

    def parent(self) -> str | None:
        """The decision id a connection made with this grant is recorded under."""
        if self.current_call is not None:
            return self.current_call()
        return self.decision_id or None


class EgressCredentials:
    """Live credentials by token. In memory: a credential lives as long as its call."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._grants: dict[str, EgressGrant] = {}
        self._clock = clock

    def mint(self, principal: Principal, tool: str, decision_id: str, ttl_seconds: float) -> str:
        token = secrets.token_urlsafe(24)
        self._grants[token] = EgressGrant(principal, tool, decision_id, self._clock() + ttl_seconds)
        return token

    def mint_service(self, upstream: str, current_call: Callable[[], str | None]) -> str:
        """A credential for one stdio server process: valid until ``revoke`` (its process ended)."""
        token = secrets.token_urlsafe(24)
        self._grants[token] = EgressGrant(
            service_principal(upstream),
            f"mcp.server:{upstream}",
            "",
            math.inf,
            service=True,
            current_call=current_call,
        )
        return token

    def bind_to_sandbox(self, token: str) -> None:
        """From now on ``token`` opens connections on its sandbox's listener only."""
        grant = self._grants.get(token)
        if grant is not None:
            self._grants[token] = replace(grant, sandboxed=True)

    def revoke(self, token: str) -> None:
        self._grants.pop(token, None)

    @contextmanager
    def issued(self, principal: Principal, tool: str, decision_id: str, ttl_seconds: float) -> Iterator[str]:
        """A credential for the duration of a ``with`` block (the call), revoked however it ends."""
        token = self.mint(principal, tool, decision_id, ttl_seconds)
        try:
            yield token
        finally:
            self.revoke(token)

    def check(self, token: str) -> EgressGrant | None:
        """The grant behind a live token, or None (unknown, revoked or expired)."""
        grant = self._grants.get(token)
        if grant is None:
            return None
        if grant.expires_at <= self._clock():
            self._grants.pop(token, None)
            return None
        return grant

    def __len__(self) -> int:
        return len(self._grants)
