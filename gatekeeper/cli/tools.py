"""``gatekeeper tools pins|approve``: MCP tool definitions withheld since they changed or were
flagged, with their diffs, and pinning the one reviewed. Same connection options and exit codes
as ``gatekeeper approvals`` (whose plumbing this reuses)."""

from __future__ import annotations

import argparse
from typing import Any

from gatekeeper_client import OperatorClient

from .approvals import _connection_options, _print_json, _with_client, safe


def register(sub: Any) -> None:
    p = sub.add_parser("tools", help="MCP tool definitions pinned by digest (operator API)")
    _connection_options(p, None)
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    pins = verbs.add_parser("pins", help="withheld definitions (changed or flagged), each with its diff")
    pins.add_argument("--all", action="store_true", help="every pinned tool, not only the withheld ones")
    pins.add_argument("--json", action="store_true", help="print the API's JSON")
    pins.set_defaults(run=run_pins)
    approve = verbs.add_parser("approve", help="pin the definition you reviewed (its seen digest)")
    approve.add_argument("upstream")
    approve.add_argument("tool")
    approve.add_argument("digest", help="the seen digest `tools pins` showed")
    approve.set_defaults(run=run_approve)
    for verb in (pins, approve):
        _connection_options(verb, argparse.SUPPRESS)


def run_pins(args: argparse.Namespace) -> int:
    def act(client: OperatorClient) -> int:
        pins = client.tool_pins("all" if args.all else "withheld")
        if args.json:
            _print_json({"pins": pins})
            return 0
        if not pins:
            print("no withheld tool definitions" if not args.all else "no tool definitions seen yet")
            return 0
        for pin in pins:
            flags = f" flags: {', '.join(map(str, pin.get('flags') or []))}" if pin.get("flags") else ""
            print(
                f"{safe(str(pin['upstream']))}/{safe(str(pin['tool']))}  {pin['state']}  "
                f"seen {pin['seen_digest']}{flags}"
            )
            if pin.get("diff"):
                print(safe_block(str(pin["diff"])))
        return 0

    return _with_client(args, act)


def run_approve(args: argparse.Namespace) -> int:
    def act(client: OperatorClient) -> int:
        pin = client.approve_tool(args.upstream, args.tool, args.digest)
        print(f"pinned {safe(str(pin['upstream']))}/{safe(str(pin['tool']))} at {pin['pinned_digest']}")
        return 0

    return _with_client(args, act)


def safe_block(text: str) -> str:
    """A diff shown line by line, each line escaped (an upstream wrote it)."""
    return "\n".join(safe(line) for line in text.splitlines())
