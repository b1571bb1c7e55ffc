"""The written-code store on SQLite: ``written_code.sqlite3`` in the data folder."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection
from pathlib import Path

import aiosqlite

from ..errors import WrittenCodeUnavailable
from ..storage.sqlite import immediate, open_sqlite
from .records import COLUMNS, LIMIT, Trees, WrittenRecord, merged, record_from_row, tree_pairs

_SCHEMA = """
CREATE TABLE IF NOT EXISTS written_code (
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    path TEXT NOT NULL,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    imports TEXT NOT NULL,
    decision_id TEXT NOT NULL,
    written_at REAL NOT NULL,
    PRIMARY KEY (issuer, subject, path)
)
"""


class SqliteWrittenCodeStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        if self._db is None:
            self._db = await open_sqlite(self.path, _SCHEMA)

    async def close(self) -> None:
        async with self._lock:
            if self._db is not None:
                db, self._db = self._db, None
                await db.close()

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise WrittenCodeUnavailable("the written-code store is not open")
        return self._db

    async def put(self, record: WrittenRecord) -> None:
        async with self._lock:
            db = self._conn()
            async with immediate(db):
                await db.execute(
                    f"INSERT OR REPLACE INTO written_code ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                    record.row(),
                )

    async def merge(self, record: WrittenRecord) -> None:
        async with self._lock:
            db = self._conn()
            async with immediate(db):  # the write lock: no other writer between read and write
                rows = await db.execute_fetchall(
                    f"SELECT {COLUMNS} FROM written_code WHERE issuer = ? AND subject = ? AND path = ?",
                    (record.issuer, record.subject, record.path),
                )
                old = record_from_row(tuple(next(iter(rows)))) if rows else None
                await db.execute(
                    f"INSERT OR REPLACE INTO written_code ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                    merged(old, record).row(),
                )

    async def forget(self, issuer: str, subject: str, path: str) -> None:
        async with self._lock:
            db = self._conn()
            async with immediate(db):
                await db.execute(
                    "DELETE FROM written_code WHERE issuer = ? AND subject = ? AND path = ?",
                    (issuer, subject, path),
                )

    async def find(
        self, issuer: str, subject: str, paths: Collection[str], trees: Trees
    ) -> list[WrittenRecord]:
        async with self._lock:
            rows = await self._conn().execute_fetchall(
                # json_each has a column named path too: the table's columns are qualified.
                # A tree is [prefix, kind] pairs: a record of that kind whose path starts with it.
                f"SELECT {COLUMNS} FROM written_code AS w WHERE w.issuer = ? AND w.subject = ? AND ("
                "w.path IN (SELECT value FROM json_each(?)) OR EXISTS ("
                "SELECT 1 FROM json_each(?) AS t WHERE w.kind = json_extract(t.value, '$[1]') AND "
                "substr(w.path, 1, length(json_extract(t.value, '$[0]'))) = json_extract(t.value, '$[0]')))"
                " ORDER BY w.path LIMIT ?",
                (issuer, subject, json.dumps(sorted(paths)), json.dumps(tree_pairs(trees)), LIMIT + 1),
            )
        return [record_from_row(tuple(r)) for r in rows]
