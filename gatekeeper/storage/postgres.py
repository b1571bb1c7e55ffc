"""Setting up a PostgreSQL schema and connection pool the way every Gatekeeper store does."""

from __future__ import annotations

import re
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from ..errors import ConfigError

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

AnyConnection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


def check_schema(schema: str, what: str) -> str:
    """``schema`` if it is a plain lowercase identifier (it is quoted into DDL), else ConfigError."""
    if not _SCHEMA_NAME.match(schema):
        raise ConfigError(
            f"{what} schema {schema!r} must be a lowercase SQL identifier "
            "(letters, digits, underscores; at most 63)"
        )
    return schema


async def advisory_xact_lock(conn: AnyConnection, key: str) -> None:
    """Take a transaction-scoped advisory lock named ``key`` (released at COMMIT/ROLLBACK)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", key)


async def open_pool(
    dsn: str, schema: str, ddl: str, *, max_size: int, application_name: str
) -> asyncpg.Pool[asyncpg.Record]:
    """Create ``schema`` and run ``ddl`` in it (idempotent DDL), then open a pool whose
    connections have ``search_path`` set to it."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            # Two replicas starting together must not race each other's CREATE ... IF NOT EXISTS.
            await advisory_xact_lock(conn, f"gatekeeper-ddl:{schema}")
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(f'SET LOCAL search_path TO "{schema}"')
            await conn.execute(ddl)
    finally:
        await conn.close()
    return await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        server_settings={"search_path": schema, "application_name": application_name},
    )
