"""The audit sink on PostgreSQL: one table, ``audit_records``, in the configured schema (the
approval store's, ``approvals.postgres_schema``), shared by every replica.

Each replica writes its own chain (its ``chain_id``), so replicas never contend for one head.
A batch is one transaction that first takes a transaction-scoped advisory lock on
(schema, chain): should two processes be misconfigured with the same chain id, their batches are
serialised and the second one gets ``ChainConflict`` (its writer re-chains) instead of forking
the chain. Rows go in with ``COPY``. ``body`` is ``text`` (not ``jsonb``, which would re-order and
re-space it): it is the exact canonical JSON that was hashed.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from gatekeeper import codes

from ..errors import GatekeeperError
from ..storage.postgres import advisory_xact_lock, check_schema, open_pool
from .checkpoints import Checkpoint
from .record import GENESIS_HASH, AuditRecord, RawRow, plan_append
from .sinks import SqlSink, batch_texts

TABLE = "audit_records"

_DDL = """
CREATE TABLE IF NOT EXISTS audit_records (
    chain_id text NOT NULL,
    seq bigint NOT NULL,
    time double precision NOT NULL,
    prev_hash text NOT NULL,
    hash text NOT NULL,
    body text NOT NULL,
    PRIMARY KEY (chain_id, seq)
);
CREATE INDEX IF NOT EXISTS audit_records_time ON audit_records (chain_id, time, seq);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    chain_id text NOT NULL,
    seq bigint NOT NULL,
    hash text NOT NULL,
    time double precision NOT NULL,
    key_id text NOT NULL,
    signature text NOT NULL,
    PRIMARY KEY (chain_id, seq)
);
"""
_COLUMNS = ("chain_id", "seq", "time", "prev_hash", "hash", "body")


class PostgresAuditSink(SqlSink):
    """``AuditSink`` on PostgreSQL."""

    def __init__(self, dsn: str, *, schema: str = "gatekeeper", pool_size: int = 4) -> None:
        self.dsn = dsn
        self.schema = check_schema(schema, "audit")
        self.location = f"{schema}.{TABLE}"
        self._pool_size = pool_size
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None

    async def open(self) -> None:
        if self._pool is not None:
            return
        self._pool = await open_pool(
            self.dsn, self.schema, _DDL, max_size=self._pool_size, application_name="gatekeeper-audit"
        )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    def _require(self) -> asyncpg.Pool[asyncpg.Record]:
        if self._pool is None:
            raise GatekeeperError("the audit sink is not open", code=codes.STORE_CLOSED)
        return self._pool

    async def head(self, chain_id: str) -> tuple[int, str]:
        row = await self._require().fetchrow(
            "SELECT seq, hash FROM audit_records WHERE chain_id = $1 ORDER BY seq DESC LIMIT 1", chain_id
        )
        if row is None:
            return 0, GENESIS_HASH
        return int(row["seq"]), str(row["hash"])

    async def write(
        self,
        records: Sequence[AuditRecord],
        bodies: Sequence[str] | None = None,
        checkpoint: Checkpoint | None = None,
        superseded: int | None = None,
    ) -> None:
        if not records:
            return
        chain, texts = batch_texts(records, bodies)
        async with self._require().acquire() as conn, conn.transaction():
            await advisory_xact_lock(conn, f"gatekeeper-audit:{self.schema}:{chain}")
            row = await conn.fetchrow(
                "SELECT seq, hash FROM audit_records WHERE chain_id = $1 ORDER BY seq DESC LIMIT 1", chain
            )
            head_seq, head_hash = (int(row["seq"]), str(row["hash"])) if row else (0, GENESIS_HASH)
            stored: dict[int, str] = {}
            if head_seq >= records[0].seq:
                found = await conn.fetch(
                    "SELECT seq, hash FROM audit_records WHERE chain_id = $1 AND seq BETWEEN $2 AND $3",
                    chain,
                    records[0].seq,
                    records[-1].seq,
                )
                stored = {int(r["seq"]): str(r["hash"]) for r in found}
            skip = plan_append(records, head_seq, head_hash, stored)
            if skip < len(records):
                await conn.copy_records_to_table(
                    TABLE,
                    schema_name=self.schema,
                    columns=_COLUMNS,
                    records=[
                        (chain, r.seq, r.time, r.prev_hash, r.hash, text)
                        for r, text in zip(records[skip:], texts[skip:], strict=True)
                    ],
                )
            if checkpoint is not None:
                if superseded is not None:
                    await conn.execute(
                        "DELETE FROM audit_checkpoints WHERE chain_id = $1 AND seq = $2", chain, superseded
                    )
                await conn.execute(
                    "INSERT INTO audit_checkpoints (chain_id, seq, hash, time, key_id, signature) "
                    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (chain_id, seq) DO UPDATE SET "
                    "hash = EXCLUDED.hash, time = EXCLUDED.time, key_id = EXCLUDED.key_id, "
                    "signature = EXCLUDED.signature",
                    chain,
                    checkpoint.seq,
                    checkpoint.hash,
                    checkpoint.time,
                    checkpoint.key_id,
                    checkpoint.signature,
                )

    async def checkpoints(self, chain_id: str) -> list[Checkpoint]:
        rows = await self._require().fetch(
            "SELECT seq, hash, time, key_id, signature FROM audit_checkpoints "
            "WHERE chain_id = $1 ORDER BY seq",
            chain_id,
        )
        return [
            Checkpoint(
                chain_id,
                int(r["seq"]),
                str(r["hash"]),
                float(r["time"]),
                str(r["key_id"]),
                str(r["signature"]),
            )
            for r in rows
        ]

    async def chains(self) -> list[str]:
        rows = await self._require().fetch("SELECT DISTINCT chain_id FROM audit_records ORDER BY chain_id")
        return [str(r["chain_id"]) for r in rows]

    async def _time_bounds(
        self, chain: str, since: float | None, until: float | None
    ) -> tuple[int | None, int | None]:
        pool = self._require()
        first = last = None
        if since is not None:
            value = await pool.fetchval(
                "SELECT min(seq) FROM audit_records WHERE chain_id = $1 AND time >= $2", chain, since
            )
            first = None if value is None else int(value)
        if until is not None:
            value = await pool.fetchval(
                "SELECT max(seq) FROM audit_records WHERE chain_id = $1 AND time < $2", chain, until
            )
            last = None if value is None else int(value)
        return first, last

    async def _page(self, chain: str, low: int, high: int, chunk: int) -> list[RawRow]:
        rows = await self._require().fetch(
            "SELECT chain_id, seq, prev_hash, hash, body FROM audit_records "
            "WHERE chain_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4",
            chain,
            low,
            high,
            chunk,
        )
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]
