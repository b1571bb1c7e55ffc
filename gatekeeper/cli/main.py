"""Entry point: ``gatekeeper serve``, ``gatekeeper token issue``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..errors import ConfigError, GatekeeperError
from . import hook


def build_parser() -> argparse.ArgumentParser:
    # Imported here: `gatekeeper hook ...` runs before every tool call and must start fast.
    from . import approvals, audit, mcp_stdio, policy, serve, token, tools

    parser = argparse.ArgumentParser(
        prog="gatekeeper", description="Capability-gating proxy for AI agents' tool calls"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.register(sub)
    token.register(sub)
    approvals.register(sub)
    policy.register(sub)
    audit.register(sub)
    hook.register(sub)
    tools.register(sub)
    mcp_stdio.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["hook"]:  # the hooks import only what they use
        return hook.main(args_list)
    parser = build_parser()
    args = parser.parse_args(args_list)
    try:
        result: int = args.run(args)
        return result
    except ConfigError as exc:
        print(f"gatekeeper: configuration error: {exc.message}", file=sys.stderr)
        return 2
    except GatekeeperError as exc:
        print(f"gatekeeper: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `gatekeeper ... | head`: the reader left; that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
