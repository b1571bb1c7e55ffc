"""The approval store on PostgreSQL, for fleets: every replica shares one queue.

Atomicity: each state change is one transaction on a pooled connection (READ COMMITTED).
Races are settled by the database, not by this process:

- creating: a transaction-scoped advisory lock per (schema, principal) serialises the
  dedupe-and-cap check; the partial unique index (one pending approval per principal and
  digest) backs it up;
- voting: ``SELECT ... FOR UPDATE`` on the approval, so two operators' votes are counted in
  turn and the quorum is reached once; ``UNIQUE (approval_id, operator)`` refuses double votes;
- consuming, expiring, using and revoking grants: conditional ``UPDATE ... RETURNING``, which
  re-checks its condition after waiting for a row lock, so each transition happens once.

Change notification: every committed change also runs ``pg_notify('gatekeeper_approvals',
{kind, approval_id, grant_id, schema, origin, extra})`` inside its transaction, so it is
delivered only if (and when) the transaction commits. One dedicated connection per store holds
``LISTEN gatekeeper_approvals`` and turns other replicas' notifications into ``Change`` objects
for subscribers; this replica's own changes are handed to its subscribers directly after
commit (its own notifications are recognised by ``origin`` and skipped). Notifications from
another schema (another queue on the same database) are ignored.

If the listening connection drops, it is re-established with backoff and the loss is logged.
Notifications sent while it is down are not replayed — PostgreSQL does not queue them for a
session that is gone. Nothing important is lost that way: the queue itself is in the tables,
and whoever waits on an approval (a held call, the event stream) also re-reads it from the
store at its own deadline, so a missed push only delays a waiter, never misleads it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from gatekeeper import codes

from ..errors import GatekeeperError, NotFound
from ..mcp_sessions import SESSIONS_SQL
from ..storage.postgres import advisory_xact_lock, check_schema, open_pool
from ..tool_pins import PIN_COLUMNS, TOOL_PINS_SQL, ToolPin, pin_from_row, pin_row
from .models import Approval, Change, Grant, State, Vote
from .rows import (
    APPROVAL_COLUMNS,
    GRANT_COLUMNS,
    VOTE_COLUMNS,
    approval_from_row,
    grant_from_row,
    grant_params,
    new_approval_params,
    vote_from_row,
)
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
    log,
    record,
    validate_state,
    validate_verdict,
    vanished,
)

T = TypeVar("T")
Conn: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"

CHANNEL = "gatekeeper_approvals"
_MAX_PAYLOAD = 7900  # PostgreSQL refuses NOTIFY payloads of 8000 bytes or more
_KEEPALIVE_SECONDS = 15.0

_DDL = (
    """
CREATE TABLE IF NOT EXISTS approvals (
    id text PRIMARY KEY,
    state text NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'expired', 'consumed')),
    principal text NOT NULL,
    roles json NOT NULL,
    tool text NOT NULL,
    arguments json NOT NULL,
    digest text NOT NULL,
    capabilities json NOT NULL,
    rule text,
    reason text NOT NULL,
    created_at double precision NOT NULL,
    expires_at double precision NOT NULL,
    required_approvals integer NOT NULL CHECK (required_approvals >= 1),
    decided_at double precision,
    consumed_at double precision,
    grant_seconds double precision,
    capability text,
    quorum_rule text
);
ALTER TABLE approvals ADD COLUMN IF NOT EXISTS capability text;
ALTER TABLE approvals ADD COLUMN IF NOT EXISTS quorum_rule text;
CREATE INDEX IF NOT EXISTS approvals_principal_digest_state ON approvals (principal, digest, state);
CREATE INDEX IF NOT EXISTS approvals_state_created ON approvals (state, created_at);
CREATE INDEX IF NOT EXISTS approvals_state_expires ON approvals (state, expires_at);
CREATE INDEX IF NOT EXISTS approvals_created ON approvals (created_at);
CREATE UNIQUE INDEX IF NOT EXISTS approvals_one_pending ON approvals (principal, digest)
    WHERE state = 'pending';

CREATE TABLE IF NOT EXISTS votes (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    approval_id text NOT NULL REFERENCES approvals (id) ON DELETE CASCADE,
    operator text NOT NULL,
    verdict text NOT NULL CHECK (verdict IN ('approve', 'deny')),
    comment text NOT NULL,
    at double precision NOT NULL,
    UNIQUE (approval_id, operator)
);

CREATE TABLE IF NOT EXISTS grants (
    id text PRIMARY KEY,
    principal text NOT NULL,
    tool text NOT NULL,
    digest text NOT NULL,
    approval_id text,
    granted_by text NOT NULL,
    comment text NOT NULL,
    created_at double precision NOT NULL,
    expires_at double precision NOT NULL,
    revoked_at double precision,
    revoked_by text,
    uses integer NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS grants_principal_digest ON grants (principal, digest, expires_at);
CREATE INDEX IF NOT EXISTS grants_created ON grants (created_at);
"""
    + SESSIONS_SQL
    + TOOL_PINS_SQL
)


class PostgresApprovalStore(ChangeFeed):
    """``ApprovalStore`` on PostgreSQL; subscribers see the changes of every replica."""

    def __init__(self, dsn: str, *, schema: str = "gatekeeper", pool_size: int = 10) -> None:
        check_schema(schema, "approval store")
        super().__init__()
        self.dsn = dsn
        self.schema = schema
        self._pool_size = pool_size
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._origin = secrets.token_hex(8)  # tells this store's own notifications apart
        self._listener: asyncpg.Connection[asyncpg.Record] | None = None
        self._listener_task: asyncio.Task[None] | None = None
        self._closing = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None:
            return
        self._closing = False
        self._pool = await open_pool(
            self.dsn, self.schema, _DDL, max_size=self._pool_size, application_name="gatekeeper-approvals"
        )
        ready = asyncio.Event()
        self._listener_task = asyncio.create_task(self._listen(ready), name="gatekeeper-approvals-listener")
        try:
            # Wait for LISTEN to be in place, so a subscriber added now misses nothing from here on.
            await asyncio.wait_for(ready.wait(), timeout=10)
        except TimeoutError:
            await self.close()
            raise GatekeeperError(
                "could not start listening for approval changes on PostgreSQL", code=codes.STORE_UNAVAILABLE
            ) from None

    async def close(self) -> None:
        self._closing = True
        if self._listener_task is not None:
            task, self._listener_task = self._listener_task, None
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._listener is not None:
            conn, self._listener = self._listener, None
            await _close_quietly(conn)
        await self._drain_writes()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @property
    def listener_pid(self) -> int | None:
        """The server process id of the LISTEN connection, while it is connected."""
        conn = self._listener
        return None if conn is None or conn.is_closed() else conn.get_server_pid()

    # -- notifications -----------------------------------------------------------------------

    async def _listen(self, ready: asyncio.Event) -> None:
        """Hold ``LISTEN`` on a dedicated connection; reconnect with backoff when it drops."""
        delay = 0.05
        lost_before = False
        while not self._closing:
            try:
                conn = await asyncpg.connect(
                    self.dsn, server_settings={"application_name": "gatekeeper-approvals-listener"}
                )
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("approval_listener_connect_failed", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
            try:
                await conn.add_listener(CHANNEL, self._on_notify)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("approval_listener_listen_failed", error=str(exc), retry_in=delay)
                await _close_quietly(conn)
                await asyncio.sleep(delay)
                continue
            self._listener = conn
            if lost_before:
                log.info("approval_listener_reconnected", schema=self.schema)
            ready.set()
            delay = 0.05
            try:
                await self._watch(conn, lost)
            finally:
                self._listener = None
                await _close_quietly(conn)
            if not self._closing:
                lost_before = True
                log.warning(
                    "approval_listener_lost",
                    schema=self.schema,
                    detail="reconnecting; waiters re-read the store at their deadline meanwhile",
                )

    async def _watch(self, conn: asyncpg.Connection[asyncpg.Record], lost: asyncio.Event) -> None:
        """Return when the connection is gone (closed by the server, or not answering a ping)."""
        while not lost.is_set():
            try:
                await asyncio.wait_for(lost.wait(), timeout=_KEEPALIVE_SECONDS)
            except TimeoutError:
                try:
                    await conn.fetchval("SELECT 1", timeout=5)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                    return

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            data = json.loads(str(payload))
            if data.get("schema") != self.schema or data.get("origin") == self._origin:
                return
            change = Change(
                kind=str(data["kind"]),
                approval_id=data.get("approval_id"),
                grant_id=data.get("grant_id"),
                extra=dict(data.get("extra") or {}),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("approval_notification_unreadable", payload=str(payload)[:200])
            return
        self._publish([change])

    def _payload(self, change: Change) -> str:
        body = {
            "kind": change.kind,
            "approval_id": change.approval_id,
            "grant_id": change.grant_id,
            "schema": self.schema,
            "origin": self._origin,
            "extra": change.extra,
        }
        text = dumps(body)
        if len(text.encode()) > _MAX_PAYLOAD:
            body["extra"] = {}
            text = dumps(body)
        return text

    # -- plumbing ----------------------------------------------------------------------------

    def _require(self) -> asyncpg.Pool[asyncpg.Record]:
        if self._pool is None:
            raise GatekeeperError("the approval store is not open", code=codes.STORE_CLOSED)
        return self._pool

    async def _write(self, body: Callable[[Conn, Tx], Awaitable[T]]) -> T:
        """Run ``body`` in one transaction that also sends its notifications; publish after COMMIT.

        The transaction runs in its own task, shielded from the caller's cancellation, so it
        always ends in COMMIT or ROLLBACK, and its changes are announced.
        """
        return await self._shielded(self._transaction(body))

    async def _transaction(self, body: Callable[[Conn, Tx], Awaitable[T]]) -> T:
        tx = Tx()
        async with self._require().acquire() as conn, conn.transaction():
            result = await body(conn, tx)
            for change in tx.changes:
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, self._payload(change))
        self._publish(tx.changes)
        if tx.error is not None:
            raise tx.error
        return result

    @staticmethod
    async def _load(
        conn: Conn | asyncpg.Pool[asyncpg.Record], rows: Sequence[asyncpg.Record]
    ) -> list[Approval]:
        votes: dict[str, list[Vote]] = {r["id"]: [] for r in rows}
        if rows:
            for v in await conn.fetch(
                f"SELECT {VOTE_COLUMNS} FROM votes WHERE approval_id = ANY($1::text[]) ORDER BY at, seq",
                list(votes),
            ):
                votes[v["approval_id"]].append(vote_from_row(v))
        return [approval_from_row(r, votes[r["id"]]) for r in rows]

    async def _get(
        self, conn: Conn | asyncpg.Pool[asyncpg.Record], approval_id: str, *, lock: bool = False
    ) -> Approval | None:
        rows = await conn.fetch(
            f"SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1" + (" FOR UPDATE" if lock else ""),
            approval_id,
        )
        loaded = await self._load(conn, rows)
        return loaded[0] if loaded else None

    # -- approvals ---------------------------------------------------------------------------

    async def create_pending(
        self, approval: Approval, *, max_pending_per_principal: int
    ) -> tuple[Approval, bool]:
        if approval.state is not State.PENDING:
            raise ValueError("create_pending takes a pending approval")

        async def body(conn: Conn, tx: Tx) -> tuple[Approval, bool]:
            now = approval.created_at
            await advisory_xact_lock(conn, f"gatekeeper-pending:{self.schema}:{approval.principal}")
            stale = await conn.fetch(
                "UPDATE approvals SET state = 'expired', decided_at = $1 "
                "WHERE principal = $2 AND state = 'pending' AND expires_at <= $1 RETURNING id",
                now,
                approval.principal,
            )
            tx.changes.extend(Change("expired", approval_id=r["id"]) for r in stale)
            # An identical call already waiting, or approved and not yet used (an operator who
            # approved it between the caller's consume_matching and now): that one, not a new one.
            existing = await conn.fetch(
                f"SELECT {APPROVAL_COLUMNS} FROM approvals WHERE principal = $1 AND digest = $2 "
                "AND (state = 'pending' OR (state = 'approved' AND expires_at > $3)) "
                "ORDER BY state = 'pending', created_at, id LIMIT 1",
                approval.principal,
                approval.digest,
                now,
            )
            if existing:
                return (await self._load(conn, existing))[0], False
            pending = int(
                await conn.fetchval(
                    "SELECT count(*) FROM approvals WHERE principal = $1 AND state = 'pending'",
                    approval.principal,
                )
            )
            if pending >= max_pending_per_principal:
                raise cap_exceeded(approval.principal, pending, max_pending_per_principal)
            await conn.execute(
                f"INSERT INTO approvals ({APPROVAL_COLUMNS}) "
                "VALUES ($1, 'pending', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL, NULL, NULL, "
                "$13, $14)",
                *new_approval_params(approval),
            )
            tx.changes.append(Change("created", approval_id=approval.id))
            created = await self._get(conn, approval.id)
            if created is None:  # written just above, in this transaction
                raise vanished()
            return created, True

        return await self._write(body)

    async def get(self, approval_id: str) -> Approval | None:
        return await self._get(self._require(), approval_id)

    async def list_approvals(
        self, *, state: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[Approval]:
        pool = self._require()
        async with pool.acquire() as conn, conn.transaction(readonly=True, isolation="repeatable_read"):
            # one snapshot for the approvals and their votes
            if state is None:
                rows = await conn.fetch(
                    f"SELECT {APPROVAL_COLUMNS} FROM approvals "
                    "ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2",
                    max(0, limit),
                    max(0, offset),
                )
            else:
                rows = await conn.fetch(
                    f"SELECT {APPROVAL_COLUMNS} FROM approvals WHERE state = $1 "
                    "ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
                    str(validate_state(state)),
                    max(0, limit),
                    max(0, offset),
                )
            return await self._load(conn, rows)

    async def count(self, *, state: str | None = None) -> int:
        pool = self._require()
        if state is None:
            return int(await pool.fetchval("SELECT count(*) FROM approvals"))
        return int(
            await pool.fetchval("SELECT count(*) FROM approvals WHERE state = $1", str(validate_state(state)))
        )

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

        async def body(conn: Conn, tx: Tx) -> Approval:
            current = check_vote(await self._get(conn, approval_id, lock=True), approval_id, operator, now)
            if current.state is State.PENDING and now >= current.expires_at:
                await conn.execute(
                    "UPDATE approvals SET state = 'expired', decided_at = $1 WHERE id = $2", now, approval_id
                )
                tx.changes.append(Change("expired", approval_id=approval_id))
                tx.error = expired_error(approval_id)
                return current
            inserted = await conn.fetchval(
                f"INSERT INTO votes ({VOTE_COLUMNS}) VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT (approval_id, operator) DO NOTHING RETURNING seq",
                approval_id,
                operator,
                verdict,
                comment,
                now,
            )
            if inserted is None:
                raise already_voted(approval_id, operator)
            kind = decide(current, verdict)
            if kind == "approved":
                await conn.execute(
                    "UPDATE approvals SET state = 'approved', decided_at = $1, grant_seconds = $2, "
                    "expires_at = COALESCE($4, expires_at) WHERE id = $3",
                    now,
                    grant_seconds,
                    approval_id,
                    use_by,
                )
            elif kind == "denied":
                await conn.execute(
                    "UPDATE approvals SET state = 'denied', decided_at = $1 WHERE id = $2", now, approval_id
                )
            tx.changes.append(
                Change(kind, approval_id=approval_id, extra={"operator": operator, "verdict": verdict})
            )
            updated = await self._get(conn, approval_id)
            if updated is None:  # written just above, in this transaction
                raise vanished()
            return updated

        return await self._write(body)

    async def consume(self, approval_id: str, *, now: float) -> Approval | None:
        async def body(conn: Conn, tx: Tx) -> Approval | None:
            rows = await conn.fetch(
                "UPDATE approvals SET state = 'consumed', consumed_at = $1 "
                f"WHERE id = $2 AND state = 'approved' AND expires_at > $1 RETURNING {APPROVAL_COLUMNS}",
                now,
                approval_id,
            )
            loaded = record(tx, "consumed", await self._load(conn, rows))
            return loaded[0] if loaded else None

        return await self._write(body)

    async def consume_matching(self, principal: str, digest: str, *, now: float) -> Approval | None:
        async def body(conn: Conn, tx: Tx) -> Approval | None:
            # The outer state check is re-evaluated after any wait for the row lock, so of two
            # racing transactions only the first consumes; the second gets no row.
            rows = await conn.fetch(
                "UPDATE approvals SET state = 'consumed', consumed_at = $1 "
                "WHERE id = (SELECT id FROM approvals WHERE principal = $2 AND digest = $3 "
                "AND state = 'approved' AND expires_at > $1 ORDER BY created_at, id LIMIT 1 FOR UPDATE) "
                f"AND state = 'approved' AND expires_at > $1 RETURNING {APPROVAL_COLUMNS}",
                now,
                principal,
                digest,
            )
            loaded = record(tx, "consumed", await self._load(conn, rows))
            return loaded[0] if loaded else None

        return await self._write(body)

    async def last_denied(self, principal: str, digest: str, *, since: float) -> Approval | None:
        pool = self._require()
        async with pool.acquire() as conn, conn.transaction(readonly=True, isolation="repeatable_read"):
            rows = await conn.fetch(
                f"SELECT {APPROVAL_COLUMNS} FROM approvals WHERE principal = $1 AND digest = $2 "
                "AND state = 'denied' AND decided_at >= $3 ORDER BY decided_at DESC, id DESC LIMIT 1",
                principal,
                digest,
                since,
            )
            loaded = await self._load(conn, rows)
        return loaded[0] if loaded else None

    async def expire_due(self, *, now: float) -> list[Approval]:
        async def body(conn: Conn, tx: Tx) -> list[Approval]:
            rows = await conn.fetch(
                "UPDATE approvals SET state = 'expired', decided_at = COALESCE(decided_at, $1) "
                f"WHERE state IN ('pending', 'approved') AND expires_at <= $1 RETURNING {APPROVAL_COLUMNS}",
                now,
            )
            return record(
                tx, "expired", sorted(await self._load(conn, rows), key=lambda a: (a.created_at, a.id))
            )

        return await self._write(body)

    # -- grants ------------------------------------------------------------------------------

    async def add_grant(self, grant: Grant) -> Grant:
        async def body(conn: Conn, tx: Tx) -> Grant:
            await conn.execute(
                f"INSERT INTO grants ({GRANT_COLUMNS}) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                *grant_params(grant),
            )
            tx.changes.append(Change("grant", approval_id=grant.approval_id, grant_id=grant.id))
            return grant

        return await self._write(body)

    async def find_grant(self, principal: str, digest: str, *, now: float) -> Grant | None:
        async def body(conn: Conn, tx: Tx) -> Grant | None:
            row = await conn.fetchrow(
                "UPDATE grants SET uses = uses + 1 "
                "WHERE id = (SELECT id FROM grants WHERE principal = $1 AND digest = $2 "
                "AND revoked_at IS NULL AND expires_at > $3 ORDER BY expires_at DESC, id LIMIT 1 FOR UPDATE) "
                f"AND revoked_at IS NULL RETURNING {GRANT_COLUMNS}",
                principal,
                digest,
                now,
            )
            return None if row is None else grant_from_row(row)

        return await self._write(body)

    async def list_grants(self, *, active_at: float | None = None) -> list[Grant]:
        pool = self._require()
        if active_at is None:
            rows = await pool.fetch(f"SELECT {GRANT_COLUMNS} FROM grants ORDER BY created_at DESC, id DESC")
        else:
            rows = await pool.fetch(
                f"SELECT {GRANT_COLUMNS} FROM grants "
                "WHERE revoked_at IS NULL AND expires_at > $1 ORDER BY created_at DESC, id DESC",
                active_at,
            )
        return [grant_from_row(r) for r in rows]

    async def revoke_grant(self, grant_id: str, *, operator: str, now: float) -> Grant:
        async def body(conn: Conn, tx: Tx) -> Grant:
            row = await conn.fetchrow(
                "UPDATE grants SET revoked_at = $1, revoked_by = $2 "
                f"WHERE id = $3 AND revoked_at IS NULL RETURNING {GRANT_COLUMNS}",
                now,
                operator,
                grant_id,
            )
            if row is None:
                if await conn.fetchval("SELECT 1 FROM grants WHERE id = $1", grant_id) is None:
                    raise NotFound(f"no grant {grant_id}")
                raise already_revoked(grant_id)
            grant = grant_from_row(row)
            tx.changes.append(
                Change(
                    "revoked", approval_id=grant.approval_id, grant_id=grant.id, extra={"operator": operator}
                )
            )
            return grant

        return await self._write(body)

    # -- MCP session owners (mcp_sessions.McpSessions) ----------------------------------------

    async def bind_session(self, key: str, upstream: str, issuer: str, subject: str, *, now: float) -> None:
        await self._require().execute(
            "INSERT INTO mcp_sessions (key, upstream, issuer, subject, created_at)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO NOTHING",
            key,
            upstream,
            issuer,
            subject,
            now,
        )

    async def session_owner(self, key: str) -> tuple[str, str] | None:
        row = await self._require().fetchrow("SELECT issuer, subject FROM mcp_sessions WHERE key = $1", key)
        return None if row is None else (str(row["issuer"]), str(row["subject"]))

    async def forget_session(self, key: str) -> None:
        await self._require().execute("DELETE FROM mcp_sessions WHERE key = $1", key)

    # -- tool definition pins (tool_pins.ToolPinStore) ----------------------------------------

    async def load_tool_pins(self) -> list[ToolPin]:
        rows = await self._require().fetch(f"SELECT {PIN_COLUMNS} FROM tool_pins")
        return [pin_from_row(tuple(row)) for row in rows]

    async def save_tool_pin(self, pin: ToolPin) -> None:
        await self._require().execute(
            f"INSERT INTO tool_pins ({PIN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            " ON CONFLICT (upstream, tool) DO UPDATE SET pinned_digest = EXCLUDED.pinned_digest,"
            " pinned_definition = EXCLUDED.pinned_definition, seen_digest = EXCLUDED.seen_digest,"
            " seen_definition = EXCLUDED.seen_definition, flags = EXCLUDED.flags,"
            " seen_at = EXCLUDED.seen_at, approved_by = EXCLUDED.approved_by,"
            " approved_at = EXCLUDED.approved_at",
            *pin_row(pin),
        )


async def _close_quietly(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    if conn.is_closed():
        return
    try:
        await asyncio.wait_for(conn.close(), timeout=2)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        conn.terminate()
