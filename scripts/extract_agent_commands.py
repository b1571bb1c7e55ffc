"""Extract the shell commands real coding agents ran from public trajectory files.

Reads trajectories straight out of a git directory (as ``fetch`` leaves them: no work
tree) and prints one JSON object per distinct command: ``command``, ``agent`` and
``source`` (``github:OWNER/NAME@COMMIT:PATH``, the trajectory it was first seen in).

Formats understood:
- mini-swe-agent ``*.traj.json``: each assistant message's single ```bash block.
- SWE-agent ``*.traj``: each step's ``action`` (its own editor and navigation
  commands, which are not programs in a sandbox, are left out; see ``SWE_AGENT_TOOLS``).
- terminal-bench's recorded terminals (``sessions/agent.log`` of mini-swe-agent runs in
  laude-institute/terminal-bench-leaderboard): each ```bash block the agent printed after its
  instructions. The terminal was 160 columns wide: a line it wrapped is joined again, and a
  block that ``bash -n`` cannot read whole (a fence inside a here-document cut it) is left out.

The corpus (tests/corpus/benign_real_world.jsonl) was made with::

    python scripts/extract_agent_commands.py \
        /work/.mirror/gruckion+mini-swe-agent/repo gruckion/mini-swe-agent mini-swe-agent \
        /work/.mirror/princeton-nlp+SWE-agent/repo princeton-nlp/SWE-agent SWE-agent

and sampled with ``--sample N --seed S`` (a seeded random sample of all distinct commands,
so that no one picked the easy ones).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

BASH_BLOCK = re.compile(r"```bash\n(.*?)\n```", re.S)
# SWE-agent's own tools (bash functions of its harness, not programs a sandbox has).
SWE_AGENT_TOOLS = frozenset(
    {
        "open",
        "goto",
        "scroll_up",
        "scroll_down",
        "create",
        "edit",
        "insert",
        "submit",
        "search_dir",
        "search_file",
        "find_file",
        "str_replace_editor",
        "decompile",
        "disassemble",
        "connect_start",
        "connect_sendline",
        "connect_stop",
        "set_cursors",
        "debug_start",
        "debug_add_breakpoint",
        "debug_continue",
        "debug_step",
        "debug_exec",
        "debug_stop",
        "exit_forfeit",
        "filemap",
    }
)
MAX_COMMAND = 4096


def git(repo: Path, *args: str) -> str:
    argv = ["git", "--git-dir", str(repo), *args]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout  # noqa: S603


def mini_swe_agent(doc: object) -> Iterator[str]:
    messages = doc.get("messages") if isinstance(doc, dict) else None
    if not isinstance(messages, list):
        return
    for m in messages:
        if isinstance(m, dict) and m.get("role") == "assistant" and isinstance(m.get("content"), str):
            blocks = BASH_BLOCK.findall(m["content"])
            if len(blocks) == 1:  # the harness ran a message only when it held exactly one
                yield blocks[0].strip()


def swe_agent(doc: object) -> Iterator[str]:
    steps = doc.get("trajectory") if isinstance(doc, dict) else None
    if not isinstance(steps, list):
        return
    for s in steps:
        action = s.get("action") if isinstance(s, dict) else None
        if isinstance(action, str) and action.strip():
            action = action.strip()
            if action.split()[0] not in SWE_AGENT_TOOLS:
                yield action


ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]|\x1b\][^\x07]*\x07|\r")
SPINNER = re.compile(
    r"[\u280b\u2819\u2839\u2838\u283c\u2834\u2826\u2827\u2807\u280f] Waiting for the LM to respond\.\.\."
)
TERMINAL_WIDTH = 160
# The instance template's own examples, printed before the agent's first step.
TEMPLATE_EXAMPLES = frozenset({"your_command_here", "anything"})


def _unwrapped(block: str) -> str:
    """Lines the 160-column terminal wrapped, joined again: a full line, or a line that kept its
    trailing space because the next word did not fit after it."""
    lines = block.split("\n")
    out = [lines[0]]
    for line in lines[1:]:
        prev = out[-1]
        word = line.split(" ", 1)[0]
        soft = prev.endswith(" ") and len(prev) + len(word) > TERMINAL_WIDTH
        if len(prev) >= TERMINAL_WIDTH or soft:
            out[-1] += line
        else:
            out.append(line)
    return "\n".join(out)


def _whole(cmd: str) -> bool:
    """Does bash read the block whole (no here-document cut short, no syntax error)?"""
    # bash -n only parses (runs nothing); an argv list, no shell; bash is found on PATH as the
    # reference parser the corpus is checked against
    check = subprocess.run(["bash", "-n", "-c", cmd], capture_output=True, text=True)  # noqa: S603, S607
    return check.returncode == 0 and "warning" not in check.stderr


def terminal_log(text: str) -> Iterator[str]:
    text = SPINNER.sub("", ANSI.sub("", text))
    start = text.find("</example_response>")
    for block in BASH_BLOCK.findall(text[start:] if start >= 0 else text):
        cmd = _unwrapped(block.strip())
        if cmd and cmd not in TEMPLATE_EXAMPLES and _whole(cmd):
            yield cmd


def commands(repo: Path, name: str, agent: str) -> Iterator[dict[str, str]]:
    commit = git(repo, "rev-parse", "HEAD").strip()
    for path in sorted(git(repo, "ls-tree", "-r", "--name-only", "HEAD").split("\n")):
        if path.endswith(".traj.json"):
            reader = mini_swe_agent
        elif path.endswith(".traj"):
            reader = swe_agent
        elif path.endswith("/sessions/agent.log") and "swe-agent-mini" in path:
            cmds = list(terminal_log(git(repo, "show", f"HEAD:{path}")))
            yield from (
                {"command": c, "agent": agent, "source": f"github:{name}@{commit}:{path}"}
                for c in cmds
                if 0 < len(c) <= MAX_COMMAND
            )
            continue
        else:
            continue
        if "/ctf/" in path:  # capture-the-flag runs attack servers on purpose: not coding work
            continue
        try:
            doc = json.loads(git(repo, "show", f"HEAD:{path}"))
        except (json.JSONDecodeError, subprocess.CalledProcessError):
            continue
        for cmd in reader(doc):
            if 0 < len(cmd) <= MAX_COMMAND:
                yield {"command": cmd, "agent": agent, "source": f"github:{name}@{commit}:{path}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("repos", nargs="+", help="triples: GIT_DIR OWNER/NAME AGENT")
    ap.add_argument("--sample", type=int, default=0, help="a seeded random sample of this many")
    ap.add_argument("--seed", type=int, default=12)
    ns = ap.parse_args()
    if len(ns.repos) % 3:
        ap.error("repositories come in triples: GIT_DIR OWNER/NAME AGENT")
    seen: dict[str, dict[str, str]] = {}
    for i in range(0, len(ns.repos), 3):
        for entry in commands(Path(ns.repos[i]), ns.repos[i + 1], ns.repos[i + 2]):
            seen.setdefault(entry["command"], entry)
    entries = list(seen.values())
    if ns.sample:
        rng = random.Random(ns.seed)  # noqa: S311 - a reproducible sample, not a secret
        entries = rng.sample(entries, min(ns.sample, len(entries)))
    for e in entries:
        sys.stdout.write(json.dumps(e, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
