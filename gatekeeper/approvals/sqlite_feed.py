"""Changes to a SQLite approval store made by other processes (workers, the CLI), seen here.

Every write transaction also appends its changes to ``approval_changes`` (same transaction,
so a change is in the table exactly when its state change committed). Each process polls
``PRAGMA data_version`` — a counter that moves only when *another* connection commits, and
costs no I/O — and, when it moved, reads the rows after the last one it saw and publishes
those written by other processes to its own subscribers. A call held in one worker therefore
resumes when an operator approves it through another, within one poll interval.

Rows older than ``RETAIN_SECONDS`` are pruned now and then: a process that was paused longer
than that re-reads every waiting approval anyway (its held calls also wake at their deadlines).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence

import aiosqlite

from .models import Change

SCHEMA = """
CREATE TABLE IF NOT EXISTS approval_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    approval_id TEXT,
    grant_id TEXT,
    extra TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS approval_changes_at ON approval_changes (at);
"""

RETAIN_SECONDS = 3600.0
PRUNE_EVERY_SECONDS = 60.0


class SqliteChangeLog:
    """One process's end of the shared change table: writes its changes, reads everyone else's."""

    def __init__(self) -> None:
        self.origin = secrets.token_hex(8)  # this process (this store instance)
        self._last_seq = 0
        self._data_version: int | None = None
        self._last_prune = time.monotonic()

    async def start(self, db: aiosqlite.Connection) -> None:
        """Remember where the table ends now: earlier changes are history, not news."""
        rows = await db.execute_fetchall("SELECT coalesce(max(seq), 0) FROM approval_changes")
        self._last_seq = int(next(iter(rows))[0])
        self._data_version = await _data_version(db)

    async def write(self, db: aiosqlite.Connection, changes: Sequence[Change]) -> None:
        """Inside the caller's write transaction."""
        if not changes:
            return
        now = time.time()
        await db.executemany(
            "INSERT INTO approval_changes (origin, at, kind, approval_id, grant_id, extra) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (self.origin, now, c.kind, c.approval_id, c.grant_id, json.dumps(c.extra, default=str))
                for c in changes
            ],
        )

    async def poll(self, db: aiosqlite.Connection) -> list[Change]:
        """The changes other processes committed since the last poll (oldest first)."""
        version = await _data_version(db)
        if version == self._data_version:
            return []
        self._data_version = version
        rows = await db.execute_fetchall(
            "SELECT seq, origin, kind, approval_id, grant_id, extra FROM approval_changes "
            "WHERE seq > ? ORDER BY seq",
            (self._last_seq,),
        )
        news: list[Change] = []
        for seq, origin, kind, approval_id, grant_id, extra in rows:
            self._last_seq = max(self._last_seq, int(seq))
            if origin != self.origin:
                change = Change(str(kind), approval_id=approval_id, grant_id=grant_id, extra=_extra(extra))
                news.append(change)
        return news

    def prune_due(self) -> bool:
        now = time.monotonic()
        if now - self._last_prune < PRUNE_EVERY_SECONDS:
            return False
        self._last_prune = now
        return True

    @staticmethod
    async def prune(db: aiosqlite.Connection) -> None:
        """Inside a write transaction: drop rows every live process has long since read."""
        await db.execute("DELETE FROM approval_changes WHERE at < ?", (time.time() - RETAIN_SECONDS,))


async def _data_version(db: aiosqlite.Connection) -> int:
    rows = await db.execute_fetchall("PRAGMA data_version")
    return int(next(iter(rows))[0])


def _extra(text: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
