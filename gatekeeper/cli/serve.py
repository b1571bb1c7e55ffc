"""``gatekeeper serve [--config FILE]``."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from ..app import serve_forever
from ..config import load_config
from ..logs import configure_logging


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run Gatekeeper (embedded defaults when no --config is given)")
    p.add_argument("--config", type=Path, default=None, help="path to gatekeeper.yaml")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    configure_logging(config.log_level)
    asyncio.run(serve_forever(config))
    return 0
