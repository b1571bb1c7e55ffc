"""The approval store on SQLite: the default, one file in the data folder.

Durability: WAL journal with ``synchronous=FULL``, so a change is on disk when its
transaction commits — a process killed with SIGKILL (or a machine losing power) right
after a commit keeps it.

Atomicity: one connection, guarded by one asyncio lock; every state change is one
``BEGIN IMMEDIATE`` transaction (which also takes SQLite's write lock at once, so a second
process on the same file queues instead of racing). Reads take the same lock, so they never
see another coroutine's uncommitted work. A partial unique index allows one pending approval
per (principal, digest); consuming is a conditional ``UPDATE ... RETURNING``, so an approved
call is consumed at most once however many callers race for it.

A write, once started, runs to completion even if its caller is cancelled: a transaction is
never left half done, and its change notifications still go out.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from ..errors import GatekeeperError, NotFound, RequestError
from .models import Approval, Change, Grant, State, Vote
from .store import PendingCapExceeded
from .stores import (
    VERDICTS,
    Tx,
    already_revoked,
    already_voted,
    check_vote,
    decide,
    deliver,
    dumps,
    expired_error,
    validate_state,
)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'expired', 'consumed')),
    principal TEXT NOT NULL,
    roles TEXT NOT NULL,
    tool TEXT NOT NULL,
    arguments TEXT NOT NULL,
    digest TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    rule TEXT,
    reason TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    required_approvals INTEGER NOT NULL CHECK (required_approvals >= 1),
    decided_at REAL,
    consumed_at REAL,
    grant_seconds REAL
);
CREATE INDEX IF NOT EXISTS approvals_principal_digest_state ON approvals (principal, digest, state);
CREATE INDEX IF NOT EXISTS approvals_state_created ON approvals (state, created_at);
CREATE INDEX IF NOT EXISTS approvals_state_expires ON approvals (state, expires_at);
CREATE INDEX IF NOT EXISTS approvals_created ON approvals (created_at);
CREATE UNIQUE INDEX IF NOT EXISTS approvals_one_pending ON approvals (principal, digest)
    WHERE state = 'pending';

CREATE TABLE IF NOT EXISTS votes (
    approval_id TEXT NOT NULL REFERENCES approvals (id) ON DELETE CASCADE,
    operator TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('approve', 'deny')),
    comment TEXT NOT NULL,
    at REAL NOT NULL,
    UNIQUE (approval_id, operator)
);

CREATE TABLE IF NOT EXISTS grants (
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    tool TEXT NOT NULL,
    digest TEXT NOT NULL,
    approval_id TEXT,
    granted_by TEXT NOT NULL,
    comment TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    revoked_at REAL,
    revoked_by TEXT,
    uses INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS grants_principal_digest ON grants (principal, digest, expires_at);
CREATE INDEX IF NOT EXISTS grants_created ON grants (created_at);
"""

_APPROVAL_COLUMNS = (
    "id, state, principal, roles, tool, arguments, digest, capabilities, rule, reason, created_at, "
    "expires_at, required_approvals, decided_at, consumed_at, grant_seconds"
)
_GRANT_COLUMNS = (
    "id, principal, tool, digest, approval_id, granted_by, comment, created_at, expires_at, "
    "revoked_at, revoked_by, uses"
)


def _approval_from_row(row: aiosqlite.Row, votes: Iterable[Vote] = ()) -> Approval:
    return Approval(
        id=row["id"],
        state=State(row["state"]),
        principal=row["principal"],
        roles=tuple(json.loads(row["roles"])),
        tool=row["tool"],
        arguments=json.loads(row["arguments"]),
        digest=row["digest"],
        capabilities=tuple(json.loads(row["capabilities"])),
        rule=row["rule"],
        reason=row["reason"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        required_approvals=row["required_approvals"],
        votes=tuple(votes),
        decided_at=row["decided_at"],
        consumed_at=row["consumed_at"],
        grant_seconds=row["grant_seconds"],
    )


def _grant_from_row(row: aiosqlite.Row) -> Grant:
    return Grant(
        id=row["id"],
        principal=row["principal"],
        tool=row["tool"],
        digest=row["digest"],
        approval_id=row["approval_id"],
        granted_by=row["granted_by"],
        comment=row["comment"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        revoked_by=row["revoked_by"],
        uses=row["uses"],
    )


class SqliteApprovalStore:
    """``ApprovalStore`` on one SQLite file. Subscribers see the changes made by this process."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._subscribers: list[Callable[[Change], None]] = []
        self._pending_writes: set[asyncio.Task[Any]] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        if self._db is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(self.path, isolation_level=None)  # we issue BEGIN/COMMIT
        try:
            db.row_factory = aiosqlite.Row
            await db.execute("PRAGMA busy_timeout = 10000")
            mode = await db.execute_fetchall("PRAGMA journal_mode = WAL")
            if str(next(iter(mode))[0]).lower() != "wal":
                raise GatekeeperError(f"could not put {self.path} in WAL mode", code="store_error")
            await db.execute("PRAGMA synchronous = FULL")
            await db.execute("PRAGMA foreign_keys = ON")
            await db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        await db.execute(statement)
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")
        except BaseException:
            await db.close()
            raise
        self._db = db

    async def close(self) -> None:
        if self._pending_writes:
            await asyncio.gather(*self._pending_writes, return_exceptions=True)
        async with self._lock:
            if self._db is not None:
                db, self._db = self._db, None
                await db.close()

    # -- plumbing ----------------------------------------------------------------------------

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise GatekeeperError("the approval store is not open", code="store_closed")
        return self._db

    async def _write(self, body: Callable[[aiosqlite.Connection, Tx], Awaitable[T]]) -> T:
        """Run ``body`` in one BEGIN IMMEDIATE transaction; notify subscribers after COMMIT.

        The transaction runs in its own task, shielded from the caller's cancellation, so it
        always ends in COMMIT or ROLLBACK and the connection is never left mid-transaction.
        """
        task = asyncio.ensure_future(self._transaction(body))
        self._pending_writes.add(task)
        task.add_done_callback(self._write_done)
        return await asyncio.shield(task)

    def _write_done(self, task: asyncio.Task[Any]) -> None:
        self._pending_writes.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: the caller may have gone away

    async def _transaction(self, body: Callable[[aiosqlite.Connection, Tx], Awaitable[T]]) -> T:
        async with self._lock:
            db = self._conn()
            tx = Tx()
            await db.execute("BEGIN IMMEDIATE")
            try:
                result = await body(db, tx)
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")
        self._publish(tx.changes)
        if tx.error is not None:
            raise tx.error
        return result

    async def _read(self, body: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        async with self._lock:
            return await body(self._conn())

    def _publish(self, changes: list[Change]) -> None:
        if not changes or not self._subscribers:
            return
        loop = asyncio.get_running_loop()
        for change in changes:
            for callback in list(self._subscribers):
                loop.call_soon(deliver, callback, change)

    def subscribe(self, callback: Callable[[Change], None]) -> Callable[[], None]:
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    @staticmethod
    async def _votes_for(db: aiosqlite.Connection, ids: list[str]) -> dict[str, list[Vote]]:
        out: dict[str, list[Vote]] = {i: [] for i in ids}
        if not ids:
            return out
        rows = await db.execute_fetchall(
            "SELECT approval_id, operator, verdict, comment, at FROM votes "
            "WHERE approval_id IN (SELECT value FROM json_each(?)) ORDER BY at, rowid",
            (dumps(ids),),
        )
        for r in rows:
            out[r["approval_id"]].append(Vote(r["operator"], r["verdict"], r["comment"], r["at"]))
        return out

    async def _load(self, db: aiosqlite.Connection, rows: Iterable[aiosqlite.Row]) -> list[Approval]:
        rows = list(rows)
        votes = await self._votes_for(db, [r["id"] for r in rows])
        return [_approval_from_row(r, votes[r["id"]]) for r in rows]

    async def _get(self, db: aiosqlite.Connection, approval_id: str) -> Approval | None:
        rows = await db.execute_fetchall(
            f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE id = ?",  # noqa: S608 - constant
            (approval_id,),
        )
        loaded = await self._load(db, rows)
        return loaded[0] if loaded else None

    # -- approvals ---------------------------------------------------------------------------

    async def create_pending(
        self, approval: Approval, *, max_pending_per_principal: int
    ) -> tuple[Approval, bool]:
        if approval.state is not State.PENDING:
            raise ValueError("create_pending takes a pending approval")

        async def body(db: aiosqlite.Connection, tx: Tx) -> tuple[Approval, bool]:
            now = approval.created_at
            # This principal's pending approvals that have run out are expired first: a stale
            # one must neither absorb a new identical call nor count against the cap.
            stale = await db.execute_fetchall(
                "UPDATE approvals SET state = 'expired', decided_at = ? "
                "WHERE principal = ? AND state = 'pending' AND expires_at <= ? RETURNING id",
                (now, approval.principal, now),
            )
            tx.changes.extend(Change("expired", approval_id=r["id"]) for r in stale)
            existing = await db.execute_fetchall(
                f"SELECT {_APPROVAL_COLUMNS} FROM approvals "  # noqa: S608 - constant
                "WHERE principal = ? AND digest = ? AND state = 'pending'",
                (approval.principal, approval.digest),
            )
            if existing:
                return (await self._load(db, existing))[0], False
            rows = await db.execute_fetchall(
                "SELECT count(*) FROM approvals WHERE principal = ? AND state = 'pending'",
                (approval.principal,),
            )
            pending = int(next(iter(rows))[0])
            if pending >= max_pending_per_principal:
                raise PendingCapExceeded(
                    f"{approval.principal} already has {pending} approvals waiting for an operator "
                    f"(the limit is {max_pending_per_principal}); wait for them to be decided",
                    pending=pending,
                    limit=max_pending_per_principal,
                )
            await db.execute(
                f"INSERT INTO approvals ({_APPROVAL_COLUMNS}) "  # noqa: S608 - constant
                "VALUES (?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL)",
                (
                    approval.id,
                    approval.principal,
                    dumps(list(approval.roles)),
                    approval.tool,
                    dumps(approval.arguments),
                    approval.digest,
                    dumps(list(approval.capabilities)),
                    approval.rule,
                    approval.reason,
                    approval.created_at,
                    approval.expires_at,
                    approval.required_approvals,
                ),
            )
            tx.changes.append(Change("created", approval_id=approval.id))
            created = await self._get(db, approval.id)
            if created is None:  # written just above, in this transaction
                raise GatekeeperError("approval vanished mid-transaction", code="store_error")
            return created, True

        return await self._write(body)

    async def get(self, approval_id: str) -> Approval | None:
        return await self._read(lambda db: self._get(db, approval_id))

    async def list_approvals(
        self, *, state: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[Approval]:
        where, params = _state_filter(state)

        async def body(db: aiosqlite.Connection) -> list[Approval]:
            rows = await db.execute_fetchall(
                f"SELECT {_APPROVAL_COLUMNS} FROM approvals {where} "  # noqa: S608 - constant parts
                "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                (*params, max(0, limit), max(0, offset)),
            )
            return await self._load(db, rows)

        return await self._read(body)

    async def count(self, *, state: str | None = None) -> int:
        where, params = _state_filter(state)

        async def body(db: aiosqlite.Connection) -> int:
            rows = await db.execute_fetchall(f"SELECT count(*) FROM approvals {where}", params)  # noqa: S608
            return int(next(iter(rows))[0])

        return await self._read(body)

    async def vote(
        self,
        approval_id: str,
        *,
        operator: str,
        verdict: str,
        comment: str,
        now: float,
        grant_seconds: float | None = None,
    ) -> Approval:
        if verdict not in VERDICTS:
            raise RequestError(
                f"verdict must be 'approve' or 'deny', not {verdict!r}", code="invalid_verdict"
            )

        async def body(db: aiosqlite.Connection, tx: Tx) -> Approval:
            current = check_vote(await self._get(db, approval_id), approval_id, operator, now)
            if current.state is State.PENDING and now >= current.expires_at:
                await db.execute(
                    "UPDATE approvals SET state = 'expired', decided_at = ? WHERE id = ?", (now, approval_id)
                )
                tx.changes.append(Change("expired", approval_id=approval_id))
                tx.error = expired_error(approval_id)
                return current
            try:
                await db.execute(
                    "INSERT INTO votes (approval_id, operator, verdict, comment, at) VALUES (?, ?, ?, ?, ?)",
                    (approval_id, operator, verdict, comment, now),
                )
            except aiosqlite.IntegrityError:
                raise already_voted(approval_id, operator) from None
            kind = decide(current, verdict)
            if kind == "approved":
                await db.execute(
                    "UPDATE approvals SET state = 'approved', decided_at = ?, grant_seconds = ? WHERE id = ?",
                    (now, grant_seconds, approval_id),
                )
            elif kind == "denied":
                await db.execute(
                    "UPDATE approvals SET state = 'denied', decided_at = ? WHERE id = ?", (now, approval_id)
                )
            tx.changes.append(
                Change(kind, approval_id=approval_id, extra={"operator": operator, "verdict": verdict})
            )
            updated = await self._get(db, approval_id)
            if updated is None:  # written just above, in this transaction
                raise GatekeeperError("approval vanished mid-transaction", code="store_error")
            return updated

        return await self._write(body)

    async def consume(self, approval_id: str, *, now: float) -> Approval | None:
        async def body(db: aiosqlite.Connection, tx: Tx) -> Approval | None:
            rows = await db.execute_fetchall(
                "UPDATE approvals SET state = 'consumed', consumed_at = ? "  # noqa: S608 - constant
                f"WHERE id = ? AND state = 'approved' RETURNING {_APPROVAL_COLUMNS}",
                (now, approval_id),
            )
            loaded = await self._load(db, rows)
            tx.changes.extend(Change("consumed", approval_id=a.id) for a in loaded)
            return loaded[0] if loaded else None

        return await self._write(body)

    async def consume_matching(self, principal: str, digest: str, *, now: float) -> Approval | None:
        async def body(db: aiosqlite.Connection, tx: Tx) -> Approval | None:
            rows = await db.execute_fetchall(
                "UPDATE approvals SET state = 'consumed', consumed_at = ? "  # noqa: S608 - constant
                "WHERE id = (SELECT id FROM approvals WHERE principal = ? AND digest = ? "
                "AND state = 'approved' ORDER BY created_at, id LIMIT 1) "
                f"AND state = 'approved' RETURNING {_APPROVAL_COLUMNS}",
                (now, principal, digest),
            )
            loaded = await self._load(db, rows)
            tx.changes.extend(Change("consumed", approval_id=a.id) for a in loaded)
            return loaded[0] if loaded else None

        return await self._write(body)

    async def expire_due(self, *, now: float) -> list[Approval]:
        async def body(db: aiosqlite.Connection, tx: Tx) -> list[Approval]:
            rows = await db.execute_fetchall(
                "UPDATE approvals SET state = 'expired', decided_at = ? "  # noqa: S608 - constant
                f"WHERE state = 'pending' AND expires_at <= ? RETURNING {_APPROVAL_COLUMNS}",
                (now, now),
            )
            loaded = sorted(await self._load(db, rows), key=lambda a: (a.created_at, a.id))
            tx.changes.extend(Change("expired", approval_id=a.id) for a in loaded)
            return loaded

        return await self._write(body)

    # -- grants ------------------------------------------------------------------------------

    async def add_grant(self, grant: Grant) -> Grant:
        async def body(db: aiosqlite.Connection, tx: Tx) -> Grant:
            await db.execute(
                f"INSERT INTO grants ({_GRANT_COLUMNS}) "  # noqa: S608 - constant
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    grant.id,
                    grant.principal,
                    grant.tool,
                    grant.digest,
                    grant.approval_id,
                    grant.granted_by,
                    grant.comment,
                    grant.created_at,
                    grant.expires_at,
                    grant.revoked_at,
                    grant.revoked_by,
                    grant.uses,
                ),
            )
            tx.changes.append(Change("grant", approval_id=grant.approval_id, grant_id=grant.id))
            return grant

        return await self._write(body)

    async def find_grant(self, principal: str, digest: str, *, now: float) -> Grant | None:
        async def body(db: aiosqlite.Connection, tx: Tx) -> Grant | None:
            rows = await db.execute_fetchall(
                "UPDATE grants SET uses = uses + 1 "  # noqa: S608 - constant
                "WHERE id = (SELECT id FROM grants WHERE principal = ? AND digest = ? "
                "AND revoked_at IS NULL AND expires_at > ? ORDER BY expires_at DESC, id LIMIT 1) "
                f"RETURNING {_GRANT_COLUMNS}",
                (principal, digest, now),
            )
            return _grant_from_row(next(iter(rows))) if rows else None

        return await self._write(body)

    async def list_grants(self, *, active_at: float | None = None) -> list[Grant]:
        async def body(db: aiosqlite.Connection) -> list[Grant]:
            if active_at is None:
                rows = await db.execute_fetchall(
                    f"SELECT {_GRANT_COLUMNS} FROM grants ORDER BY created_at DESC, id DESC"  # noqa: S608
                )
            else:
                rows = await db.execute_fetchall(
                    f"SELECT {_GRANT_COLUMNS} FROM grants "  # noqa: S608 - constant
                    "WHERE revoked_at IS NULL AND expires_at > ? ORDER BY created_at DESC, id DESC",
                    (active_at,),
                )
            return [_grant_from_row(r) for r in rows]

        return await self._read(body)

    async def revoke_grant(self, grant_id: str, *, operator: str, now: float) -> Grant:
        async def body(db: aiosqlite.Connection, tx: Tx) -> Grant:
            rows = await db.execute_fetchall(
                "UPDATE grants SET revoked_at = ?, revoked_by = ? "  # noqa: S608 - constant
                f"WHERE id = ? AND revoked_at IS NULL RETURNING {_GRANT_COLUMNS}",
                (now, operator, grant_id),
            )
            if not rows:
                exists = await db.execute_fetchall("SELECT 1 FROM grants WHERE id = ?", (grant_id,))
                if not exists:
                    raise NotFound(f"no grant {grant_id}")
                raise already_revoked(grant_id)
            grant = _grant_from_row(next(iter(rows)))
            tx.changes.append(
                Change(
                    "revoked", approval_id=grant.approval_id, grant_id=grant.id, extra={"operator": operator}
                )
            )
            return grant

        return await self._write(body)


def _state_filter(state: str | None) -> tuple[str, tuple[str, ...]]:
    if state is None:
        return "", ()
    return "WHERE state = ?", (str(validate_state(state)),)
