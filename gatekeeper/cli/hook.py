"""``gatekeeper hook claude-code``: a Claude Code PreToolUse hook that asks Gatekeeper.

Claude Code runs the command with the hook event on stdin and reads the answer from stdout.
It lets a tool run when a hook fails with any status but 2, so every failure here (Gatekeeper
down, a bad token, a timeout, bad input, a bug) is a refusal: the reason on stderr and exit 2,
which Claude Code treats as "blocked", whatever else went wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .. import strictjson
from ..hooks.claude_code import (
    EscalateMode,
    GatekeeperCall,
    HookMapping,
    NotAsked,
    Workspace,
    answer,
    hook_output,
    project_dir,
    translate,
)

MAX_EVENT_BYTES = 16 * 1024 * 1024  # a Write of a large file arrives whole
BLOCK = 2  # Claude Code's exit status for "blocked"; stderr is the reason shown


def register(sub: Any) -> None:
    p = sub.add_parser("hook", help="hooks for agent runtimes that run their own tools")
    runtimes = p.add_subparsers(dest="runtime", required=True, metavar="RUNTIME")
    cc = runtimes.add_parser(
        "claude-code",
        help="a Claude Code PreToolUse hook: reads the event on stdin, answers allow / deny / ask",
    )
    cc.add_argument("--url", default=None, help="Gatekeeper's agent listener (default $GATEKEEPER_URL)")
    cc.add_argument("--token", default=None, help="the agent's token (default $GATEKEEPER_TOKEN)")
    cc.add_argument(
        "--on-escalate",
        choices=("ask", "hold"),
        default=None,
        help="ask: let the person at the terminal decide (interactive, the default); hold: wait on "
        "Gatekeeper's approval queue, then allow or deny (headless runs); $GATEKEEPER_HOOK_ESCALATE",
    )
    cc.add_argument(
        "--hold-seconds", type=float, default=None, help="how long a held call waits (default 50)"
    )
    cc.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for Gatekeeper's answer")
    cc.add_argument(
        "--tools",
        type=Path,
        default=None,
        help="your tool mapping, merged over the shipped one ($GATEKEEPER_HOOK_TOOLS)",
    )
    cc.add_argument("--workspace", default="/workspace", help="where the policy expects the project")
    cc.add_argument(
        "--project-dir", default=None, help="the project on this machine ($CLAUDE_PROJECT_DIR, else cwd)"
    )
    cc.set_defaults(run=run_claude_code)


def main(argv: list[str]) -> int:
    """``gatekeeper hook ...`` on its own parser, without loading the server's modules."""
    parser = argparse.ArgumentParser(prog="gatekeeper")
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


def run_claude_code(args: argparse.Namespace) -> int:
    try:
        permission, reason = _decide(args)
    except Exception as exc:  # fail closed, whatever it was
        print(f"Gatekeeper hook failed, so the call is refused: {type(exc).__name__}: {exc}", file=sys.stderr)
        return BLOCK
    print(json.dumps(hook_output(permission, reason)))
    return 0


def _decide(args: argparse.Namespace) -> tuple[Any, str]:
    url = args.url or os.environ.get("GATEKEEPER_URL")
    token = args.token or os.environ.get("GATEKEEPER_TOKEN")
    if not url or not token:
        raise RuntimeError("set GATEKEEPER_URL and GATEKEEPER_TOKEN (or --url and --token)")
    chosen = args.on_escalate or os.environ.get("GATEKEEPER_HOOK_ESCALATE") or "ask"
    if chosen not in ("ask", "hold"):
        raise RuntimeError(f"GATEKEEPER_HOOK_ESCALATE must be ask or hold, not {chosen!r}")
    escalate: EscalateMode = "hold" if chosen == "hold" else "ask"
    tools = args.tools or (Path(p) if (p := os.environ.get("GATEKEEPER_HOOK_TOOLS")) else None)
    mapping = HookMapping.load(tools)
    raw = sys.stdin.buffer.read(MAX_EVENT_BYTES + 1)
    if len(raw) > MAX_EVENT_BYTES:
        raise RuntimeError(f"the hook event is larger than {MAX_EVENT_BYTES} bytes")
    event = strictjson.loads(raw, max_bytes=MAX_EVENT_BYTES, max_depth=64)
    call = translate(event, mapping, Workspace(project_dir(event, args.project_dir), args.workspace))
    if isinstance(call, NotAsked):
        if call.permission == "ask" and escalate == "hold":
            return "deny", f"{call.reason}; refused, as nobody is there to ask"
        return call.permission, call.reason
    hold = args.hold_seconds if args.hold_seconds is not None else 50.0
    wait = int(hold) if escalate == "hold" else 0
    status, body = _post_decide(url, token, call, wait, args.timeout + wait)
    return answer(status, body, escalate)


def _post_decide(url: str, token: str, call: GatekeeperCall, wait: int, timeout: float) -> tuple[int, Any]:
    if not url.startswith(("http://", "https://")):
        raise RuntimeError(f"GATEKEEPER_URL must be an http(s) URL, not {url!r}")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked just above
        url.rstrip("/") + "/v1/decide",
        data=json.dumps({"tool": call.tool, "arguments": call.arguments}).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
            "Prefer": f"wait={wait}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - http(s) only, checked above
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # 4xx/5xx: the body says why
        try:
            return exc.code, json.loads(exc.read())
        except ValueError:
            return exc.code, {}
