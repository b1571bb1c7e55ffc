"""A client that goes away is a quiet, correctly recorded outcome: never an internal error,
never a traceback in the log."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from gatekeeper.approvals.settings import ApprovalSettings

from ..helpers import (
    H100,
    decisions,
    make_config,
    mcp_session,
    mint,
    poll_until,
    running,
    vote,
    wait_for_pending,
)


def _loud(log_output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in log_output if e.get("log_level") in ("error", "critical") or e.get("exc_info")]


async def test_a_client_that_leaves_while_its_call_is_held_is_recorded_quietly(
    tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    approvals = ApprovalSettings(
        default_wait_seconds=0.2, sweep_interval_seconds=0.1, progress_interval_seconds=0.05
    )
    async with running(make_config(tmp_path, approvals=approvals)) as gk:
        url = f"{gk.agent_url}/mcp/demo"
        headers = await mcp_session(http, url, mint(gk))
        call = {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": "compute.provision", "arguments": H100, "_meta": {"progressToken": "p"}},
        }
        async with aiohttp.ClientSession() as leaving:
            resp = await leaving.post(url, json=call, headers={**headers, "Prefer": "wait=20"})
            assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
            assert b"notifications/progress" in await resp.content.readuntil(b"\n\n")
            resp.close()  # the client goes away while its call waits for an operator
        approval_id = await wait_for_pending(http, gk)
        await asyncio.sleep(0.2)  # a few progress notes meet the closed connection
        assert (await vote(http, gk, approval_id, "approve"))[0] == 200
        await poll_until(lambda: decisions(log_output), what="the decision record")
        assert gk.demo is not None
        assert [c.tool for c in gk.demo.mcp_received] == ["compute.provision"]  # approved: it ran once
    [record] = decisions(log_output)
    assert (record["outcome"], record["code"]) == ("allowed", "approved"), record
    assert record["delivery"] == "client_gone"
    assert _loud(log_output) == []
    assert any(e.get("event") == "mcp_client_gone" for e in log_output)
