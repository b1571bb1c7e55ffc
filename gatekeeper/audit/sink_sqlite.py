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
from collections.abc import Sequence
from pathlib import Path

import aiosqlite

from gatekeeper import codes

from ..errors import GatekeeperError
from ..storage.sqlite import immediate, open_sqlite
from .checkpoints import Checkpoint
from .record import GENESIS_HASH, AuditRecord, RawRow, plan_append
from .sinks import CHUNK, SqlSink, batch_texts, record_from_row

__all__ = ["CHUNK", "FILE_NAME", "SqliteAuditSink", "record_from_row"]

FILE_NAME = "audit.sqlite3"

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
CREATE INDEX IF NOT EXISTS audit_records_time ON audit_records (chain_id, time, seq);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    chain_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    time REAL NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (chain_id, seq)
)
"""


class SqliteAuditSink(SqlSink):
    """``AuditSink`` on one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        if self._db is not None:
            return
        self._db = await open_sqlite(self.path, _SCHEMA)

    async def close(self) -> None:
        async with self._lock:
            if self._db is not None:
                db, self._db = self._db, None
                await db.close()

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise GatekeeperError("the audit sink is not open", code=codes.STORE_CLOSED)
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
        async with self._lock:
            # Shielded: a batch once begun always ends in COMMIT or ROLLBACK.
            await asyncio.shield(self._write(chain, records, texts, checkpoint, superseded))

    async def _write(
        self,
        chain: str,
        records: Sequence[AuditRecord],
        texts: list[str],
        checkpoint: Checkpoint | None,
        superseded: int | None,
    ) -> None:
        db = self._conn()
        async with immediate(db):
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
            if checkpoint is not None:
                await _store_checkpoint(db, chain, checkpoint, superseded)

    async def checkpoints(self, chain_id: str) -> list[Checkpoint]:
        async with self._lock:
            rows = await self._conn().execute_fetchall(
                "SELECT seq, hash, time, key_id, signature FROM audit_checkpoints "
                "WHERE chain_id = ? ORDER BY seq",
                (chain_id,),
            )
        return [Checkpoint(chain_id, int(r[0]), str(r[1]), float(r[2]), str(r[3]), str(r[4])) for r in rows]

    async def chains(self) -> list[str]:
        async with self._lock:
            rows = await self._conn().execute_fetchall(
                "SELECT DISTINCT chain_id FROM audit_records ORDER BY chain_id"
            )
        return [str(r[0]) for r in rows]

    async def _time_bounds(
        self, chain: str, since: float | None, until: float | None
    ) -> tuple[int | None, int | None]:
        first = last = None
        async with self._lock:
            db = self._conn()
            if since is not None:
                rows = list(
                    await db.execute_fetchall(
                        "SELECT min(seq) FROM audit_records WHERE chain_id = ? AND time >= ?", (chain, since)
                    )
                )
                first = None if rows[0][0] is None else int(rows[0][0])
            if until is not None:
                rows = list(
                    await db.execute_fetchall(
                        "SELECT max(seq) FROM audit_records WHERE chain_id = ? AND time < ?", (chain, until)
                    )
                )
                last = None if rows[0][0] is None else int(rows[0][0])
        return first, last

    async def _page(self, chain: str, low: int, high: int, chunk: int) -> list[RawRow]:
        async with self._lock:
            rows = await self._conn().execute_fetchall(
                "SELECT chain_id, seq, prev_hash, hash, body FROM audit_records "
                "WHERE chain_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                (chain, low, high, chunk),
            )
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


async def _store_checkpoint(
    db: aiosqlite.Connection, chain: str, checkpoint: Checkpoint, superseded: int | None
) -> None:
    """The batch's checkpoint, in place of the ``superseded`` one: that row becomes this one (one
    statement, one trip to the database thread, where a delete and an insert took two; ``OR
    REPLACE`` drops a row already at the new seq, as the insert did). Without a superseded row
    to take over, the checkpoint is inserted."""
    values = (checkpoint.seq, checkpoint.hash, checkpoint.time, checkpoint.key_id, checkpoint.signature)
    if superseded is not None:
        cursor = await db.execute(
            "UPDATE OR REPLACE audit_checkpoints SET seq = ?, hash = ?, time = ?, key_id = ?, signature = ? "
            "WHERE chain_id = ? AND seq = ?",
            (*values, chain, superseded),
        )
        if cursor.rowcount > 0:
            return
    await db.execute(
        "INSERT OR REPLACE INTO audit_checkpoints (chain_id, seq, hash, time, key_id, signature) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (chain, *values),
    )
