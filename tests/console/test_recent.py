"""The console's recent-decisions buffer: what it keeps, how it filters, and that it never keeps
a call's arguments (they can be large; the audit trail has them)."""

from __future__ import annotations

import time

import aiohttp

from gatekeeper.app import Gatekeeper
from gatekeeper.recent import RecentDecisions

from ..helpers import invoke, mint, ops_auth


def _record(n: int, **overrides: object) -> dict[str, object]:
    record: dict[str, object] = {
        "decision_id": f"d{n}",
        "entry": "invoke",
        "principal": f"agent-{n % 2}",
        "roles": ["agent"],
        "tool": "shell.exec" if n % 3 else "file.read",
        "capabilities": ("fs.read:/workspace/a",),
        "outcome": "allowed" if n % 2 else "denied",
        "code": "allowed",
        "rule": None,
        "reason": "r",
        "latency_ms": 0.5,
        "approval_id": None,
        "time": 1000.0 + n,
        "arguments": {"content": "x" * 1000},
    }
    record.update(overrides)
    return record


def test_newest_first_with_filters_and_plain_values() -> None:
    recent = RecentDecisions(maxlen=4)
    for n in range(6):
        recent.add(_record(n))
    assert len(recent) == 4
    assert [d["decision_id"] for d in recent.query()] == ["d5", "d4", "d3", "d2"]
    assert [d["decision_id"] for d in recent.query(outcome="denied")] == ["d4", "d2"]
    assert [d["decision_id"] for d in recent.query(principal="agent-1")] == ["d5", "d3"]
    assert [d["decision_id"] for d in recent.query(tool="file.*")] == ["d3"]
    assert [d["decision_id"] for d in recent.query(since=1003.0, until=1004.0)] == ["d4", "d3"]
    assert [d["decision_id"] for d in recent.query(limit=1)] == ["d5"]
    first = recent.query()[0]
    assert first["capabilities"] == ["fs.read:/workspace/a"]  # a tuple comes back as a list
    assert "arguments" not in first


def test_arguments_are_not_kept_and_a_missing_time_is_stamped_when_added() -> None:
    recent = RecentDecisions()
    record = _record(1)
    del record["time"]
    before = time.time()
    recent.add(record)
    after = time.time()
    time.sleep(0.02)
    (item,) = recent.query()
    assert before <= item["time"] <= after  # when it was added, not when it was asked for
    assert all("x" * 1000 not in repr(v) for v in recent._items[0])


async def test_a_call_shows_up_in_the_console_listing(gk: Gatekeeper, http: aiohttp.ClientSession) -> None:
    status, body, _ = await invoke(http, gk, "file.read", {"path": "README.md"}, mint(gk))
    assert status == 200
    async with http.get(f"{gk.operator_url}/v1/decisions?tool=file.read", headers=ops_auth(gk)) as resp:
        assert resp.status == 200
        listed = (await resp.json())["decisions"]
    assert [d["decision_id"] for d in listed] == [body["decision_id"]]
    assert listed[0]["outcome"] == "allowed" and "arguments" not in listed[0]
