"""Opening a SQLite file the way every Gatekeeper store does, and its write transaction.

Durability: WAL journal with ``synchronous=FULL``, so a change is on disk when its transaction
commits. ``busy_timeout`` makes a second process on the same file wait for the write lock
instead of failing, and ``BEGIN IMMEDIATE`` takes that lock at the start of a transaction, so
two writers queue rather than race.
"""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite
import structlog

from gatekeeper import codes

from ..errors import GatekeeperError

log = structlog.get_logger("gatekeeper.storage")

# The stores hold who asked for what, with which arguments: owner-only, whatever the umask.
FILE_MODE = 0o600
_COMPANIONS = ("", "-wal", "-shm", "-journal")


def restrict_store_files(path: Path) -> None:
    """Create ``path`` owner-only if it is new, and tighten it (and its WAL/SHM companions, which
    SQLite creates with the database file's mode) if an earlier run left them readable by others."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), FILE_MODE)
    os.close(fd)
    for suffix in _COMPANIONS:
        companion = path.with_name(path.name + suffix)
        try:
            mode = os.lstat(companion).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISREG(mode) and mode & 0o077:
            os.chmod(companion, FILE_MODE)
            log.warning("store_file_mode_tightened", path=str(companion), was=oct(stat.S_IMODE(mode)))


@asynccontextmanager
async def immediate(db: aiosqlite.Connection) -> AsyncIterator[None]:
    """One ``BEGIN IMMEDIATE`` transaction: COMMIT when the block ends, ROLLBACK if it raises."""
    await db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        await db.execute("ROLLBACK")
        raise
    await db.execute("COMMIT")


async def open_sqlite(path: Path, schema: str, *, foreign_keys: bool = False) -> aiosqlite.Connection:
    """Connect to ``path`` (creating its folder), set the durable pragmas and create ``schema``
    (statements separated by ``;``) in one transaction. Transactions are the caller's
    (``isolation_level=None``): use ``immediate``."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        restrict_store_files(path)
    except OSError as exc:
        raise GatekeeperError(f"cannot open {path}: {exc.strerror}", code=codes.STORE_ERROR) from None
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        await db.execute("PRAGMA busy_timeout = 10000")
        mode = await db.execute_fetchall("PRAGMA journal_mode = WAL")
        if str(next(iter(mode))[0]).lower() != "wal":
            raise GatekeeperError(f"could not put {path} in WAL mode", code=codes.STORE_ERROR)
        await db.execute("PRAGMA synchronous = FULL")
        if foreign_keys:
            await db.execute("PRAGMA foreign_keys = ON")
        async with immediate(db):
            for statement in schema.split(";"):
                if statement.strip():
                    await db.execute(statement)
    except BaseException:
        await db.close()
        raise
    return db
