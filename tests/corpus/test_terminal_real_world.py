"""Commands an agent ran on terminal tasks, through the default pack: not held or refused more.

``terminal_real_world.jsonl`` holds 600 distinct commands mini-swe-agent ran in terminal-bench
(laude-institute/terminal-bench-leaderboard's recorded terminals), each with the log it came
from; ``scripts/extract_agent_commands.py --sample 600 --seed 12`` made it. The tasks are far
from SWE-bench: builds, data science, services, system administration. Many of those commands
are refused on purpose (``apt install``, ``systemctl``, writes to ``/etc``, ``tmux``, programs the
pack does not know, ``curl localhost``), so this is a ratchet, not a bound of 1 %: the counts
measured (8 Dec 2026: 35 held, 113 refused; 45 and 141 on the pack of the session before) may go
down, never up. (Two commands went from held to refused that day: Python that downloads a binary
from an unlisted host, once held as network code, is now read as the fetch it is, and its string
``'/ffmpeg'`` is a read of a root-level path no rule allows; and a find that picks ``*.env`` files
for grep, once doubt, is now the credential read it is. One went the other way: ``python -m
notebook`` is now the server it starts, ``net.listen``, which a human decides, and the pack's
precedence lets a hold win over a capability no rule speaks to.) The agent's working directory
there was ``/app``; here it is ``/workspace``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.corpus.test_corpus import evaluate

HERE = Path(__file__).resolve().parent
ENTRIES: list[dict[str, Any]] = [
    json.loads(line) for line in (HERE / "terminal_real_world.jsonl").read_text().splitlines() if line
]
MAX_HELD = 35
MAX_REFUSED = 113


def _call(entry: dict[str, Any]) -> dict[str, Any]:
    return {"tool": "shell.exec", "arguments": {"cmd": entry["command"].replace("/app", "/workspace")}}


def test_the_corpus_is_real_and_large_enough() -> None:
    commands = [e["command"] for e in ENTRIES]
    assert len(set(commands)) == len(commands) == 600
    for e in ENTRIES:
        assert e["source"].startswith("github:laude-institute/terminal-bench-leaderboard@"), e
        assert e["source"].endswith("/sessions/agent.log") and e["agent"], e


def test_not_held_or_refused_more_than_measured() -> None:
    refused, held = [], []
    for entry in ENTRIES:
        result = evaluate(_call(entry))
        line = f"{entry['command'][:120]!r} -> {result.explain()}"
        if result.outcome == "deny":
            refused.append(line)
        elif result.outcome != "allow":
            held.append(line)
    assert len(held) <= MAX_HELD, f"{len(held)} held:\n" + "\n".join(held)
    assert len(refused) <= MAX_REFUSED, f"{len(refused)} refused:\n" + "\n".join(refused)
