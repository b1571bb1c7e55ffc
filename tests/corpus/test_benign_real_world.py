"""Commands real coding agents ran, through the default pack: ordinary work must flow.

``benign_real_world.jsonl`` holds 600 distinct commands taken from public agent trajectories
(mini-swe-agent's SWE-bench Verified run, SWE-agent's demonstrations), each with the trajectory
it came from; ``scripts/extract_agent_commands.py`` made it, a seeded random sample, not a
choice. Those agents worked in ``/testbed``; here the workspace is ``/workspace``, so that one
prefix is rewritten. At most 1 % may be held for a human, and none may be refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.corpus.test_corpus import evaluate

HERE = Path(__file__).resolve().parent
ENTRIES: list[dict[str, Any]] = [
    json.loads(line) for line in (HERE / "benign_real_world.jsonl").read_text().splitlines() if line
]


def _call(entry: dict[str, Any]) -> dict[str, Any]:
    return {"tool": "shell.exec", "arguments": {"cmd": entry["command"].replace("/testbed", "/workspace")}}


def test_the_corpus_is_real_and_large_enough() -> None:
    commands = [e["command"] for e in ENTRIES]
    assert len(set(commands)) == len(commands) >= 500
    for e in ENTRIES:
        assert e["source"].startswith("github:") and "@" in e["source"] and e["agent"], e


def test_none_refused_at_most_one_percent_held() -> None:
    refused, held = [], []
    for entry in ENTRIES:
        result = evaluate(_call(entry))
        if result.outcome == "deny":
            refused.append(f"{entry['command'][:120]!r} -> {result.explain()}")
        elif result.outcome != "allow":
            held.append(f"{entry['command'][:120]!r} -> {result.explain()}")
    assert not refused, "\n".join(refused)
    assert len(held) <= len(ENTRIES) // 100, "\n".join(held)
