"""structlog set-up: JSON lines on stdout, with secrets masked before rendering."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = frozenset({"token", "authorization", "password", "secret", "api_key", "headers", "jwt", "key"})


def mask_secrets(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Never let a token or an upstream credential reach a log line, whoever logged it."""
    for key in list(event):
        if key.lower() in _SECRET_KEYS:
            event[key] = "[masked]"
    return event


def configure_logging(level: str = "info", stream: Any = None) -> None:
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(level=numeric, stream=stream or sys.stderr, format="%(message)s")
    for noisy in ("aiohttp.access", "casbin", "uvicorn", "uvicorn.error", "uvicorn.access", "mcp", "httpx2"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            mask_secrets,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=True,  # binding the processor chain once per logger, not per line
    )
