"""Binding Gatekeeper's listening sockets: a port that cannot be had is one line saying which
port, for what, and the flag or configuration key that changes it (never a traceback)."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from typing import Final

from gatekeeper import codes

from .errors import ListenError

#: Each listener Gatekeeper opens: the ``serve`` flag and the configuration key for its port.
PORT_OPTIONS: Final = {
    "agent": ("--agent-port", "listeners.agent.port"),
    "operator": ("--operator-port", "listeners.operator.port"),
    "egress": ("--egress-port", "listeners.egress.port"),
    "demo HTTP": ("--demo-http-port", "demo.http_port"),
    "demo MCP": ("--demo-mcp-port", "demo.mcp_port"),
}


@contextlib.contextmanager
def binding(listener: str, host: str, port: int) -> Iterator[None]:
    """Turn an ``OSError`` raised while ``listener`` binds ``host:port`` into a ``ListenError``."""
    try:
        yield
    except OSError as exc:
        flag, key = PORT_OPTIONS[listener]
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        in_use = exc.errno == errno.EADDRINUSE
        problem = "is already in use" if in_use else f"cannot be listened on ({exc.strerror or exc})"
        raise ListenError(
            f"{address} (the {listener} listener) {problem}: choose another port with {flag} N "
            f"or {key} in the configuration file",
            code=codes.PORT_IN_USE if in_use else codes.LISTEN_FAILED,
            listener=listener,
            port=port,
        ) from None
