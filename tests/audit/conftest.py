"""Audit fixtures: every sink test runs against SQLite and the real PostgreSQL (throwaway schema)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gatekeeper.audit.record import AuditSink
from gatekeeper.audit.sink_postgres import PostgresAuditSink
from gatekeeper.audit.sink_sqlite import SqliteAuditSink

from ..helpers import opened, throwaway_schema

SinkFactory = Callable[[], AuditSink]
# Runs one SQL statement on the sink's table, bypassing Gatekeeper: ``?`` placeholders.
RawSql = Callable[..., Awaitable[list[tuple[Any, ...]]]]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_sink(backend: str, tmp_path: Path) -> AsyncIterator[SinkFactory]:
    """Builds unopened sinks that share one database (one file, or one throwaway schema)."""
    if backend == "sqlite":
        path = tmp_path / "audit.sqlite3"
        yield lambda: SqliteAuditSink(path)
        return
    async with throwaway_schema("gk_audit_test") as (dsn, schema):
        yield lambda: PostgresAuditSink(dsn, schema=schema)


@pytest.fixture
async def sink(make_sink: SinkFactory) -> AsyncIterator[AuditSink]:
    async with opened(make_sink()) as instance:
        yield instance


@pytest.fixture
def raw_sql(sink: AuditSink) -> RawSql:
    """Tamper like an attacker with database access: plain sqlite3, or asyncpg."""

    async def run(query: str, *params: Any) -> list[tuple[Any, ...]]:
        if isinstance(sink, SqliteAuditSink):
            import sqlite3

            db = sqlite3.connect(sink.path)
            try:
                with db:
                    return [tuple(r) for r in db.execute(query, params).fetchall()]
            finally:
                db.close()
        assert isinstance(sink, PostgresAuditSink)
        counter = iter(range(1, 100))
        pg_query = re.sub(r"\?", lambda _m: f"${next(counter)}", query)
        conn = await asyncpg.connect(sink.dsn, server_settings={"search_path": sink.schema})
        try:
            return [tuple(r) for r in await conn.fetch(pg_query, *params)]
        finally:
            await conn.close()

    return run


def decision(i: int, **overrides: Any) -> dict[str, Any]:
    """The fields of one realistic decision."""
    fields: dict[str, Any] = {
        "decision_id": f"dec-{i:06d}",
        "entry": "invoke",
        "outcome": "allowed" if i % 3 else "denied",
        "code": "ok" if i % 3 else "policy_denied",
        "principal": "agent-7",
        "issuer": "dev",
        "roles": ["agent"],
        "tool": "shell.exec",
        "arguments": {"cmd": f"git status # {i}", "cwd": "/workspace"},
        "digest": f"{i:064x}",
        "capabilities": ["proc.exec:git"],
        "rule": "p, agent, shell.exec, proc.exec:git, allow",
        "reason": "allowed by rule" if i % 3 else "denied: ssh",
        "policy_version": "sha256:abc",
        "latency_ms": 0.42,
    }
    fields.update(overrides)
    return fields
