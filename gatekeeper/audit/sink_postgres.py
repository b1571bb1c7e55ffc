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

import re
from collections.abc import AsyncIterator, Sequence

import asyncpg

from ..errors import ConfigError, GatekeeperError
from .record import GENESIS_HASH, AuditRecord, RawRow, plan_append
from .sink_sqlite import CHUNK, record_from_row

TABLE = "audit_records"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

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
"""
_COLUMNS = ("chain_id", "seq", "time", "prev_hash", "hash", "body")


class PostgresAuditSink:
    """``AuditSink`` on PostgreSQL."""

    def __init__(self, dsn: str, *, schema: str = "gatekeeper", pool_size: int = 4) -> None:
        if not _SCHEMA_NAME.match(schema):
            raise ConfigError(
                f"audit schema {schema!r} must be a lowercase SQL identifier "
                "(letters, digits, underscores; at most 63)"
            )
        self.dsn = dsn
        self.schema = schema
        self.location = f"{schema}.{TABLE}"
        self._pool_size = pool_size
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None

    async def open(self) -> None:
        if self._pool is not None:
            return
        conn = await asyncpg.connect(self.dsn)
        try:
            async with conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"gatekeeper-ddl:{self.schema}"
                )
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                await conn.execute(f'SET LOCAL search_path TO "{self.schema}"')
                await conn.execute(_DDL)
        finally:
            await conn.close()
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=1,
            max_size=self._pool_size,
            server_settings={"search_path": self.schema, "application_name": "gatekeeper-audit"},
        )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    def _require(self) -> asyncpg.Pool[asyncpg.Record]:
        if self._pool is None:
            raise GatekeeperError("the audit sink is not open", code="store_closed")
        return self._pool

    async def head(self, chain_id: str) -> tuple[int, str]:
        row = await self._require().fetchrow(
            "SELECT seq, hash FROM audit_records WHERE chain_id = $1 ORDER BY seq DESC LIMIT 1", chain_id
        )
        if row is None:
            return 0, GENESIS_HASH
        return int(row["seq"]), str(row["hash"])

    async def write(self, records: Sequence[AuditRecord], bodies: Sequence[str] | None = None) -> None:
        if not records:
            return
        chain = records[0].chain_id
        if chain is None or any(r.chain_id != chain for r in records):
            raise ValueError("a batch must be of one chain, with chain_id set")
        texts = list(bodies) if bodies is not None else [r.canonical() for r in records]
        async with self._require().acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                f"gatekeeper-audit:{self.schema}:{chain}",
            )
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

    async def chains(self) -> list[str]:
        rows = await self._require().fetch("SELECT DISTINCT chain_id FROM audit_records ORDER BY chain_id")
        return [str(r["chain_id"]) for r in rows]

    async def _bounds(
        self, chain: str, since: float | None, until: float | None, after_seq: int
    ) -> tuple[int, int | None]:
        pool = self._require()
        low, high = after_seq, None
        if since is not None:
            first = await pool.fetchval(
                "SELECT min(seq) FROM audit_records WHERE chain_id = $1 AND time >= $2", chain, since
            )
            low = max(low, int(first) - 1) if first is not None else 2**62
        if until is not None:
            last = await pool.fetchval(
                "SELECT max(seq) FROM audit_records WHERE chain_id = $1 AND time < $2", chain, until
            )
            high = int(last) if last is not None else 0
        return low, high

    async def raw_chunks(
        self,
        *,
        chain_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        after_seq: int = 0,
        chunk: int = CHUNK,
    ) -> AsyncIterator[list[RawRow]]:
        pool = self._require()
        chains = [chain_id] if chain_id is not None else await self.chains()
        for chain in chains:
            low, high = await self._bounds(chain, since, until, after_seq)
            limit = high if high is not None else 2**62
            while low < limit:
                rows = await pool.fetch(
                    "SELECT chain_id, seq, prev_hash, hash, body FROM audit_records "
                    "WHERE chain_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4",
                    chain,
                    low,
                    limit,
                    chunk,
                )
                if not rows:
                    break
                batch: list[RawRow] = [(r[0], r[1], r[2], r[3], r[4]) for r in rows]
                yield batch
                low = batch[-1][1]
                if len(batch) < chunk:
                    break

    async def records(
        self,
        *,
        chain_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        after_seq: int = 0,
    ) -> AsyncIterator[AuditRecord]:
        async for batch in self.raw_chunks(chain_id=chain_id, since=since, until=until, after_seq=after_seq):
            for row in batch:
                yield record_from_row(row)
