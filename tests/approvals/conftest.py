"""The approval-store fixtures: every contract test runs against SQLite and the real PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest

from gatekeeper.approvals.store import ApprovalStore

PG_USERS = ("postgres", "root")
PG_DSN_TEMPLATE = "postgresql://{user}@127.0.0.1:5432/test"
_pg_dsn: str | None = None


async def postgres_dsn() -> str:
    """The DSN of the machine's PostgreSQL (user postgres, else root). Never mocked: no server, no pass."""
    global _pg_dsn
    if _pg_dsn is None:
        errors: list[str] = []
        for user in PG_USERS:
            dsn = PG_DSN_TEMPLATE.format(user=user)
            try:
                conn = await asyncpg.connect(dsn, timeout=5)
            except (OSError, asyncpg.PostgresError) as exc:
                errors.append(f"{user}: {exc}")
                continue
            await conn.close()
            _pg_dsn = dsn
            break
        else:
            pytest.fail("PostgreSQL at 127.0.0.1:5432/test is required: " + "; ".join(errors))
    return _pg_dsn


StoreFactory = Callable[[], ApprovalStore]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_store(backend: str, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Builds unopened stores that all share one database: one file, or one throwaway PostgreSQL
    schema (dropped with CASCADE afterwards)."""
    if backend == "sqlite":
        from gatekeeper.approvals.store_sqlite import SqliteApprovalStore

        path = tmp_path / "approvals.sqlite3"
        yield lambda: SqliteApprovalStore(path)
        return
    from gatekeeper.approvals.store_postgres import PostgresApprovalStore

    dsn = await postgres_dsn()
    schema = f"gk_test_{secrets.token_hex(6)}"
    yield lambda: PostgresApprovalStore(dsn, schema=schema)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def store(make_store: StoreFactory) -> AsyncIterator[ApprovalStore]:
    instance = make_store()
    await instance.open()
    try:
        yield instance
    finally:
        await instance.close()
