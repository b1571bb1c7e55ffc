"""An approved call nobody comes back for expires after ``approvals.approved_ttl_seconds``: the
approval is not a standing permission, and a late retry asks an operator again."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from gatekeeper.approvals.settings import ApprovalSettings
from gatekeeper.config import load_config
from gatekeeper.timefmt import parse_iso8601

from ..helpers import H100, invoke, make_config, mint, ops_auth, poll_until, running, vote, wait_for_pending


async def _state(http: aiohttp.ClientSession, gk: Any, approval: str) -> str:
    async with http.get(f"{gk.operator_url}/v1/approvals/{approval}", headers=ops_auth(gk)) as resp:
        return str((await resp.json())["state"])


async def test_an_approved_call_never_used_expires(
    tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    settings = ApprovalSettings(
        default_wait_seconds=0.1, sweep_interval_seconds=0.05, approved_ttl_seconds=0.5
    )
    async with running(make_config(tmp_path, approvals=settings)) as gk:
        token = mint(gk)
        status, body, _ = await invoke(http, gk, "compute.provision", H100, token)
        assert status == 202
        approval = await wait_for_pending(http, gk)
        status, voted = await vote(http, gk, approval, "approve")
        assert status == 200 and voted["state"] == "approved"
        # Use it within the setting (times are ISO 8601 with milliseconds).
        assert parse_iso8601(voted["expires_at"]) <= parse_iso8601(voted["decided_at"]) + 0.5 + 1e-3

        async def expired() -> bool:
            return await _state(http, gk, approval) == "expired"

        await poll_until(expired, every=0.05, what="the unused approval to expire")
        assert await _state(http, gk, approval) == "expired"
        status, body, _ = await invoke(http, gk, "compute.provision", H100, token)  # too late
        assert (status, body["outcome"]) == (202, "pending") and body["approval_id"] != approval
    expired = [
        e for e in log_output if e.get("event") == "approval_expired" and e.get("approval_id") == approval
    ]
    assert expired and expired[0]["approved_unused"] is True


async def test_used_in_time_it_runs_once(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    settings = ApprovalSettings(
        default_wait_seconds=0.1, sweep_interval_seconds=0.05, approved_ttl_seconds=30
    )
    async with running(make_config(tmp_path, approvals=settings)) as gk:
        token = mint(gk)
        await invoke(http, gk, "compute.provision", H100, token)
        approval = await wait_for_pending(http, gk)
        assert (await vote(http, gk, approval, "approve"))[0] == 200
        status, body, _ = await invoke(http, gk, "compute.provision", H100, token)
        assert (status, body["outcome"]) == (200, "allowed")


def test_the_setting_is_read_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text("approvals:\n  approved_ttl_seconds: 120\n")
    assert load_config(path).approvals.approved_ttl_seconds == 120
    assert replace(ApprovalSettings()).approved_ttl_seconds == 3600
