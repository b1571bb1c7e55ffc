"""Across replicas (PostgreSQL), to the operator's chat (webhook), over MCP, and from the CLI."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import pytest
from aiohttp import web
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import TextContent

from gatekeeper.approvals.settings import ApprovalSettings
from gatekeeper.approvals.webhook import verify_signature
from gatekeeper.cli.main import main as cli_main

from ..helpers import (
    H100,
    invoke,
    make_config,
    mint,
    poll_until,
    running,
    serve_app,
    throwaway_schema,
    vote,
    wait_for_pending,
)


@pytest.fixture
async def pg_schema() -> AsyncIterator[tuple[str, str]]:
    async with throwaway_schema("gk_fleet") as dsn_and_schema:
        yield dsn_and_schema


async def test_a_call_held_on_replica_a_is_released_by_an_approval_on_replica_b(
    tmp_path: Path, http: aiohttp.ClientSession, pg_schema: tuple[str, str], log_output: list[dict[str, Any]]
) -> None:
    dsn, schema = pg_schema
    settings = ApprovalSettings(store=dsn, postgres_schema=schema, default_wait_seconds=0.2)
    config_a = make_config(tmp_path / "a", approvals=settings)
    # Replica B shares A's data folder only for the development signing key.
    async with running(config_a) as a, running(make_config(tmp_path / "a", approvals=settings)) as b:
        call = asyncio.create_task(invoke(http, a, "compute.provision", H100, mint(a), {"Prefer": "wait=20"}))
        approval_id = await wait_for_pending(http, b)
        approved = time.perf_counter()
        status, body = await vote(http, b, approval_id, "approve")
        assert (status, body["state"]) == (200, "approved")
        status, answer, _ = await asyncio.wait_for(call, 10)
        released = time.perf_counter() - approved
        assert status == 200 and answer["outcome"] == "allowed", answer
        assert a.demo is not None and len(a.demo.http_received) == 1
        assert b.demo is not None and b.demo.http_received == []
        print(f"approve on B → forward on A: {released * 1000:.1f} ms (includes B's HTTP round trip)")
        assert released < 1.0  # pushed by LISTEN/NOTIFY; polling would be the 20 s wait


async def test_pending_approvals_survive_a_restart_on_postgres(
    tmp_path: Path, http: aiohttp.ClientSession, pg_schema: tuple[str, str], log_output: list[dict[str, Any]]
) -> None:
    dsn, schema = pg_schema
    config = make_config(tmp_path, approvals=ApprovalSettings(store=dsn, postgres_schema=schema))
    async with running(config) as gk:
        token = mint(gk)
        status, body, _ = await invoke(http, gk, "compute.provision", H100, token, {"Prefer": "wait=0"})
        assert status == 202
    async with running(config) as gk:
        assert (await vote(http, gk, body["approval_id"], "approve"))[0] == 200
        status, answer, _ = await invoke(http, gk, "compute.provision", H100, token, {"Prefer": "wait=0"})
        assert status == 200, answer


async def test_webhook_is_signed_and_covers_the_life_of_an_approval(
    tmp_path: Path,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    log_output: list[dict[str, Any]],
) -> None:
    secret = "webhook-secret-for-tests-0123456789"
    received: list[dict[str, Any]] = []
    forged: list[int] = []

    async def receiver(request: web.Request) -> web.Response:
        body = await request.read()
        ok = verify_signature(
            secret.encode(),
            body,
            request.headers["X-Gatekeeper-Timestamp"],
            request.headers["X-Gatekeeper-Signature"],
        )
        if not ok:
            forged.append(1)
            return web.Response(status=401)
        received.append(json.loads(body))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", receiver)
    async with serve_app(app) as url:
        settings = ApprovalSettings(
            default_wait_seconds=0.0,
            ttl_seconds=0.6,
            sweep_interval_seconds=0.1,
            webhook_url=f"{url}/hook",
            webhook_secret=secret.encode(),
        )
        async with running(make_config(tmp_path, approvals=settings)) as gk:
            token = mint(gk)
            first = (await invoke(http, gk, "compute.provision", H100, token))[1]["approval_id"]
            second = (await invoke(http, gk, "compute.provision", {**H100, "count": 3}, token))[1][
                "approval_id"
            ]
            await invoke(http, gk, "compute.provision", {**H100, "count": 4}, token)  # left to expire
            await vote(http, gk, first, "approve")
            await vote(http, gk, second, "deny")
            await poll_until(
                lambda: {e["event"] for e in received} >= {"created", "approved", "denied", "expired"},
                what="a webhook of each kind",
            )
    events = [(e["event"], (e["data"]["approval"] or {}).get("id")) for e in received]
    assert ("approved", first) in events and ("denied", second) in events
    assert sum(1 for kind, _ in events if kind == "created") == 3
    assert any(kind == "expired" for kind, _ in events)
    assert not forged
    # a receiver rejects a tampered body and a replayed old timestamp
    body = json.dumps(received[0]).encode()
    assert not verify_signature(secret.encode(), body + b" ", "1", "v1=00")


async def test_mcp_held_call_reports_progress_and_completes_when_approved(
    tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    settings = ApprovalSettings(default_wait_seconds=20, progress_interval_seconds=0.2)
    async with running(make_config(tmp_path, approvals=settings)) as gk:
        progress: list[float] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append(value)

        async def approve_when_pending() -> None:
            approval_id = await wait_for_pending(http, gk)
            await asyncio.sleep(0.5)  # let a few progress notifications go out first
            await vote(http, gk, approval_id, "approve")

        approver = asyncio.create_task(approve_when_pending())
        headers = {"Authorization": f"Bearer {mint(gk)}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as client_http,
            Client(
                streamable_http_client(f"{gk.agent_url}/mcp/demo", http_client=client_http), mode="legacy"
            ) as client,
        ):
            result = await client.call_tool("compute.provision", H100, progress_callback=on_progress)
        await approver
        assert not result.is_error, result
        block = result.content[0]
        assert isinstance(block, TextContent) and json.loads(block.text)["gpu_type"] == "H100"
        assert len(progress) >= 2


async def test_mcp_wait_running_out_tells_the_model_to_retry_later(
    tmp_path: Path, log_output: list[dict[str, Any]]
) -> None:
    async with running(make_config(tmp_path)) as gk:
        headers = {"Authorization": f"Bearer {mint(gk)}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as client_http,
            Client(streamable_http_client(f"{gk.agent_url}/mcp/demo", http_client=client_http)) as client,
        ):
            result = await client.call_tool("compute.provision", H100)
        assert result.is_error
        block = result.content[0]
        assert isinstance(block, TextContent)
        assert "waiting for an operator" in block.text and "apr_" in block.text
        assert result.meta is not None and result.meta["gatekeeper/decision"]["outcome"] == "pending"


async def test_operator_cli_lists_shows_and_approves(
    tmp_path: Path,
    http: aiohttp.ClientSession,
    capsys: pytest.CaptureFixture[str],
    log_output: list[dict[str, Any]],
) -> None:
    async with running(make_config(tmp_path)) as gk:
        token = mint(gk)
        approval_id = (await invoke(http, gk, "compute.provision", H100, token))[1]["approval_id"]
        common = ["--url", gk.operator_url, "--token", mint(gk, subject="ops-cli", operator=True)]

        def cli(*args: str) -> int:
            return cli_main(["approvals", *args, *common])

        assert await asyncio.to_thread(cli, "list") == 0
        assert approval_id in capsys.readouterr().out
        assert await asyncio.to_thread(cli, "show", approval_id) == 0
        shown = capsys.readouterr().out
        assert '"gpu_type": "H100"' in shown or "H100" in shown
        assert await asyncio.to_thread(cli, "approve", approval_id, "--comment", "ok for the benchmark") == 0
        capsys.readouterr()
        status, body, _ = await invoke(http, gk, "compute.provision", H100, token, {"Prefer": "wait=0"})
        assert status == 200, body
        assert await asyncio.to_thread(cli, "show", "apr_doesnotexist") == 4
