"""A high-risk approval needs a comment, enforced by the server (API and CLI), not only the console."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gatekeeper.cli.main import main as cli_main

from ..helpers import H100, invoke, make_config, mint, operator_token, ops_auth, running, wait_for_pending


async def _approve(
    http: aiohttp.ClientSession, gk: Any, approval: str, body: dict[str, Any] | None
) -> tuple[int, Any]:
    url = f"{gk.operator_url}/v1/approvals/{approval}/approve"
    async with http.post(url, json=body, headers=ops_auth(gk)) as resp:
        return resp.status, await resp.json()


async def test_api_refuses_a_high_risk_approval_without_a_comment(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running(make_config(tmp_path)) as gk:
        await invoke(http, gk, "compute.provision", H100, mint(gk))
        approval = await wait_for_pending(http, gk)
        for body in (None, {}, {"comment": ""}, {"comment": "  \n "}):
            status, answer = await _approve(http, gk, approval, body)
            assert (status, answer["code"]) == (400, "comment_required"), answer
            assert "compute.gpu:H100" in answer["message"]
        async with http.get(f"{gk.operator_url}/v1/approvals/{approval}", headers=ops_auth(gk)) as resp:
            assert (await resp.json())["state"] == "pending"  # nothing was recorded
        status, answer = await _approve(http, gk, approval, {"comment": "benchmark run, agreed with Sam"})
        assert (status, answer["state"]) == (200, "approved")


async def test_a_deny_and_an_ordinary_approval_need_no_comment(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running(make_config(tmp_path)) as gk:
        token = mint(gk)
        await invoke(http, gk, "shell.exec", {"cmd": "docker ps"}, token)  # escalated, not high-risk
        approval = await wait_for_pending(http, gk)
        assert (await _approve(http, gk, approval, None))[0] == 200
        await invoke(http, gk, "compute.provision", H100, token)
        approval = await wait_for_pending(http, gk)
        url = f"{gk.operator_url}/v1/approvals/{approval}/deny"
        async with http.post(url, headers=ops_auth(gk)) as resp:
            assert resp.status == 200


async def test_cli_approve_without_comment_is_refused(
    tmp_path: Path,
    http: aiohttp.ClientSession,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running(make_config(tmp_path)) as gk:
        await invoke(http, gk, "compute.provision", H100, mint(gk))
        approval = await wait_for_pending(http, gk)
        monkeypatch.setenv("GATEKEEPER_OPERATOR_TOKEN", operator_token(gk))
        argv = ["approvals", "--url", gk.operator_url, "approve", approval]
        assert await asyncio.to_thread(cli_main, argv) == 1
        assert "comment_required" in capsys.readouterr().err
        assert await asyncio.to_thread(cli_main, [*argv, "--comment", "ok for the benchmark"]) == 0
        assert f"approved {approval}" in capsys.readouterr().out
