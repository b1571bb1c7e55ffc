"""Who owns each MCP session: ``Mcp-Session-Id`` belongs to the principal that opened it.

The gate records (issuer, subject) when an upstream hands out a session id, and answers any
other principal that presents the id with the spec's 404, whatever it sends. The approval
stores keep the table (``mcp_sessions``), so on PostgreSQL every replica knows every session
and a fleet needs no load-balancer affinity; ``MemorySessions`` is for an app with no store.
Ids are stored only as digests (bound to their upstream): the table hands out no session.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Protocol

SESSIONS_SQL = """
CREATE TABLE IF NOT EXISTS mcp_sessions (
    key TEXT PRIMARY KEY,
    upstream TEXT NOT NULL,
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
"""


@functools.lru_cache(maxsize=4096)  # asked on every request of a session
def session_key(upstream: str, session_id: str) -> str:
    return hashlib.sha256(f"{upstream}\0{session_id}".encode()).hexdigest()


class McpSessions(Protocol):
    async def bind_session(self, key: str, upstream: str, issuer: str, subject: str, *, now: float) -> None:
        """Record the owner of a new session; an existing binding is never changed."""
        ...

    async def session_owner(self, key: str) -> tuple[str, str] | None:
        """(issuer, subject) of the session's owner, or None for a session nobody opened here."""
        ...

    async def forget_session(self, key: str) -> None: ...


class SessionOwners(McpSessions, Protocol):
    """What the MCP entry point asks (``MCP_SESSIONS``): the owners, some of them remembered."""

    def known_owner(self, key: str) -> tuple[str, str] | None:
        """The owner when known without asking the store (None: ask ``session_owner``)."""
        ...


class MemorySessions:
    """Owners in this process only (a restart forgets them: clients then open a new session)."""

    def __init__(self) -> None:
        self._owners: dict[str, tuple[str, str]] = {}

    async def bind_session(self, key: str, upstream: str, issuer: str, subject: str, *, now: float) -> None:
        self._owners.setdefault(key, (issuer, subject))

    async def session_owner(self, key: str) -> tuple[str, str] | None:
        return self._owners.get(key)

    def known_owner(self, key: str) -> tuple[str, str] | None:
        return self._owners.get(key)

    async def forget_session(self, key: str) -> None:
        self._owners.pop(key, None)


class CachedSessions:
    """Owners remembered in front of a store: a session's owner never changes once bound, so a
    remembered owner is never wrong, only possibly forgotten elsewhere (the upstream then
    refuses the ended session itself). Spares a store read on every MCP request."""

    def __init__(self, store: McpSessions, max_entries: int = 10_000) -> None:
        self.store = store
        self.max_entries = max_entries
        self._owners: dict[str, tuple[str, str]] = {}

    def _remember(self, key: str, owner: tuple[str, str]) -> None:
        if len(self._owners) >= self.max_entries:
            self._owners.pop(next(iter(self._owners)))  # the oldest
        self._owners[key] = owner

    async def bind_session(self, key: str, upstream: str, issuer: str, subject: str, *, now: float) -> None:
        await self.store.bind_session(key, upstream, issuer, subject, now=now)

    async def session_owner(self, key: str) -> tuple[str, str] | None:
        owner = self._owners.get(key)
        if owner is None:
            owner = await self.store.session_owner(key)
            if owner is not None:
                self._remember(key, owner)
        return owner

    def known_owner(self, key: str) -> tuple[str, str] | None:
        return self._owners.get(key)

    async def forget_session(self, key: str) -> None:
        self._owners.pop(key, None)
        await self.store.forget_session(key)
