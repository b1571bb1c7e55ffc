"""The approval-store fixtures: every contract test runs against SQLite and the real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gatekeeper.approvals.store import ApprovalStore

from ..helpers import opened, postgres_dsn, throwaway_schema

__all__ = ["StoreFactory", "postgres_dsn"]  # postgres_dsn: still importable from here


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

    async with throwaway_schema("gk_test") as (dsn, schema):
        yield lambda: PostgresApprovalStore(dsn, schema=schema)


@pytest.fixture
async def store(make_store: StoreFactory) -> AsyncIterator[ApprovalStore]:
    async with opened(make_store()) as instance:
        yield instance
