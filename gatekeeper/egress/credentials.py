"""Per-call egress credentials: minted when a call is forwarded to the runner, revoked when it ends.

A credential is the only thing that makes the egress gate connect anything, and it carries the
call's principal and decision id, so every connection is decided as that principal and recorded
under that call. A credential from another call, an expired one or none at all: 407.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..models import Principal


@dataclass(frozen=True, slots=True)
class EgressGrant:
    """Who may connect through the gate, for which call, until when (monotonic seconds)."""

    principal: Principal
    tool: str
    decision_id: str
    expires_at: float


class EgressCredentials:
    """Live credentials by token. In memory: a credential lives as long as its call."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._grants: dict[str, EgressGrant] = {}
        self._clock = clock

    def mint(self, principal: Principal, tool: str, decision_id: str, ttl_seconds: float) -> str:
        token = secrets.token_urlsafe(24)
        self._grants[token] = EgressGrant(principal, tool, decision_id, self._clock() + ttl_seconds)
        return token

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
