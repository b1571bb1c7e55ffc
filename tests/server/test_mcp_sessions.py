"""An ``Mcp-Session-Id`` belongs to the principal that opened it, on one replica or across a
fleet sharing PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from gatekeeper.app import Gatekeeper
from gatekeeper.approvals.settings import ApprovalSettings
from gatekeeper.config import DemoSettings, Upstream
from gatekeeper.demo.runner import DemoUpstream

from ..helpers import make_config, mcp_rpc, mcp_session, mint, running, throwaway_schema

LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
READ = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "tools/call",
    "params": {"name": "file.read", "arguments": {"path": "README.md"}},
}


def url_of(gk: Gatekeeper) -> str:
    return f"{gk.agent_url}/mcp/demo"


def as_other(headers: dict[str, str], token: str) -> dict[str, str]:
    return {**headers, "Authorization": f"Bearer {token}"}


async def test_another_principal_gets_404_whatever_it_sends(
    tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    async with running(make_config(tmp_path)) as gk:
        mine = await mcp_session(http, url_of(gk), mint(gk))
        assert "Mcp-Session-Id" in mine
        theirs = as_other(mine, mint(gk, subject="agent-2"))
        assert (await mcp_rpc(http, url_of(gk), mine, LIST))[0] == 200
        received = len(gk.demo.mcp_received) if gk.demo else 0

        status, body = await mcp_rpc(http, url_of(gk), theirs, READ)
        assert status == 404 and body["error"]["data"]["code"] == "session_not_found"
        async with http.get(url_of(gk), headers=theirs) as resp:
            assert resp.status == 404
        async with http.delete(url_of(gk), headers=theirs) as resp:
            assert resp.status == 404
        invented = {**mine, "Mcp-Session-Id": "f" * 32}
        assert (await mcp_rpc(http, url_of(gk), invented, LIST))[0] == 404
        assert gk.demo is not None and len(gk.demo.mcp_received) == received  # nothing went upstream

        # The owner's session is untouched by all that, and ends when its owner ends it.
        status, body = await mcp_rpc(http, url_of(gk), mine, READ)
        assert status == 200 and not body["result"]["isError"]
        async with http.delete(url_of(gk), headers=mine) as resp:
            assert resp.status < 300
        assert (await mcp_rpc(http, url_of(gk), mine, LIST))[0] == 404
    refusals = [e for e in log_output if e.get("event") == "mcp_session_refused"]
    assert {e["reason"] for e in refusals} == {"another principal's session", "unknown session"}
    assert len(refusals) == 5


async def test_a_session_survives_a_replica_switch_on_postgres(
    tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    async with (
        throwaway_schema("gk_mcp_sessions") as (dsn, schema),
        DemoUpstream("127.0.0.1", 0, 0) as demo,
    ):
        settings = ApprovalSettings(store=dsn, postgres_schema=schema, default_wait_seconds=0.2)
        upstreams = {"demo": Upstream("demo", url=demo.http_url, mcp_url=demo.mcp_url)}

        def replica() -> Any:
            # Both replicas share the data folder only for the development signing key.
            return make_config(
                tmp_path, approvals=settings, demo=DemoSettings(enabled=False), upstreams=upstreams
            )

        async with running(replica()) as a, running(replica()) as b:
            token = mint(a)
            opened_on_a = await mcp_session(http, url_of(a), token)
            assert "Mcp-Session-Id" in opened_on_a
            status, body = await mcp_rpc(http, url_of(b), opened_on_a, READ)  # the next call lands on B
            assert status == 200 and not body["result"]["isError"], body
            theirs = as_other(opened_on_a, mint(b, subject="agent-2"))
            assert (await mcp_rpc(http, url_of(b), theirs, READ))[0] == 404
            assert (await mcp_rpc(http, url_of(a), theirs, READ))[0] == 404
        assert [call.tool for call in demo.mcp_received] == ["file.read"]
