"""``gatekeeper token issue``: mint a token the local development configuration accepts."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..config import load_config
from ..errors import ConfigError
from ..identity import ensure_dev_key, issue_token


def register(sub: Any) -> None:
    p = sub.add_parser("token", help="development tokens")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    issue = verbs.add_parser("issue", help="print a JWT signed with the development key")
    issue.add_argument("--sub", required=True, help="the principal's name (the token's subject)")
    issue.add_argument("--role", action="append", default=[], help="a role; repeat for several")
    issue.add_argument(
        "--operator", action="store_true", help="an operator token (for the operator listener)"
    )
    issue.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    issue.add_argument("--config", type=Path, default=None, help="path to gatekeeper.yaml")
    issue.set_defaults(run=run_issue)


def run_issue(args: argparse.Namespace) -> int:
    config = load_config(args.config, offline=True)
    ident = config.identity
    if ident.public_keys or ident.jwks_url:
        raise ConfigError(
            f"{config.source}: identity uses external keys; mint tokens with your identity provider, "
            "not with the development key"
        )
    if args.ttl <= 0:
        raise ConfigError("--ttl must be a positive number of seconds")
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ensure_dev_key(config.data_dir)
    print(
        issue_token(
            key,
            subject=args.sub,
            roles=args.role,
            operator=args.operator,
            ttl_seconds=args.ttl,
            issuer=ident.issuer,
            audience=ident.operator_audience if args.operator else ident.audience,
        )
    )
    return 0
