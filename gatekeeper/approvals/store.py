"""The one interface both approval stores (SQLite, PostgreSQL) implement.

Every method that changes state is a single atomic transaction, so concurrent
callers — two retries of one call, two replicas, two operators — cannot both win:
an approved call is consumed at most once, a pending call collapses into one
approval, and a vote lands only on a pending, unexpired approval.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol

from ..mcp_sessions import McpSessions
from ..tool_pins import ToolPinStore
from .models import Approval, Change, Grant


class ApprovalStore(McpSessions, ToolPinStore, Protocol):
    """Approvals and grants; the same database keeps who owns each MCP session."""

    async def open(self) -> None:
        """Connect and create the schema if needed."""
        ...

    async def close(self) -> None: ...

    async def create_pending(
        self, approval: Approval, *, max_pending_per_principal: int
    ) -> tuple[Approval, bool]:
        """Insert ``approval`` unless a pending one with the same (principal, digest) exists.

        Returns (the pending approval, whether it was created). Raises PendingCapExceeded
        when the principal already has ``max_pending_per_principal`` other pending approvals.
        """
        ...

    async def get(self, approval_id: str) -> Approval | None: ...

    async def list_approvals(
        self, *, state: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[Approval]:
        """Newest first."""
        ...

    async def count(self, *, state: str | None = None) -> int: ...

    async def vote(
        self,
        approval_id: str,
        *,
        operator: str,
        verdict: str,
        comment: str,
        now: float,
        grant_seconds: float | None = None,
        use_by: float | None = None,
    ) -> Approval:
        """Record one operator's approve/deny vote, atomically.

        Refuses when: the approval does not exist (``errors.NotFound``, 404); the operator is
        the principal who made the call (``ApprovalForbidden``, 403, ``self_approval``); it is
        not pending (``ApprovalError`` 409 ``not_pending``); it has expired (409
        ``approval_expired``, and it is marked expired); the operator already voted (409
        ``already_voted``). A deny vote denies at once; an approve vote approves when the
        quorum (``required_approvals`` distinct operators) is reached; ``grant_seconds`` on the
        deciding approve vote is stored on the approval, and ``use_by`` (when given) becomes its
        ``expires_at``: an approved call not used by then expires (``expire_due``).
        """
        ...

    async def consume(self, approval_id: str, *, now: float) -> Approval | None:
        """Mark an approved approval consumed; None if it was not approved, was already used, or
        its ``expires_at`` has passed."""
        ...

    async def consume_matching(self, principal: str, digest: str, *, now: float) -> Approval | None:
        """Consume the oldest approved, unconsumed, unexpired approval for exactly this call and principal."""
        ...

    async def last_denied(self, principal: str, digest: str, *, since: float) -> Approval | None:
        """The newest approval for exactly this call and principal that operators denied at or
        after ``since``: a re-sent denied call gets that answer, not a new approval."""
        ...

    async def expire_due(self, *, now: float) -> list[Approval]:
        """Mark every pending approval, and every approved one never used, whose ``expires_at`` has
        passed as expired; return them."""
        ...

    async def add_grant(self, grant: Grant) -> Grant: ...

    async def find_grant(self, principal: str, digest: str, *, now: float) -> Grant | None:
        """An active grant for exactly this call and principal; counts the use."""
        ...

    async def list_grants(self, *, active_at: float | None = None) -> list[Grant]: ...

    async def revoke_grant(self, grant_id: str, *, operator: str, now: float) -> Grant:
        """Raises errors.NotFound (404) or ApprovalError 409 ``already_revoked``."""
        ...

    def subscribe(self, callback: Callable[[Change], None]) -> Callable[[], None]:
        """Call ``callback`` on every change committed by any process sharing this store.

        SQLite: this process's changes at once, other processes' (workers, the CLI) through a
        polled change table within ``poll_seconds``. PostgreSQL: LISTEN/NOTIFY, so a change
        made by another replica arrives within milliseconds. Returns an unsubscribe function.
        """
        ...


ChangeStream = AsyncIterator[Change]
