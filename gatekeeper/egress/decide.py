"""What a connection through the egress gate would do, as capabilities: the pure part of the gate.

A target is named by the sandboxed program (``CONNECT host:port`` or an absolute ``http://`` URL).
Its name is read by the same URL inspector as ``http.fetch`` arguments (``net.egress:HOST:PORT``,
plus ``net.internal`` / ``net.metadata`` / ``net.idn`` for what the literal says), and the address
Gatekeeper resolved it to is classed again, so a public name that resolves to a private address
(DNS rebinding, split horizon) is still ``net.internal``. Pinned names are the operator's word and
their address is not re-classed (a private mirror is the point of a pin).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ..gate import build_call
from ..inspectors import InspectContext
from ..inspectors.url import host_class_capabilities, inspect_url, normalize_host
from ..models import Capability, ToolCall
from .credentials import EgressGrant

_AUTHORITY: Final = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]/@]+):(\d{1,5})$")
_CONTEXT: Final = InspectContext()


class BadTarget(ValueError):
    """The proxy request does not name a target Gatekeeper can read unambiguously."""


@dataclass(frozen=True, slots=True)
class Target:
    host: str  # normalised: lower-case, IDNA, numeric forms as dotted quads; IPv6 in brackets
    port: int

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"


def parse_authority(text: str) -> tuple[str, int]:
    """``host:port`` as a CONNECT names it; the port is required."""
    match = _AUTHORITY.match(text)
    if match is None:
        raise BadTarget(f"expected HOST:PORT, got {text[:100]!r}")
    port = int(match.group(2))
    if not 0 < port <= 65535:
        raise BadTarget(f"port {port} is out of range")
    return match.group(1), port


@functools.lru_cache(maxsize=4096)
def read_target(host: str, port: int) -> tuple[Target, tuple[Capability, ...]]:
    """Normalise a host the way the URL inspector does, and the capabilities its literal implies.
    Pure, and read once per connection on the connect path: remembered for the hosts seen last."""
    literal = host if not (":" in host and not host.startswith("[")) else f"[{host}]"
    capabilities = inspect_url(f"https://{literal}:{port}/", _CONTEXT)
    egress = [c for c in capabilities if c.name.startswith("net.egress:")]
    if len(egress) != 1:
        reason = next((c.evidence for c in capabilities if c.name.endswith(".opaque")), "")
        raise BadTarget(f"the host {host[:100]!r} could not be understood {reason}".rstrip())
    authority = egress[0].name.removeprefix("net.egress:")
    name, _, port_text = authority.rpartition(":")
    return Target(name, int(port_text)), tuple(capabilities)


def address_capabilities(address: str, evidence: str) -> list[Capability]:
    """What the address a name resolved to says about where the connection really goes. Only a
    plain IP address is classed: anything else (a scoped IPv6 address such as ``fe80::1%eth0``,
    which an /etc/hosts line can give; a name) raises ``BadTarget``, never "no class"."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise BadTarget(f"the answer {address[:100]!r} is not a plain IP address") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
        raise BadTarget(f"the answer {address[:100]!r} is not a plain IP address (it names an interface)")
    _, host_class = normalize_host(f"[{ip}]" if ip.version == 6 else str(ip))
    if host_class == "invalid":  # pragma: no cover - a parsed address always has a class
        raise BadTarget(f"the answer {address[:100]!r} could not be classed")
    return host_class_capabilities(host_class, evidence)


def connection_call(
    grant: EgressGrant, target: Target, capabilities: Sequence[Capability], parent: str | None
) -> ToolCall:
    """The connection as a call of its parent's tool, decided with the parent's principal. Its
    digest binds the target and the parent call (``parent``: the grant's call, or for a stdio
    server the call in flight on it, if known), so an operator's approval covers exactly this
    connection of this call."""
    arguments = {"connect": target.authority, "call": parent or ""}
    return build_call(grant.principal, grant.tool, arguments, list(capabilities))
