"""Every MCP method through ``/mcp/{upstream}`` is decided and recorded, against a real SDK
server that serves tools, resources and prompts (``tests/mcp_upstream.py``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import (
    EmbeddedResource,
    PromptReference,
    ResourceTemplateReference,
    TextContent,
    TextResourceContents,
)

from gatekeeper.app import Gatekeeper
from gatekeeper.approvals.settings import ApprovalSettings
from gatekeeper.config import DemoSettings, Upstream

from ..helpers import decisions, make_config, mcp_rpc, mcp_session, mint, running, vote, wait_for_pending
from ..mcp_upstream import NOTE, README, SSH_KEY, serving

WIRES = {"legacy-sse": ("legacy", False), "modern-json": ("auto", True)}


class Stack:
    def __init__(self, gk: Gatekeeper, seen: list[tuple[str, str]], mode: str) -> None:
        self.gk, self.seen, self.mode = gk, seen, mode

    def client(self, http: httpx2.AsyncClient) -> Client:
        return Client(
            streamable_http_client(f"{self.gk.agent_url}/mcp/demo", http_client=http), mode=self.mode
        )


@pytest.fixture(params=list(WIRES))
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    mode, json_response = WIRES[request.param]
    async with serving(json_response=json_response) as (url, seen):
        config = make_config(
            tmp_path, demo=DemoSettings(enabled=False), upstreams={"demo": Upstream("demo", mcp_url=url)}
        )
        async with running(config) as gk:
            yield Stack(gk, seen, mode)


def url_of(gk: Gatekeeper) -> str:
    return f"{gk.agent_url}/mcp/demo"


def _bearer(token: str) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _method_records(log_output: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for record in decisions(log_output):
        out.setdefault(record["tool"], []).append(record)
    return out


async def test_every_method_is_decided_and_recorded(stack: Stack, log_output: list[dict[str, Any]]) -> None:
    async with _bearer(mint(stack.gk)) as http, stack.client(http) as client:
        tools = [t.name for t in (await client.list_tools()).tools]
        resources = sorted(r.uri for r in (await client.list_resources()).resources)
        templates = (await client.list_resource_templates()).resource_templates
        readme = await client.read_resource(README)
        with pytest.raises(MCPError) as key_refused:
            await client.read_resource(SSH_KEY)
        prompts = [p.name for p in (await client.list_prompts()).prompts]
        prompt = await client.get_prompt("review", {"path": "README.md"})
        completion = await client.complete(
            PromptReference(type="ref/prompt", name="review"), {"name": "path", "value": "R"}
        )
        # Allowed and relayed: this server does not do logging, and says so itself.
        with pytest.warns(MCPDeprecationWarning), pytest.raises(MCPError, match="Method not found"):
            await client.set_logging_level("info")
        called = await client.call_tool("file.read", {"path": "README.md"})
    assert tools == ["file.read"]
    # The key is not even listed; the server's own scheme is (an operator may approve reading it).
    assert resources == sorted([NOTE, README])
    assert [t.uri_template for t in templates] == ["file:///workspace/src/{name}"]
    [content] = readme.contents
    assert isinstance(content, TextResourceContents) and content.text.startswith("# Example")
    assert "cred" in str(key_refused.value) and "refused" in str(key_refused.value)
    assert ("resources/read", SSH_KEY) not in stack.seen  # never reached the server
    assert prompts == ["review", "quote"] and "review README.md" in str(prompt.messages[0].content)
    assert completion.completion.values == ["README.md", "src/app.py"]
    assert not called.is_error

    records = _method_records(log_output)
    reads = records["mcp.method:resources/read"]
    assert [(r["outcome"], r["entry"]) for r in reads] == [("allowed", "mcp"), ("denied", "mcp")]
    assert "fs.read:/workspace/README.md" in reads[0]["capabilities"]
    assert "cred.ssh" in reads[1]["capabilities"] and reads[1]["code"] == "policy_denied"
    for method in (
        "resources/list",
        "resources/templates/list",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
    ):
        [record] = records[f"mcp.method:{method}"]
        assert record["outcome"] == "allowed", method
    assert records["mcp.method:prompts/get"][0]["capabilities"] == ["mcp.prompt:review"]
    assert [r["outcome"] for r in records["file.read"]] == ["allowed"]


async def test_unmapped_and_credential_requests_are_refused(
    tmp_path: Path, log_output: list[dict[str, Any]]
) -> None:
    async with serving(json_response=True) as (url, seen):
        config = make_config(
            tmp_path, demo=DemoSettings(enabled=False), upstreams={"demo": Upstream("demo", mcp_url=url)}
        )
        async with running(config) as gk, aiohttp.ClientSession() as http:
            headers = await mcp_session(http, url_of(gk), mint(gk))
            answers = {}
            for n, (method, params) in enumerate(
                [
                    ("tasks/list", {}),
                    ("sampling/createMessage", {"messages": [], "maxTokens": 1}),
                    ("brand/new-method", {"x": 1}),
                    ("resources/read", {"uri": "file:///root/.ssh/../.ssh/id_rsa"}),
                    ("resources/read", {"uri": "file://evil.example/etc/passwd"}),
                    (
                        "completion/complete",
                        {
                            "ref": {"type": "ref/resource", "uri": SSH_KEY},
                            "argument": {"name": "a", "value": ""},
                        },
                    ),
                    ("resources/subscribe", {"uri": "http://169.254.169.254/latest/meta-data/"}),
                ],
                start=1,
            ):
                answers[method + str(n)] = await mcp_rpc(
                    http, url_of(gk), headers, {"jsonrpc": "2.0", "id": n, "method": method, "params": params}
                )
            held_status, held = await mcp_rpc(
                http,
                url_of(gk),
                headers,
                {"jsonrpc": "2.0", "id": 99, "method": "resources/read", "params": {"uri": NOTE}},
            )
            note_status, note = await mcp_rpc(
                http,
                f"{gk.agent_url}/mcp/demo",
                headers,
                {"jsonrpc": "2.0", "method": "notifications/whatever"},
            )
    for key, (status, body) in answers.items():
        assert status == 200, key
        assert body["error"]["code"] == -32001, key
        assert body["error"]["data"]["outcome"] == "denied", key
    # The server's own scheme is held for an operator, like an escalated tool call.
    assert held_status == 200 and held["error"]["data"]["outcome"] == "pending"
    assert held["error"]["data"]["approval_id"] and "waiting for an operator" in held["error"]["message"]
    assert note_status == 400 and note["error"]["data"]["code"] == "invalid_request"
    assert [s for s in seen if s[0] != "tools/call"] == []  # nothing reached the server
    records = decisions(log_output)
    refused = [r for r in records if r["tool"].startswith("mcp.method:")]
    assert [r["outcome"] for r in refused] == ["denied"] * len(answers) + ["pending"]
    unmapped = {r["tool"]: r for r in refused if r["code"] == "not_allowed"}
    assert set(unmapped) == {
        "mcp.method:tasks/list",
        "mcp.method:sampling/createMessage",
        "mcp.method:brand/new-method",
    }
    assert unmapped["mcp.method:tasks/list"]["capabilities"] == []


async def test_a_held_resource_read_runs_once_approved_when_the_same_request_is_sent_again(
    tmp_path: Path, log_output: list[dict[str, Any]]
) -> None:
    async with serving(json_response=True) as (url, seen):
        upstreams = {"demo": Upstream("demo", mcp_url=url)}
        config = make_config(tmp_path, demo=DemoSettings(enabled=False), upstreams=upstreams)
        async with running(config) as gk, aiohttp.ClientSession() as http:
            headers = await mcp_session(http, url_of(gk), mint(gk))

            def read(n: int) -> dict[str, Any]:  # each retry has its own id and progress token
                params = {"uri": NOTE, "_meta": {"progressToken": f"t{n}"}}
                return {"jsonrpc": "2.0", "id": n, "method": "resources/read", "params": params}

            status, held = await mcp_rpc(http, url_of(gk), headers, read(1))
            assert held["error"]["data"]["outcome"] == "pending"
            assert ("resources/read", NOTE) not in seen
            approval_id = await wait_for_pending(http, gk)
            assert (await vote(http, gk, approval_id, "approve"))[0] == 200
            status, answer = await mcp_rpc(http, url_of(gk), headers, read(2))
    assert status == 200 and answer["result"]["contents"][0]["text"] == "a note", answer
    assert seen.count(("resources/read", NOTE)) == 1
    reads = [r for r in decisions(log_output) if r["tool"] == "mcp.method:resources/read"]
    assert [(r["outcome"], r["code"]) for r in reads] == [
        ("pending", "approval_required"),
        ("allowed", "approved"),
    ]


async def test_a_message_that_is_no_request_notification_or_response_is_refused(
    tmp_path: Path, log_output: list[dict[str, Any]]
) -> None:
    async with serving(json_response=True) as (url, seen):
        upstreams = {"demo": Upstream("demo", mcp_url=url)}
        config = make_config(tmp_path, demo=DemoSettings(enabled=False), upstreams=upstreams)
        async with running(config) as gk, aiohttp.ClientSession() as http:
            headers = await mcp_session(http, url_of(gk), mint(gk))
            for message in (
                {"jsonrpc": "2.0", "id": 3, "params": {"uri": SSH_KEY}},
                {"jsonrpc": "2.0", "id": 3, "result": {}, "error": {"code": 1, "message": "x"}},
                {"jsonrpc": "2.0", "result": {}},
            ):
                status, body = await mcp_rpc(http, url_of(gk), headers, message)
                assert status == 400 and body["error"]["data"]["code"] == "invalid_request", message
    assert seen == []


async def test_a_template_completion_is_decided_as_the_uri_it_completes(stack: Stack) -> None:
    template = ResourceTemplateReference(type="ref/resource", uri="file:///workspace/src/{name}")
    async with _bearer(mint(stack.gk)) as http, stack.client(http) as client:
        done = await client.complete(template, {"name": "name", "value": "app"})
        for argument, context in [
            ({"name": "name", "value": "../../root/.ssh/"}, None),  # lists what is in ~root/.ssh
            ({"name": "other", "value": ""}, {"name": "../../root/.aws/"}),  # a variable filled earlier
        ]:
            with pytest.raises(MCPError, match="cred"):
                await client.complete(template, argument, context)
    assert done.completion.values == ["README.md", "src/app.py"]
    assert stack.seen == [("completion/complete", "name")]  # the refused ones never reached it


async def test_a_prompt_embeds_only_what_the_caller_could_read(
    stack: Stack, log_output: list[dict[str, Any]]
) -> None:
    async with _bearer(mint(stack.gk)) as http, stack.client(http) as client:
        readme = await client.get_prompt("quote", {"path": "/workspace/README.md"})
        key = await client.get_prompt("quote", {"path": "/root/.ssh/id_rsa"})
    assert isinstance(readme.messages[1].content, EmbeddedResource)
    assert "contents of /workspace/README.md" in str(readme.messages[1].content)
    assert "PRIVATE KEY" not in str(key.messages)
    assert isinstance(key.messages[1].content, TextContent)
    assert (
        "withheld" in key.messages[1].content.text and key.messages[0].content == readme.messages[0].content
    )
    assert any(e.get("event") == "mcp_content_withheld" for e in log_output)


async def test_a_held_read_is_answered_on_its_progress_stream_through_the_same_rewrite(
    tmp_path: Path,
) -> None:
    async with serving() as (url, seen):
        upstreams = {"demo": Upstream("demo", mcp_url=url)}
        approvals = ApprovalSettings(
            default_wait_seconds=0.2, sweep_interval_seconds=0.1, progress_interval_seconds=0.05
        )
        config = make_config(
            tmp_path, demo=DemoSettings(enabled=False), upstreams=upstreams, approvals=approvals
        )
        async with running(config) as gk, aiohttp.ClientSession() as http:
            headers = {**await mcp_session(http, url_of(gk), mint(gk)), "Prefer": "wait=20"}
            read = {
                "jsonrpc": "2.0",
                "id": 4,
                "method": "resources/read",
                "params": {"uri": NOTE, "_meta": {"progressToken": "p"}},
            }
            async with http.post(url_of(gk), json=read, headers=headers) as resp:
                assert resp.headers["Content-Type"].startswith(
                    "text/event-stream"
                )  # progress, then the answer
                assert b"notifications/progress" in await resp.content.readuntil(b"\n\n")
                approval_id = await wait_for_pending(http, gk)
                assert (await vote(http, gk, approval_id, "approve"))[0] == 200
                events = (await resp.read()).decode()
    [answer] = [json.loads(line[5:]) for line in events.splitlines() if '"result"' in line]
    assert answer["result"]["contents"][0]["text"] == "a note", answer
    assert seen == [("resources/read", NOTE)]
