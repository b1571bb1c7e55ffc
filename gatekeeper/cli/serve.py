"""``gatekeeper serve [--config FILE] [--agent-port N] [--operator-port N] [--egress-port N] ...``.

A port flag overrides the configuration file (or the embedded defaults) for that listener. A port
that cannot be had stops start-up with one line naming it and the flag or key that changes it.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..app import serve_forever
from ..config import Config, Listener, load_config
from ..errors import ConfigError
from ..listen import PORT_OPTIONS
from ..logs import configure_logging
from ..workers.supervisor import serve_workers, with_workers


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535 (0: any free port), not {port}")
    return port


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run Gatekeeper (embedded defaults when no --config is given)")
    p.add_argument("--config", type=Path, default=None, help="path to gatekeeper.yaml")
    defaults = {"agent": 8080, "operator": 8081, "egress": 8082, "demo HTTP": 8090, "demo MCP": 8091}
    for listener, (flag, key) in PORT_OPTIONS.items():
        p.add_argument(
            flag,
            type=_port,
            default=None,
            metavar="N",
            dest=flag.removeprefix("--").replace("-", "_"),
            help=f"the {listener} listener's port (default {key}, else {defaults[listener]})",
        )
    p.add_argument(
        "--workers",
        default=None,
        metavar="N",
        help="serving processes on the same listeners: a number or 'auto' (one per core); "
        "overrides `workers`",
    )
    p.set_defaults(run=run)


def with_ports(config: Config, args: argparse.Namespace) -> Config:
    """``config`` with the ports the flags name."""
    changes: dict[str, Any] = {}
    if args.agent_port is not None:
        changes["agent_listener"] = replace(config.agent_listener, port=args.agent_port)
    if args.operator_port is not None:
        changes["operator_listener"] = replace(config.operator_listener, port=args.operator_port)
    if args.egress_port is not None:  # as listeners.egress in the file: the egress gate starts
        changes["egress_listener"] = Listener(config.egress_address.host, args.egress_port)
    demo = config.demo
    if args.demo_http_port is not None:
        demo = replace(demo, http_port=args.demo_http_port)
    if args.demo_mcp_port is not None:
        demo = replace(demo, mcp_port=args.demo_mcp_port)
    if demo != config.demo:
        changes["demo"] = demo
    updated = replace(config, **changes)
    agent, operator = updated.agent_listener, updated.operator_listener
    if (agent.host, agent.port) == (operator.host, operator.port) and agent.port != 0:
        raise ConfigError("--agent-port and --operator-port must differ (separation of duties)")
    return updated


def run(args: argparse.Namespace) -> int:
    config = with_ports(load_config(args.config), args)
    if args.workers is not None:
        config = with_workers(config, args.workers)
    configure_logging(config.log_level)
    if config.workers > 1:
        return asyncio.run(serve_workers(config))
    asyncio.run(serve_forever(config))
    return 0
