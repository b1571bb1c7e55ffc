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

Several processes on one file (workers, the CLI): each transaction also writes its changes to a
shared table that every store polls (``sqlite_feed``), so subscribers here see the changes
committed there too, within ``poll_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TypeVar

import aiosqlite
import structlog

from gatekeeper import codes

from ..errors import GatekeeperError, NotFound
from ..mcp_sessions import SESSIONS_SQL
from ..storage.sqlite import immediate, open_sqlite
from ..tool_pins import PIN_COLUMNS, TOOL_PINS_SQL, ToolPin, pin_from_row, pin_row
from .models import Approval, Change, Grant, State, Vote
from .rows import (
    ADDED_APPROVAL_COLUMNS,
    APPROVAL_COLUMNS,
    GRANT_COLUMNS,
    VOTE_COLUMNS,
    approval_from_row,
    grant_from_row,
    grant_params,
    new_approval_params,
    vote_from_row,
)
from .sqlite_feed import SCHEMA as CHANGES_SCHEMA
from .sqlite_feed import SqliteChangeLog
from .stores import (
    ChangeFeed,
    Tx,
    already_revoked,
    already_voted,
    cap_exceeded,
    check_vote,
    decide,
    dumps,
    expired_error,
    record,
    validate_state,
    validate_verdict,
    vanished,
)

T = TypeVar("T")
log = structlog.get_logger("gatekeeper.approvals")

_SCHEMA = (
    """
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
    grant_seconds REAL,
    capability TEXT,
    quorum_rule TEXT
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
    + SESSIONS_SQL
    + TOOL_PINS_SQL
)


_ASK_ANYWAY_SECONDS = 1.0  # the longest a change goes unseen when the files did not move


class SqliteApprovalStore(ChangeFeed):
    """``ApprovalStore`` on one SQLite file. Subscribers see the changes made by this process
    at once, and those made by other processes on the same file within ``poll_seconds``."""

    def __init__(self, path: Path, *, poll_seconds: float = 0.1) -> None:
        super().__init__()
        self.path = Path(path)
        self.poll_seconds = poll_seconds
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._feed = SqliteChangeLog()
        self._poller: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        if self._db is not None:
            return
        db = await open_sqlite(self.path, _SCHEMA + CHANGES_SCHEMA, foreign_keys=True)
        db.row_factory = aiosqlite.Row
        try:
            have = {row[1] for row in await db.execute_fetchall("PRAGMA table_info(approvals)")}
            async with immediate(db):  # a file made by an earlier version: add the newer columns
                for column in ADDED_APPROVAL_COLUMNS:
                    if column not in have:
                        await db.execute(f"ALTER TABLE approvals ADD COLUMN {column} TEXT")
            await self._feed.start(db)
        except BaseException:
            await db.close()
            raise
        self._db = db
        self._poller = asyncio.create_task(self._poll_others(), name="approval-store-sqlite-feed")

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        await self._drain_writes()
        async with self._lock:
            if self._db is not None:
                db, self._db = self._db, None
                await db.close()

    # -- plumbing ----------------------------------------------------------------------------

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise GatekeeperError("the approval store is not open", code=codes.STORE_CLOSED)
        return self._db

    async def _write(self, body: Callable[[aiosqlite.Connection, Tx], Awaitable[T]]) -> T:
        """Run ``body`` in one BEGIN IMMEDIATE transaction; notify subscribers after COMMIT.

        The transaction runs in its own task, shielded from the caller's cancellation, so it
        always ends in COMMIT or ROLLBACK and the connection is never left mid-transaction.
        """
        return await self._shielded(self._transaction(body))

    async def _transaction(self, body: Callable[[aiosqlite.Connection, Tx], Awaitable[T]]) -> T:
        async with self._lock:
            db = self._conn()
            tx = Tx()
            async with immediate(db):
                result = await body(db, tx)
                await self._feed.write(db, tx.changes)
        self._publish(tx.changes)
        if tx.error is not None:
            raise tx.error
        return result

    def _files_signature(self) -> tuple[int, ...]:
        """The database and WAL files' identity, size and times: unchanged, nothing was committed
        (a stat costs microseconds; a PRAGMA on the database thread costs a thread hop)."""
        out: list[int] = []
        for name in (self.path, self.path.with_name(self.path.name + "-wal")):
            try:
                st = os.stat(name)
            except OSError:
                out += (0, 0, 0, 0)
                continue
            out += (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        return tuple(out)

    async def _poll_others(self) -> None:
        """Publish what other processes committed; prune the change table now and then. The
        files are looked at every ``poll_seconds`` and the database asked only when they moved,
        or once a second anyway (a commit in the same clock tick as the last, of the same size,
        leaves them as they were)."""
        seen: tuple[int, ...] = ()
        asked = 0.0
        while True:
            await asyncio.sleep(self.poll_seconds)
            signature = self._files_signature()
            now = time.monotonic()
            if signature == seen and now - asked < _ASK_ANYWAY_SECONDS and not self._feed.prune_due():
                continue
            seen, asked = signature, now
            try:
                async with self._lock:
                    news = await self._feed.poll(self._conn())
                self._publish(news)
                if self._feed.prune_due():

                    async def prune(db: aiosqlite.Connection, tx: Tx) -> None:
                        await self._feed.prune(db)

                    await self._write(prune)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # held calls still wake at their deadlines; keep polling
                log.warning("approval_feed_poll_failed", error=f"{type(exc).__name__}: {exc}")

    async def _read(self, body: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        async with self._lock:
            return await body(self._conn())

    @staticmethod
    async def _votes_for(db: aiosqlite.Connection, ids: list[str]) -> dict[str, list[Vote]]:
        out: dict[str, list[Vote]] = {i: [] for i in ids}
        if not ids:
            return out
        rows = await db.execute_fetchall(
            f"SELECT {VOTE_COLUMNS} FROM votes "
            "WHERE approval_id IN (SELECT value FROM json_each(?)) ORDER BY at, rowid",
            (dumps(ids),),
        )
        for r in rows:
            out[r["approval_id"]].append(vote_from_row(r))
        return out

    async def _load(self, db: aiosqlite.Connection, rows: Iterable[aiosqlite.Row]) -> list[Approval]:
        rows = list(rows)
        votes = await self._votes_for(db, [r["id"] for r in rows])
        return [approval_from_row(r, votes[r["id"]]) for r in rows]

    async def _get(self, db: aiosqlite.Connection, approval_id: str) -> Approval | None:
        rows = await db.execute_fetchall(
            f"SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = ?",
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
            # An identical call already waiting, or approved and not yet used (an operator who
            # approved it between the caller's consume_matching and now): that one, not a new one.
            existing = await db.execute_fetchall(
                f"SELECT {APPROVAL_COLUMNS} FROM approvals WHERE principal = ? AND digest = ? "
                "AND (state = 'pending' OR (state = 'approved' AND expires_at > ?)) "
                "ORDER BY state = 'pending', created_at, id LIMIT 1",
                (approval.principal, approval.digest, now),
            )
            if existing:
                return (await self._load(db, existing))[0], False
            rows = await db.execute_fetchall(
                "SELECT count(*) FROM approvals WHERE principal = ? AND state = 'pending'",
                (approval.principal,),
            )
            pending = int(next(iter(rows))[0])
            if pending >= max_pending_per_principal:
                raise cap_exceeded(approval.principal, pending, max_pending_per_principal)
            await db.execute(
                f"INSERT INTO approvals ({APPROVAL_COLUMNS}) "
                "VALUES (?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, ?, ?)",
                new_approval_params(approval),
            )
            tx.changes.append(Change("created", approval_id=approval.id))
            created = await self._get(db, approval.id)
            if created is None:  # written just above, in this transaction
                raise vanished()
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
                f"SELECT {APPROVAL_COLUMNS} FROM approvals {where} "
                "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                (*params, max(0, limit), max(0, offset)),
            )
            return await self._load(db, rows)

        return await self._read(body)

    async def count(self, *, state: str | None = None) -> int:
        where, params = _state_filter(state)

        async def body(db: aiosqlite.Connection) -> int:
            rows = await db.execute_fetchall(f"SELECT count(*) FROM approvals {where}", params)
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
        use_by: float | None = None,
    ) -> Approval:
        validate_verdict(verdict)

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
                    f"INSERT INTO votes ({VOTE_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                    (approval_id, operator, verdict, comment, now),
                )
            except aiosqlite.IntegrityError:
                raise already_voted(approval_id, operator) from None
            kind = decide(current, verdict)
            if kind == "approved":
                await db.execute(
                    "UPDATE approvals SET state = 'approved', decided_at = ?, grant_seconds = ?, "
                    "expires_at = COALESCE(?, expires_at) WHERE id = ?",
                    (now, grant_seconds, use_by, approval_id),
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
                raise vanished()
            return updated

        return await self._write(body)

    async def consume(self, approval_id: str, *, now: float) -> Approval | None:
        async def body(db: aiosqlite.Connection, tx: Tx) -> Approval | None:
            rows = await db.execute_fetchall(
                "UPDATE approvals SET state = 'consumed', consumed_at = ? "
                f"WHERE id = ? AND state = 'approved' AND expires_at > ? RETURNING {APPROVAL_COLUMNS}",
                (now, approval_id, now),
            )
            loaded = record(tx, "consumed", await self._load(db, rows))
            return loaded[0] if loaded else None

        return await self._write(body)

    async def consume_matching(self, principal: str, digest: str, *, now: float) -> Approval | None:
        async def body(db: aiosqlite.Connection, tx: Tx) -> Approval | None:
            rows = await db.execute_fetchall(
                "UPDATE approvals SET state = 'consumed', consumed_at = ? "
                "WHERE id = (SELECT id FROM approvals WHERE principal = ? AND digest = ? "
                "AND state = 'approved' AND expires_at > ? ORDER BY created_at, id LIMIT 1) "
                f"AND state = 'approved' RETURNING {APPROVAL_COLUMNS}",
                (now, principal, digest, now),
            )
            loaded = record(tx, "consumed", await self._load(db, rows))
            return loaded[0] if loaded else None

        return await self._write(body)

    async def last_denied(self, principal: str, digest: str, *, since: float) -> Approval | None:
        async def body(db: aiosqlite.Connection) -> Approval | None:
            rows = await db.execute_fetchall(
                f"SELECT {APPROVAL_COLUMNS} FROM approvals WHERE principal = ? AND digest = ? "
                "AND state = 'denied' AND decided_at >= ? ORDER BY decided_at DESC, id DESC LIMIT 1",
                (principal, digest, since),
            )
            loaded = await self._load(db, rows)
            return loaded[0] if loaded else None

        return await self._read(body)

    async def expire_due(self, *, now: float) -> list[Approval]:
        async def body(db: aiosqlite.Connection, tx: Tx) -> list[Approval]:
            rows = await db.execute_fetchall(
                "UPDATE approvals SET state = 'expired', decided_at = COALESCE(decided_at, ?) "
                f"WHERE state IN ('pending', 'approved') AND expires_at <= ? RETURNING {APPROVAL_COLUMNS}",
                (now, now),
            )
            return record(
                tx, "expired", sorted(await self._load(db, rows), key=lambda a: (a.created_at, a.id))
            )

        return await self._write(body)

    # -- grants ------------------------------------------------------------------------------

    async def add_grant(self, grant: Grant) -> Grant:
        async def body(db: aiosqlite.Connection, tx: Tx) -> Grant:
            await db.execute(
                f"INSERT INTO grants ({GRANT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                grant_params(grant),
            )
            tx.changes.append(Change("grant", approval_id=grant.approval_id, grant_id=grant.id))
            return grant

        return await self._write(body)

    async def find_grant(self, principal: str, digest: str, *, now: float) -> Grant | None:
        async def body(db: aiosqlite.Connection, tx: Tx) -> Grant | None:
            rows = await db.execute_fetchall(
                "UPDATE grants SET uses = uses + 1 "
                "WHERE id = (SELECT id FROM grants WHERE principal = ? AND digest = ? "
                "AND revoked_at IS NULL AND expires_at > ? ORDER BY expires_at DESC, id LIMIT 1) "
                f"RETURNING {GRANT_COLUMNS}",
                (principal, digest, now),
            )
            return grant_from_row(next(iter(rows))) if rows else None

        return await self._write(body)

    async def list_grants(self, *, active_at: float | None = None) -> list[Grant]:
        async def body(db: aiosqlite.Connection) -> list[Grant]:
            if active_at is None:
                rows = await db.execute_fetchall(
                    f"SELECT {GRANT_COLUMNS} FROM grants ORDER BY created_at DESC, id DESC"
                )
            else:
                rows = await db.execute_fetchall(
                    f"SELECT {GRANT_COLUMNS} FROM grants "
                    "WHERE revoked_at IS NULL AND expires_at > ? ORDER BY created_at DESC, id DESC",
                    (active_at,),
                )
            return [grant_from_row(r) for r in rows]

        return await self._read(body)

    async def revoke_grant(self, grant_id: str, *, operator: str, now: float) -> Grant:
        async def body(db: aiosqlite.Connection, tx: Tx) -> Grant:
            rows = await db.execute_fetchall(
                "UPDATE grants SET revoked_at = ?, revoked_by = ? "
                f"WHERE id = ? AND revoked_at IS NULL RETURNING {GRANT_COLUMNS}",
                (now, operator, grant_id),
            )
            if not rows:
                exists = await db.execute_fetchall("SELECT 1 FROM grants WHERE id = ?", (grant_id,))
                if not exists:
                    raise NotFound(f"no grant {grant_id}")
                raise already_revoked(grant_id)
            grant = grant_from_row(next(iter(rows)))
            tx.changes.append(
                Change(
                    "revoked", approval_id=grant.approval_id, grant_id=grant.id, extra={"operator": operator}
                )
            )
            return grant

        return await self._write(body)

    # -- MCP session owners (mcp_sessions.McpSessions) ----------------------------------------

    async def bind_session(self, key: str, upstream: str, issuer: str, subject: str, *, now: float) -> None:
        async def body(db: aiosqlite.Connection, tx: Tx) -> None:
            await db.execute(
                "INSERT INTO mcp_sessions (key, upstream, issuer, subject, created_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (key) DO NOTHING",
                (key, upstream, issuer, subject, now),
            )

        await self._write(body)

    async def session_owner(self, key: str) -> tuple[str, str] | None:
        async def body(db: aiosqlite.Connection) -> tuple[str, str] | None:
            async with db.execute("SELECT issuer, subject FROM mcp_sessions WHERE key = ?", (key,)) as cur:
                row = await cur.fetchone()
            return None if row is None else (str(row[0]), str(row[1]))

        return await self._read(body)

    async def forget_session(self, key: str) -> None:
        async def body(db: aiosqlite.Connection, tx: Tx) -> None:
            await db.execute("DELETE FROM mcp_sessions WHERE key = ?", (key,))

        await self._write(body)

    # -- tool definition pins (tool_pins.ToolPinStore) ----------------------------------------

    async def load_tool_pins(self) -> list[ToolPin]:
        async def body(db: aiosqlite.Connection) -> list[ToolPin]:
            async with db.execute(f"SELECT {PIN_COLUMNS} FROM tool_pins") as cur:
                return [pin_from_row(tuple(row)) for row in await cur.fetchall()]

        return await self._read(body)

    async def save_tool_pin(self, pin: ToolPin) -> None:
        async def body(db: aiosqlite.Connection, tx: Tx) -> None:
            await db.execute(
                f"INSERT OR REPLACE INTO tool_pins ({PIN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                pin_row(pin),
            )

        await self._write(body)


def _state_filter(state: str | None) -> tuple[str, tuple[str, ...]]:
    if state is None:
        return "", ()
    return "WHERE state = ?", (str(validate_state(state)),)
