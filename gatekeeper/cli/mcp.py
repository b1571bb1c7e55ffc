"""``gatekeeper mcp stdio --upstream NAME``: Gatekeeper's ``/mcp/NAME`` for stdio-only MCP clients."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..errors import ConfigError


def register(sub: Any) -> None:
    p = sub.add_parser("mcp", help="MCP helpers")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    stdio = verbs.add_parser(
        "stdio", help="serve Gatekeeper's /mcp/NAME on stdin/stdout, for clients that start a command"
    )
    stdio.add_argument("--upstream", required=True, help="the MCP upstream's name (/mcp/NAME)")
    stdio.add_argument("--url", default=None, help="Gatekeeper's agent listener (default $GATEKEEPER_URL)")
    stdio.add_argument("--token", default=None, help="the agent's token (default $GATEKEEPER_TOKEN)")
    stdio.set_defaults(run=run_stdio)


def run_stdio(args: argparse.Namespace) -> int:
    url = args.url or os.environ.get("GATEKEEPER_URL")
    token = args.token or os.environ.get("GATEKEEPER_TOKEN")
    if not url or not token:
        raise ConfigError("set GATEKEEPER_URL and GATEKEEPER_TOKEN (or --url and --token)")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"GATEKEEPER_URL must be an http(s) URL, not {url!r}")
    from ..upstream.stdio_front import run  # the SDK loads only for this command

    try:
        run(url, token, args.upstream)
    except Exception as exc:  # stdout is the protocol: say why on stderr
        print(f"gatekeeper mcp stdio: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
