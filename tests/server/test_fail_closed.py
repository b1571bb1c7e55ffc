"""Internal failures end in refusals and log lines, never in forwarded calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gatekeeper.app import Gatekeeper
from gatekeeper.config import PolicyFiles, Upstream
from gatekeeper.inspectors import INSPECTORS, InspectContext
from gatekeeper.models import Capability

from ..helpers import copy_policy_pack, decisions, invoke, make_config, mint, running, serve_app


def _copy_pack(tmp_path: Path) -> PolicyFiles:
    target = tmp_path / "policies"
    copy_policy_pack(target)
    return PolicyFiles(target / "model.conf", target / "policy.csv", target / "tools.yaml")


async def test_inspector_exception_is_a_refusal(
    gk: Gatekeeper, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    def broken(value: object, ctx: InspectContext) -> list[Capability]:
        raise RuntimeError("inspector bug")

    gk.gate.inspectors = {**INSPECTORS, "shell.command": broken}
    status, body, _ = await invoke(http, gk, "shell.exec", {"cmd": "git status"}, mint(gk))
    assert (status, body["code"]) == (403, "inspector_error")
    assert gk.demo is not None and gk.demo.http_received == []
    assert any(e.get("event") == "inspector_error" for e in log_output)
    [record] = decisions(log_output)
    assert record["outcome"] == "denied"


async def test_policy_that_fails_to_load_refuses_everything(
    tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    files = _copy_pack(tmp_path)
    files.policy.write_text("p, agent, tool:file.read, allow\n")  # too few fields
    async with running(make_config(tmp_path, policy=files)) as gk:
        status, body, _ = await invoke(http, gk, "file.read", {"path": "README.md"}, mint(gk))
        assert (status, body["code"]) == (403, "policy_error")
        assert gk.demo is not None and gk.demo.http_received == []
        async with http.get(f"{gk.agent_url}/readyz") as resp:
            assert resp.status == 503
            ready = await resp.json()
            assert "policy.csv:1" in ready["reasons"][0]
        async with http.get(f"{gk.agent_url}/healthz") as resp:
            assert resp.status == 200
    assert any(e.get("event") == "policy_load_failed" for e in log_output)


async def test_condition_that_cannot_be_evaluated_is_a_refusal(
    tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    files = _copy_pack(tmp_path)
    with files.policy.open("a") as fh:
        fh.write("p, agent, proc.exec:git, deny, r.ctx.no_such_attribute > 1, broken condition\n")
    async with running(make_config(tmp_path, policy=files)) as gk:
        status, body, _ = await invoke(http, gk, "shell.exec", {"cmd": "git status"}, mint(gk))
        assert (status, body["code"]) == (403, "policy_error")
        assert gk.demo is not None and gk.demo.http_received == []
    assert any(e.get("event") == "policy_error" for e in log_output)


@pytest.fixture
async def slow_upstream() -> AsyncIterator[str]:
    """A tool that answers only when the test is over (long after any timeout under test)."""
    over = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await asyncio.wait_for(over.wait(), 30)
        return web.json_response({"late": True})

    app = web.Application()
    app.router.add_post("/tools/{name}", slow)
    async with serve_app(app) as url:
        try:
            yield url
        finally:
            over.set()  # the server's shutdown waits for its handlers: let them end now


async def test_upstream_timeout_is_504(
    tmp_path: Path, http: aiohttp.ClientSession, slow_upstream: str
) -> None:
    files = _copy_pack(tmp_path)
    files.tools.write_text(files.tools.read_text().replace("upstream: demo", "upstream: slow"))
    config = make_config(
        tmp_path, policy=files, upstreams={"slow": Upstream("slow", url=slow_upstream, timeout_seconds=0.3)}
    )
    async with running(config) as gk:
        status, body, _ = await invoke(http, gk, "file.read", {"path": "README.md"}, mint(gk))
        assert (status, body["code"]) == (504, "upstream_timeout")


@pytest.fixture
async def trickling_upstream() -> AsyncIterator[str]:
    """A tool whose answer arrives in pieces, with pauses between them."""

    async def trickle(request: web.Request) -> web.StreamResponse:
        answer = b'{"content": "' + b"x" * 200_000 + b'"}'
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(answer)
        await response.prepare(request)
        for start in range(0, len(answer), 50_000):
            await response.write(answer[start : start + 50_000])
            await asyncio.sleep(0.05)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/tools/{name}", trickle)
    async with serve_app(app) as url:
        yield url


async def test_a_tool_answer_that_arrives_in_pieces_is_relayed_whole(
    tmp_path: Path, http: aiohttp.ClientSession, trickling_upstream: str
) -> None:
    files = _copy_pack(tmp_path)
    files.tools.write_text(files.tools.read_text().replace("upstream: demo", "upstream: trickle"))
    config = make_config(
        tmp_path, policy=files, upstreams={"trickle": Upstream("trickle", url=trickling_upstream)}
    )
    async with running(config) as gk:
        status, body, _ = await invoke(http, gk, "file.read", {"path": "README.md"}, mint(gk))
        assert status == 200, body
        assert body["result"] == {"content": "x" * 200_000}


async def test_a_cookie_an_upstream_sets_for_one_principal_never_reaches_it_for_another(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """Every forwarded call shares one HTTP client: with a cookie jar, the session cookie an
    upstream gave agent-1's call rode on agent-2's calls (an upstream reached by name)."""
    cookies: list[str | None] = []

    async def tool(request: web.Request) -> web.Response:
        cookies.append(request.headers.get("Cookie"))
        response = web.json_response({"ok": True})
        response.set_cookie("sid", "session-of-the-first-caller")
        return response

    app = web.Application()
    app.router.add_post("/tools/{name}", tool)
    async with serve_app(app) as url:
        files = _copy_pack(tmp_path)
        files.tools.write_text(files.tools.read_text().replace("upstream: demo", "upstream: named"))
        by_name = url.replace("127.0.0.1", "localhost")
        config = make_config(tmp_path, policy=files, upstreams={"named": Upstream("named", url=by_name)})
        async with running(config) as gk:
            for subject in ("agent-1", "agent-2", "agent-1"):
                status, _, _ = await invoke(http, gk, "file.read", {"path": "README.md"}, mint(gk, subject))
                assert status == 200
    assert cookies == [None, None, None]
