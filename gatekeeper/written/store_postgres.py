"""The written-code store on PostgreSQL: the ``written_code`` table in the schema every replica shares."""

from __future__ import annotations

import json
from collections.abc import Collection

import asyncpg

from ..errors import WrittenCodeUnavailable
from ..storage.postgres import advisory_xact_lock, check_schema, open_pool
from .records import COLUMNS, LIMIT, Trees, WrittenRecord, merged, record_from_row, tree_pairs

_DDL = """
CREATE TABLE IF NOT EXISTS written_code (
    issuer text NOT NULL,
    subject text NOT NULL,
    path text NOT NULL,
    kind text NOT NULL,
    sha256 text NOT NULL,
    capabilities text NOT NULL,
    imports text NOT NULL,
    decision_id text NOT NULL,
    written_at double precision NOT NULL,
    PRIMARY KEY (issuer, subject, path)
);
"""


_UPSERT = (
    f"INSERT INTO written_code ({COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) "
    "ON CONFLICT (issuer, subject, path) DO UPDATE SET kind = EXCLUDED.kind, sha256 = EXCLUDED.sha256, "
    "capabilities = EXCLUDED.capabilities, imports = EXCLUDED.imports, "
    "decision_id = EXCLUDED.decision_id, written_at = EXCLUDED.written_at"
)


class PostgresWrittenCodeStore:
    def __init__(self, dsn: str, *, schema: str = "gatekeeper", pool_size: int = 4) -> None:
        self.dsn = dsn
        self.schema = check_schema(schema, "written-code store")
        self._pool_size = pool_size
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None

    async def open(self) -> None:
        if self._pool is None:
            self._pool = await open_pool(
                self.dsn,
                self.schema,
                _DDL,
                max_size=self._pool_size,
                application_name="gatekeeper-written-code",
            )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    def _require(self) -> asyncpg.Pool[asyncpg.Record]:
        if self._pool is None:
            raise WrittenCodeUnavailable("the written-code store is not open")
        return self._pool

    async def put(self, record: WrittenRecord) -> None:
        await self._require().execute(_UPSERT, *record.row())

    async def merge(self, record: WrittenRecord) -> None:
        async with self._require().acquire() as conn, conn.transaction():
            # One writer per (principal, path) at a time, across replicas, also for a new row.
            await advisory_xact_lock(
                conn, "gatekeeper-written:" + json.dumps([record.issuer, record.subject, record.path])
            )
            row = await conn.fetchrow(
                f"SELECT {COLUMNS} FROM written_code WHERE issuer = $1 AND subject = $2 AND path = $3",
                record.issuer,
                record.subject,
                record.path,
            )
            new = merged(record_from_row(tuple(row)) if row is not None else None, record)
            await conn.execute(_UPSERT, *new.row())

    async def forget(self, issuer: str, subject: str, path: str) -> None:
        await self._require().execute(
            "DELETE FROM written_code WHERE issuer = $1 AND subject = $2 AND path = $3", issuer, subject, path
        )

    async def find(
        self, issuer: str, subject: str, paths: Collection[str], trees: Trees
    ) -> list[WrittenRecord]:
        pairs = tree_pairs(trees)
        rows = await self._require().fetch(
            # A tree is (prefix, kind) pairs: a record of that kind whose path starts with the prefix.
            f"SELECT {COLUMNS} FROM written_code WHERE issuer = $1 AND subject = $2 AND ("
            "path = ANY($3::text[]) OR EXISTS (SELECT 1 FROM unnest($4::text[], $5::text[]) "
            "AS t(prefix, kind) WHERE written_code.kind = t.kind AND "
            "left(path, length(t.prefix)) = t.prefix))"
            " ORDER BY path LIMIT $6",
            issuer,
            subject,
            sorted(paths),
            [prefix for prefix, _ in pairs],
            [kind for _, kind in pairs],
            LIMIT + 1,
        )
        return [record_from_row(tuple(r)) for r in rows]
