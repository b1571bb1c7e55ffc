"""Choose the approval store from configuration (SQLite by default, PostgreSQL for fleets), and
the rules both store implementations share, so the two cannot drift apart."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import structlog

from gatekeeper import codes

from ..errors import (
    ApprovalError,
    ApprovalForbidden,
    ConfigError,
    GatekeeperError,
    NotFound,
    PendingCapExceeded,
    RequestError,
)
from .models import Approval, Change, State
from .store import ApprovalStore

T = TypeVar("T")

log = structlog.get_logger("gatekeeper.approvals")

VERDICTS = frozenset({"approve", "deny"})

ACCEPTED = (
    "'sqlite' (or empty) for approvals.sqlite3 in the data folder, a file path ending in .sqlite3 or .db "
    "(relative paths are taken from the data folder), or a postgresql:// (postgres://) URL"
)


def open_store(url_or_path: str, data_dir: Path, *, schema: str = "gatekeeper") -> ApprovalStore:
    """Build (not yet open) the store named by ``url_or_path``; call ``await store.open()`` next."""
    value = (url_or_path or "").strip()
    if value in ("", "sqlite"):
        from .store_sqlite import SqliteApprovalStore

        return SqliteApprovalStore(Path(data_dir) / "approvals.sqlite3")
    if value.startswith(("postgresql://", "postgres://")):
        from .store_postgres import PostgresApprovalStore

        return PostgresApprovalStore(value, schema=schema)
    if value.endswith((".sqlite3", ".db")) and "://" not in value:
        from .store_sqlite import SqliteApprovalStore

        path = Path(value).expanduser()
        return SqliteApprovalStore(path if path.is_absolute() else Path(data_dir) / path)
    shown = value if "@" not in value else value.split("://", 1)[0] + "://…"  # never echo a password
    raise ConfigError(f"approvals.store: {shown!r} is not understood; use {ACCEPTED}", key="approvals.store")


# -- shared by both stores -------------------------------------------------------------------------


@dataclass
class Tx:
    """What a store transaction body hands back besides its result."""

    changes: list[Change] = field(default_factory=list)
    error: GatekeeperError | None = None  # raised after COMMIT (e.g. "expired", which is also recorded)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def validate_verdict(verdict: str) -> str:
    if verdict not in VERDICTS:
        raise RequestError(
            f"verdict must be 'approve' or 'deny', not {verdict!r}", code=codes.INVALID_VERDICT
        )
    return verdict


def validate_state(state: str) -> State:
    try:
        return State(state)
    except ValueError:
        accepted = ", ".join(s.value for s in State)
        raise RequestError(
            f"unknown approval state {state!r}; use one of {accepted}", code=codes.INVALID_STATE
        ) from None


def check_vote(current: Approval | None, approval_id: str, operator: str, now: float) -> Approval:
    """Refuse a vote on an unknown approval, on one's own call, on a decided approval, or a second
    vote by the same operator; return the approval. (Expiry is the caller's: it must be recorded.)"""
    if current is None:
        raise NotFound(f"no approval {approval_id}")
    if operator == current.principal:
        raise ApprovalForbidden(
            f"{operator} made this call and cannot approve or deny it; another operator must decide",
            approval_id=approval_id,
        )
    if current.state is not State.PENDING:
        raise ApprovalError(
            f"approval {approval_id} is {current.state}, not pending; it can no longer be voted on",
            code=codes.NOT_PENDING,
            approval_id=approval_id,
            state=str(current.state),
        )
    if now < current.expires_at and any(v.operator == operator for v in current.votes):
        raise already_voted(approval_id, operator)
    return current


def decide(current: Approval, verdict: str) -> str:
    """The change kind a (new, valid) vote produces: ``vote``, ``approved`` or ``denied``."""
    if verdict == "deny":
        return "denied"
    return "approved" if current.approvals + 1 >= current.required_approvals else "vote"


def expired_error(approval_id: str) -> ApprovalError:
    return ApprovalError(
        f"approval {approval_id} expired before it was decided; the caller must make the call again",
        code=codes.APPROVAL_EXPIRED,
        approval_id=approval_id,
    )


def cap_exceeded(principal: str, pending: int, limit: int) -> PendingCapExceeded:
    return PendingCapExceeded(
        f"{principal} already has {pending} approvals waiting for an operator "
        f"(the limit is {limit}); wait for them to be decided",
        pending=pending,
        limit=limit,
    )


def vanished() -> GatekeeperError:
    """For an approval written earlier in the same transaction that cannot be read back."""
    return GatekeeperError("approval vanished mid-transaction", code=codes.STORE_ERROR)


def already_voted(approval_id: str, operator: str) -> ApprovalError:
    return ApprovalError(
        f"{operator} has already voted on approval {approval_id}; a different operator must vote",
        code=codes.ALREADY_VOTED,
        approval_id=approval_id,
    )


def already_revoked(grant_id: str) -> ApprovalError:
    return ApprovalError(
        f"grant {grant_id} is already revoked", code=codes.ALREADY_REVOKED, grant_id=grant_id
    )


def deliver(callback: Callable[[Change], None], change: Change) -> None:
    try:
        callback(change)
    except Exception:
        log.exception("approval_subscriber_failed", kind=change.kind, approval_id=change.approval_id)


def record(tx: Tx, kind: str, approvals: list[Approval]) -> list[Approval]:
    """Note a ``kind`` change for each of ``approvals`` in ``tx``; return them."""
    tx.changes.extend(Change(kind, approval_id=a.id) for a in approvals)
    return approvals


class ChangeFeed:
    """The plumbing both stores share: subscribers, who are called (on the loop, one at a time)
    after a transaction commits, and writes that run to completion even if their caller is
    cancelled, so a transaction is never left half done and its changes still go out."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[Change], None]] = []
        self._pending_writes: set[asyncio.Task[Any]] = set()

    def subscribe(self, callback: Callable[[Change], None]) -> Callable[[], None]:
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def _publish(self, changes: Sequence[Change]) -> None:
        if not changes or not self._subscribers:
            return
        loop = asyncio.get_running_loop()
        for change in changes:
            for callback in list(self._subscribers):
                loop.call_soon(deliver, callback, change)

    async def _shielded(self, transaction: Coroutine[Any, Any, T]) -> T:
        """Run ``transaction`` in its own task, shielded from the caller's cancellation."""
        task = asyncio.ensure_future(transaction)
        self._pending_writes.add(task)
        task.add_done_callback(self._write_done)
        return await asyncio.shield(task)

    def _write_done(self, task: asyncio.Task[Any]) -> None:
        self._pending_writes.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: the caller may have gone away

    async def _drain_writes(self) -> None:
        """Wait for the writes still running (at close)."""
        if self._pending_writes:
            await asyncio.gather(*self._pending_writes, return_exceptions=True)
