"""What an upstream's SSE streams carry reaches only the caller they were meant for, filtered as
on the request that started them: event ids are bound to the principal and session they were
relayed to, and a replay (``GET`` with ``Last-Event-ID``) is filtered like the list it replays."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp

from gatekeeper.config import DemoSettings, Upstream
from gatekeeper.models import Principal
from gatekeeper.server.mcp_events import EventIds
from gatekeeper.server.mcp_lists import answer_filter, list_filter

from ..helpers import make_config, mcp_session, mint, running
from ..mcp_upstream import SSH_KEY, SequentialEventStore, serving

RESUMABLE = "2025-11-25"  # the first version whose streams a client may resume


async def _read_stream(resp: aiohttp.ClientResponse, seconds: float = 1.0) -> str:
    """What a (maybe still open) SSE stream sent within ``seconds``."""
    chunks: list[bytes] = []
    try:
        async with asyncio.timeout(seconds):
            async for chunk in resp.content.iter_any():
                chunks.append(chunk)
    except TimeoutError:
        pass
    return b"".join(chunks).decode()


async def test_a_replayed_list_is_filtered_and_event_ids_belong_to_their_session(tmp_path: Path) -> None:
    async with serving(event_store=SequentialEventStore()) as (url, _seen):
        upstreams = {"demo": Upstream("demo", mcp_url=url)}
        config = make_config(tmp_path, demo=DemoSettings(enabled=False), upstreams=upstreams)
        async with running(config) as gk, aiohttp.ClientSession() as http:
            mcp = f"{gk.agent_url}/mcp/demo"
            mine = {**await mcp_session(http, mcp, mint(gk)), "MCP-Protocol-Version": RESUMABLE}
            listing = {"jsonrpc": "2.0", "id": 5, "method": "resources/list"}
            async with http.post(mcp, json=listing, headers=mine) as resp:
                listed = await resp.text()
            assert SSH_KEY not in listed
            ids = re.findall(r"^id: (\S+)$", listed, re.M)
            assert ids and all("." in i for i in ids), listed  # tagged for this caller
            priming = ids[0]

            # The owner resumes from its own event: the replay is filtered as the answer was.
            async with http.get(mcp, headers={**mine, "Last-Event-ID": priming}) as resp:
                assert resp.status == 200
                replayed = await _read_stream(resp)
            assert "file:///workspace/README.md" in replayed and SSH_KEY not in replayed
            assert all("." in i for i in re.findall(r"^id: (\S+)$", replayed, re.M))

            # Another principal, in a session of its own, cannot resume the first one's stream:
            # not with the id it was given, not with the upstream's own (guessable) id.
            theirs = {
                **await mcp_session(http, mcp, mint(gk, subject="agent-2")),
                "MCP-Protocol-Version": RESUMABLE,
            }
            for stolen in (priming, priming.split(".", 1)[1], "0", "1"):
                async with http.get(mcp, headers={**theirs, "Last-Event-ID": stolen}) as resp:
                    body = await resp.json()
                    assert resp.status == 400 and body["error"]["data"]["code"] == "unknown_event_id", stolen
            # Nor the owner, from an id of another of its sessions.
            again = {**await mcp_session(http, mcp, mint(gk)), "MCP-Protocol-Version": RESUMABLE}
            async with http.get(mcp, headers={**again, "Last-Event-ID": priming}) as resp:
                assert resp.status == 400
            async with http.delete(mcp, headers=mine) as resp:  # ends the resumed stream upstream
                assert resp.status < 300


def test_event_ids_are_tagged_however_the_stream_is_cut() -> None:
    ids = EventIds(b"k" * 32, "demo", Principal("agent-1", ("agent",), "issuer", 0.0))
    stream = (
        b'id: 1\nevent: message\ndata: {"note": "id: 9"}\n\nid:2\r\ndata: \r\n\r\n'
        b"idle: x\ni\nid\nid: " + b"z" * 2000 + b"\ndata: after\n\n"
    )
    whole = ids.rewriter("s").feed(stream)
    for size in range(1, 9):
        rewriter = ids.rewriter("s")
        cut = b"".join(rewriter.feed(stream[n : n + size]) for n in range(0, len(stream), size))
        assert cut == whole, size
    tagged = re.findall(rb"^id: ?(\S+)$", whole, re.M)
    assert [ids.untag("s", t.decode()) for t in tagged] == ["1", "2"]
    assert b'"id: 9"' in whole and b"z" * 100 not in whole  # data untouched; an over-long id dropped
    assert ids.untag("another session", tagged[0].decode()) is None


async def test_a_batch_of_list_answers_is_filtered_item_by_item(tmp_path: Path) -> None:
    async with running(make_config(tmp_path)) as gk:
        principal = Principal("agent-1", ("agent",), gk.config.identity.issuer, 0.0)
        for rewrite in (
            list_filter(gk.gate, principal, "demo", "resources/list"),
            answer_filter(gk.gate, principal, "demo", None),
        ):
            listing = {"jsonrpc": "2.0", "id": 1, "result": {"resources": [{"uri": SSH_KEY, "name": "k"}]}}
            assert rewrite is not None
            filtered = await rewrite([listing, "x"])
            assert filtered == [{"jsonrpc": "2.0", "id": 1, "result": {"resources": []}}, "x"]
