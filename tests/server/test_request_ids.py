"""One request id from the agent's call to the tool: the answer, the decision line, the audit
record and the upstream request all carry it; process metrics are exported, `_created` is not."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from gatekeeper.app import Gatekeeper

from ..helpers import decisions, invoke, mint

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


async def _records_by_decision(gk: Gatekeeper) -> dict[str, Any]:
    await gk.audit.flush()
    return {r.decision_id: r async for r in gk.audit.sink.records()}


async def test_a_request_id_links_answer_log_record_and_upstream(
    gk: Gatekeeper, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    assert gk.demo is not None
    token = mint(gk)
    cases = [
        ({"X-Request-Id": "agent-run-7:call-42"}, "agent-run-7:call-42", None),
        ({"traceparent": PARENT}, TRACE, TRACE),
        ({"X-Request-Id": "bad id with spaces", "traceparent": "00-zz-yy-01"}, None, None),
        ({}, None, None),
    ]
    answers = []
    for headers, expected, trace in cases:
        status, body, resp_headers = await invoke(
            http, gk, "file.read", {"path": "README.md"}, token, headers=headers
        )
        assert status == 200, body
        rid = resp_headers["X-Request-Id"]
        if expected is not None:
            assert rid == expected
        else:
            assert re.fullmatch(r"[0-9a-f]{32}", rid), rid  # minted: never the malformed one
        answers.append((body["decision_id"], rid, trace))
    received = gk.demo.http_received[-len(cases) :]
    records = await _records_by_decision(gk)
    lines = {line["decision_id"]: line for line in decisions(log_output)}
    for (decision_id, rid, trace), upstream in zip(answers, received, strict=True):
        assert upstream.headers["x-request-id"] == rid
        version, trace_id, span, flags = upstream.headers["traceparent"].split("-")
        assert version == "00" and flags == "01" and re.fullmatch(r"[0-9a-f]{16}", span)
        assert span != "00f067aa0ba902b7"  # the gate's own span, child of the caller's
        if trace is not None:
            assert trace_id == trace
        assert lines[decision_id]["request_id"] == rid
        assert records[decision_id].extra["request_id"] == rid


async def test_refusals_carry_the_request_id_too(
    gk: Gatekeeper, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    status, body, headers = await invoke(
        http, gk, "file.read", {"path": "README.md"}, "not-a-token", headers={"X-Request-Id": "r-401"}
    )
    assert status == 401 and headers["X-Request-Id"] == "r-401"
    status, body, headers = await invoke(
        http, gk, "file.read", {"path": "/etc/shadow"}, mint(gk), headers={"X-Request-Id": "r-403"}
    )
    assert status == 403 and headers["X-Request-Id"] == "r-403"
    records = await _records_by_decision(gk)
    assert records[body["decision_id"]].extra["request_id"] == "r-403"


async def test_process_metrics_and_no_created_series(gk: Gatekeeper, http: aiohttp.ClientSession) -> None:
    await invoke(http, gk, "file.read", {"path": "README.md"}, mint(gk))
    async with http.get(f"{gk.agent_url}/metrics") as resp:
        text = await resp.text()
    for name in ("process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds"):
        assert re.search(rf"^{name} \S+$", text, re.MULTILINE), name
    assert "python_info{" in text and "python_gc_objects_collected_total" in text
    assert "gatekeeper_decisions_total{" in text
    assert "_created" not in text


async def test_mcp_calls_carry_the_id_to_the_upstream_and_back(
    gk: Gatekeeper, log_output: list[dict[str, Any]]
) -> None:
    """Through the official MCP SDK client: the answers (event streams too) and the upstream's
    request carry the id; the decision line has it."""
    assert gk.demo is not None
    seen: list[str] = []

    async def keep(response: httpx2.Response) -> None:
        seen.append(response.headers.get("X-Request-Id", ""))

    headers = {"Authorization": f"Bearer {mint(gk)}", "X-Request-Id": "mcp-run-1"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30, event_hooks={"response": [keep]}) as http,
        Client(streamable_http_client(f"{gk.agent_url}/mcp/demo", http_client=http)) as client,
    ):
        result = await client.call_tool("file.read", {"path": "README.md"})
    assert not result.is_error
    assert seen and set(seen) == {"mcp-run-1"}
    upstream = gk.demo.mcp_received[-1]
    assert upstream.headers["x-request-id"] == "mcp-run-1" and upstream.headers["traceparent"].startswith(
        "00-"
    )
    assert [line["request_id"] for line in decisions(log_output) if line["entry"] == "mcp"] == ["mcp-run-1"]
