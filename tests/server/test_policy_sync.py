"""Fleet policy propagation (``policy.sync``): one ``gatekeeper policy publish`` reaches every
replica through PostgreSQL, and a broken set is refused before anything changes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from gatekeeper.app import Gatekeeper
from gatekeeper.approvals.settings import ApprovalSettings
from gatekeeper.cli.policy import main as policy_main
from gatekeeper.config import Config, parse_config
from gatekeeper.errors import ConfigError
from gatekeeper.gate import files_version
from gatekeeper.policy.lint import policy_files_in

from ..helpers import (
    POLICY_DIR,
    copy_policy_pack,
    invoke,
    make_config,
    mint,
    poll_until,
    running,
    throwaway_schema,
)

GIT = {"cmd": "git status"}
DENY_GIT = "p, agent, proc.exec:git, deny, True, git is switched off for the fleet\n"


@pytest.fixture
async def pg_schema() -> AsyncIterator[tuple[str, str]]:
    async with throwaway_schema("gk_polsync") as dsn_and_schema:
        yield dsn_and_schema


def _replica(tmp_path: Path, name: str, dsn: str, schema: str) -> Config:
    settings = ApprovalSettings(
        store=dsn, postgres_schema=schema, default_wait_seconds=0.2, sweep_interval_seconds=0.1
    )
    return make_config(tmp_path / name, approvals=settings, policy_sync=dsn)


def _policy_dir(tmp_path: Path, name: str, extra: str = "", replace: str | None = None) -> Path:
    target = tmp_path / name
    copy_policy_pack(target)
    policy = target / "policy.csv"
    policy.write_text(replace if replace is not None else policy.read_text() + extra)
    return target


def _cli_config(tmp_path: Path, dsn: str, schema: str) -> Path:
    path = tmp_path / "publisher.yaml"
    path.write_text(
        f"policy:\n  sync: ${{GK_TEST_POLICY_DSN}}\napprovals:\n  store: {dsn}\n  postgres_schema: {schema}\n"
    )
    return path


async def _publish(capsys: pytest.CaptureFixture[str], config: Path, directory: Path) -> tuple[int, str, str]:
    code = await asyncio.to_thread(
        policy_main, ["policy", "publish", "--config", str(config), "--dir", str(directory)]
    )
    out, err = capsys.readouterr()
    return code, out, err


async def _ready_version(http: aiohttp.ClientSession, gk: Gatekeeper) -> str:
    async with http.get(f"{gk.agent_url}/readyz") as resp:
        body: dict[str, Any] = await resp.json()
        return str(body["policy_version"])


async def _until_denied(http: aiohttp.ClientSession, gk: Gatekeeper, deadline: float) -> tuple[int, str]:
    token = mint(gk)
    while True:
        status, body, _ = await invoke(http, gk, "shell.exec", GIT, token)
        if status == 403 or time.monotonic() > deadline:
            return status, str(body.get("policy_version"))
        await asyncio.sleep(0.02)


async def _rows(dsn: str, schema: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(f'SELECT count(*) FROM "{schema}".policy_sets'))  # noqa: S608
    finally:
        await conn.close()


async def test_one_publish_reaches_every_replica_and_a_broken_set_is_refused(
    tmp_path: Path,
    http: aiohttp.ClientSession,
    pg_schema: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    log_output: list[dict[str, Any]],
) -> None:
    dsn, schema = pg_schema
    monkeypatch.setenv("GK_TEST_POLICY_DSN", dsn)
    cli_config = _cli_config(tmp_path, dsn, schema)
    async with (
        running(_replica(tmp_path, "a", dsn, schema)) as a,
        running(_replica(tmp_path, "b", dsn, schema)) as b,
    ):
        local = await _ready_version(http, a)
        assert await _ready_version(http, b) == local  # nothing published yet: the local files
        for gk in (a, b):
            assert (await invoke(http, gk, "shell.exec", GIT, mint(gk)))[0] == 200

        denying = _policy_dir(tmp_path, "denying", extra=DENY_GIT)
        expected = files_version(policy_files_in(denying))
        code, out, err = await _publish(capsys, cli_config, denying)
        assert code == 0, err
        published = time.monotonic()
        assert expected in out

        results = await asyncio.gather(*(_until_denied(http, gk, published + 2.0) for gk in (a, b)))
        assert time.monotonic() - published < 2.0
        assert results == [(403, expected), (403, expected)]
        assert [await _ready_version(http, gk) for gk in (a, b)] == [expected, expected]
        for gk in (a, b):
            assert gk.reloader.files.policy == gk.config.data_dir / "policy-sync" / expected / "policy.csv"

        # A broken set is refused by publish itself: exit 1 with the reason, no row, no change.
        broken = _policy_dir(tmp_path, "broken", replace="p, agent, this line is broken\n")
        code, out, err = await _publish(capsys, cli_config, broken)
        assert code == 1 and "policy.csv:1" in err and out == ""
        assert await _rows(dsn, schema) == 1
        await asyncio.sleep(0.3)
        for gk in (a, b):
            assert await _ready_version(http, gk) == expected
            assert (await invoke(http, gk, "shell.exec", GIT, mint(gk)))[0] == 403

        # A replica that joins later starts on the fleet's policy, not on its local files.
        async with running(_replica(tmp_path, "c", dsn, schema)) as c:
            assert await _ready_version(http, c) == expected
            assert (await invoke(http, c, "shell.exec", GIT, mint(c)))[0] == 403

        # A dropped listener reconnects; rolling back is publishing the old set again.
        conn = await asyncpg.connect(dsn)
        try:
            killed = await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'gatekeeper-policy-listener'"
            )
        finally:
            await conn.close()
        assert len(killed) == 2
        await poll_until(
            lambda: sum(e.get("event") == "policy_listener_lost" for e in log_output) == 2,
            what="both replicas to notice their listener is gone",
        )
        assert sum(e.get("event") == "policy_listener_lost" for e in log_output) == 2
        code, out, err = await _publish(capsys, cli_config, POLICY_DIR)
        assert code == 0, err

        async def both_on_local() -> bool:
            return [await _ready_version(http, gk) for gk in (a, b)] == [local, local]

        await poll_until(both_on_local, every=0.05, what="both replicas to go live with the published set")
        for gk in (a, b):
            assert (await invoke(http, gk, "shell.exec", GIT, mint(gk)))[0] == 200
    assert any(e.get("event") == "policy_reloaded" for e in log_output)


async def test_publish_needs_policy_sync(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "gatekeeper.yaml"
    config.write_text("mode: enforce\n")
    code = policy_main(["policy", "publish", "--config", str(config), "--dir", str(POLICY_DIR)])
    assert code == 2 and "policy.sync is not set" in capsys.readouterr().err


def test_policy_sync_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GK_PG", "postgresql://gk@db:5432/gatekeeper")
    config = parse_config({"policy": {"sync": "${GK_PG}"}}, source="t.yaml", base=tmp_path)
    assert config.policy_sync == "postgresql://gk@db:5432/gatekeeper"
    assert parse_config({}, source="t.yaml", base=tmp_path).policy_sync is None
    with pytest.raises(ConfigError, match=r"policy\.sync"):
        parse_config({"policy": {"sync": "redis://localhost"}}, source="t.yaml", base=tmp_path)
