"""The audit sink on SQLite: ``audit.sqlite3`` in the data folder (a file of its own, so the audit
writer never queues behind the approval store's transactions).

One table, ``audit_records (chain_id, seq, time, prev_hash, hash, body)`` with primary key
``(chain_id, seq)``; ``body`` is the record's canonical JSON, stored as the exact text that was
hashed, so verifying a row is one SHA-256 over stored bytes (no JSON parsing).

Durability as in the approval store: WAL journal, ``synchronous=FULL``; a batch is one
``BEGIN IMMEDIATE`` transaction, so a committed batch survives a crash, and a second process on
the same file queues for the write lock instead of racing. Reads and writes share one
connection guarded by one lock, so a read never sees a batch half written.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiosqlite

from ..errors import GatekeeperError
from .record import GENESIS_HASH, AuditRecord, RawRow, plan_append

FILE_NAME = "audit.sqlite3"
CHUNK = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_records (
    chain_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    time REAL NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (chain_id, seq)
);
CREATE INDEX IF NOT EXISTS audit_records_time ON audit_records (chain_id, time, seq)
"""


class SqliteAuditSink:
    """``AuditSink`` on one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        if self._db is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            await db.execute("PRAGMA busy_timeout = 10000")
            mode = await db.execute_fetchall("PRAGMA journal_mode = WAL")
            if str(next(iter(mode))[0]).lower() != "wal":
                raise GatekeeperError(f"could not put {self.path} in WAL mode", code="store_error")
            await db.execute("PRAGMA synchronous = FULL")
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
        async with self._lock:
            if self._db is not None:
                db, self._db = self._db, None
                await db.close()

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise GatekeeperError("the audit sink is not open", code="store_closed")
        return self._db

    async def head(self, chain_id: str) -> tuple[int, str]:
        async with self._lock:
            rows = list(
                await self._conn().execute_fetchall(
                    "SELECT seq, hash FROM audit_records WHERE chain_id = ? ORDER BY seq DESC LIMIT 1",
                    (chain_id,),
                )
            )
        if not rows:
            return 0, GENESIS_HASH
        return int(rows[0][0]), str(rows[0][1])

    async def write(self, records: Sequence[AuditRecord], bodies: Sequence[str] | None = None) -> None:
        if not records:
            return
        chain = records[0].chain_id
        if chain is None or any(r.chain_id != chain for r in records):
            raise ValueError("a batch must be of one chain, with chain_id set")
        texts = list(bodies) if bodies is not None else [r.canonical() for r in records]
        async with self._lock:
            # Shielded: a batch once begun always ends in COMMIT or ROLLBACK.
            await asyncio.shield(self._write(chain, records, texts))

    async def _write(self, chain: str, records: Sequence[AuditRecord], texts: list[str]) -> None:
        db = self._conn()
        await db.execute("BEGIN IMMEDIATE")
        try:
            rows = list(
                await db.execute_fetchall(
                    "SELECT seq, hash FROM audit_records WHERE chain_id = ? ORDER BY seq DESC LIMIT 1",
                    (chain,),
                )
            )
            head_seq, head_hash = (int(rows[0][0]), str(rows[0][1])) if rows else (0, GENESIS_HASH)
            stored: dict[int, str] = {}
            if head_seq >= records[0].seq:
                found = await db.execute_fetchall(
                    "SELECT seq, hash FROM audit_records WHERE chain_id = ? AND seq BETWEEN ? AND ?",
                    (chain, records[0].seq, records[-1].seq),
                )
                stored = {int(r[0]): str(r[1]) for r in found}
            skip = plan_append(records, head_seq, head_hash, stored)
            await db.executemany(
                "INSERT INTO audit_records (chain_id, seq, time, prev_hash, hash, body) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (chain, r.seq, r.time, r.prev_hash, r.hash, text)
                    for r, text in zip(records[skip:], texts[skip:], strict=True)
                ],
            )
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        await db.execute("COMMIT")

    async def chains(self) -> list[str]:
        async with self._lock:
            rows = await self._conn().execute_fetchall(
                "SELECT DISTINCT chain_id FROM audit_records ORDER BY chain_id"
            )
        return [str(r[0]) for r in rows]

    async def _bounds(
        self, chain: str, since: float | None, until: float | None, after_seq: int
    ) -> tuple[int, int | None]:
        """The contiguous seq range (exclusive low, inclusive high) for a time window: from the
        first record at or after ``since`` to the last one before ``until``."""
        low, high = after_seq, None
        async with self._lock:
            db = self._conn()
            if since is not None:
                rows = list(
                    await db.execute_fetchall(
                        "SELECT min(seq) FROM audit_records WHERE chain_id = ? AND time >= ?", (chain, since)
                    )
                )
                first = rows[0][0]
                low = max(low, int(first) - 1) if first is not None else 2**62
            if until is not None:
                rows = list(
                    await db.execute_fetchall(
                        "SELECT max(seq) FROM audit_records WHERE chain_id = ? AND time < ?", (chain, until)
                    )
                )
                high = int(rows[0][0]) if rows[0][0] is not None else 0
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
        chains = [chain_id] if chain_id is not None else await self.chains()
        for chain in chains:
            low, high = await self._bounds(chain, since, until, after_seq)
            limit = high if high is not None else 2**62
            while low < limit:
                async with self._lock:
                    rows = await self._conn().execute_fetchall(
                        "SELECT chain_id, seq, prev_hash, hash, body FROM audit_records "
                        "WHERE chain_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                        (chain, low, limit, chunk),
                    )
                batch: list[RawRow] = [(r[0], r[1], r[2], r[3], r[4]) for r in rows]
                if not batch:
                    break
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


def record_from_row(row: RawRow) -> AuditRecord:
    """Rebuild an ``AuditRecord`` from a stored row (body text plus the hash column)."""
    data = json.loads(row[4])
    data["hash"] = row[3]
    return AuditRecord.from_json(data)
