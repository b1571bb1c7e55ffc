"""What a ``CONNECT`` tunnel may carry: its first bytes must be for the host it was opened for.

The gate decides a tunnel on the name in ``CONNECT host:port`` and connects to that name's
address. What the client then sends picks the site at that address: a TLS ``server_name`` or an
HTTP ``Host``. On a CDN's or a shared host's address another name is another site, so without
this check an allowed ``CONNECT pypi.org:443`` followed by a ClientHello for
``anything.example`` reaches any site the same CDN serves.

So the gate reads the client's opening before relaying it:

- a TLS ClientHello (one record, not fragmented) must name the target host as its only
  ``server_name``, or name none when the target is an IP literal; an encrypted ClientHello
  (ECH: the real name hidden, and a client-facing server may not hold the outer name to its
  public name) is refused, GREASE too (Chromium's: start it with
  ``--disable-features=EncryptedClientHello``), as is any other TLS record first;
- plain HTTP is read as one request, as an absolute-form one is (proxy.py): its target may name
  only the tunnel's host, its ``Host`` becomes that host, and the connection ends with its answer
  (a second request on the same connection could name another host);
- anything else (SSH's banner, a database's protocol) is relayed as it is; and when the target
  speaks first (a server-first protocol) there is no opening of the client's to read.

The Host header inside TLS is out of sight: domain fronting on a CDN that allows it is not
stopped here (the CDN's own check is the wall for that).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import struct
from dataclasses import dataclass
from typing import Final

TLS_HANDSHAKE: Final = 0x16
TLS_CONTENT_TYPES: Final = frozenset(range(0x14, 0x19))  # change_cipher_spec .. heartbeat
MAX_RECORD: Final = 16384 + 5  # a plaintext TLS record, with its header
_CLIENT_HELLO: Final = 0x01
_SERVER_NAME: Final = 0x0000
_ENCRYPTED_CLIENT_HELLO: Final = 0xFE0D
_TCHAR: Final = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
# A request line's start: a method, blanks, then a path, ``*``, a scheme or ``host:port``.
_HTTP_LIKE: Final = re.compile(rb"%s+[ \t]+(?:[/*]|[A-Za-z][A-Za-z0-9+.\-]*:)" % _TCHAR)
_HTTP_PARTIAL: Final = re.compile(rb"%s*(?:[ \t]+[A-Za-z0-9+.\-]*)?" % _TCHAR)  # could still become one


RELAY: Final = "relay"  # a complete opening the tunnel may carry as it is
HTTP: Final = "http"  # the start of a plain-HTTP request: read as one request (proxy.py)


class TunnelRefused(Exception):
    """The tunnel's opening is for another site, or cannot be read: nothing of it is relayed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Opening:
    """The client's first bytes (to send on, or an HTTP request's start), or none: the target
    spoke first."""

    data: bytes
    server_first: bool = False
    http: bool = False


def judge(data: bytes, host: str) -> str | None:
    """``RELAY`` when ``data`` is a complete opening the tunnel to ``host`` may carry, ``HTTP``
    when it starts a plain-HTTP request, None when more bytes are needed to tell; raises
    ``TunnelRefused`` otherwise. ``host``: the normalised target (lower case, IPv6 in brackets)."""
    if not data:
        return None
    if data[0] in TLS_CONTENT_TYPES:
        if len(data) < 5:
            return None
        length = struct.unpack("!H", data[3:5])[0]
        if data[0] != TLS_HANDSHAKE or length + 5 > MAX_RECORD:
            raise TunnelRefused("the tunnel's first TLS record is not a ClientHello")
        if len(data) < 5 + length:
            return None
        named = _server_name(data[5 : 5 + length])
        wanted = None if _is_ip_literal(host) else host
        if named != wanted:
            shown = "no name" if named is None else repr(named[:100])
            raise TunnelRefused(f"the TLS ClientHello names {shown}; the tunnel was opened for {host}")
        return RELAY
    line = data.lstrip(b" \t\r\n")  # servers skip empty lines before a request line; lenient ones, blanks
    if _HTTP_LIKE.match(line):
        return HTTP
    return None if _HTTP_PARTIAL.fullmatch(line) else RELAY


def _server_name(record: bytes) -> str | None:
    """The one host_name of a ClientHello handshake message (in one record), or None."""
    try:
        if record[0] != _CLIENT_HELLO:
            raise TunnelRefused("the tunnel's first TLS handshake message is not a ClientHello")
        length = int.from_bytes(record[1:4], "big")
        if length + 4 != len(record):
            raise TunnelRefused("the ClientHello is fragmented or padded; it is not read in parts")
        at = 4 + 2 + 32  # version, random
        at += 1 + record[at]  # session id
        at += 2 + struct.unpack("!H", record[at : at + 2])[0]  # cipher suites
        at += 1 + record[at]  # compression methods
        if at == len(record):
            return None  # no extensions at all
        end = at + 2 + struct.unpack("!H", record[at : at + 2])[0]
        if end != len(record):
            raise TunnelRefused("the ClientHello's extensions do not fill it")
        at += 2
        names: list[str] = []
        seen: set[int] = set()
        while at < end:
            kind, size = struct.unpack("!HH", record[at : at + 4])
            body = record[at + 4 : at + 4 + size]
            if len(body) != size or kind in seen:
                raise TunnelRefused("the ClientHello's extensions are malformed or repeated")
            seen.add(kind)
            if kind == _ENCRYPTED_CLIENT_HELLO:
                raise TunnelRefused("an encrypted ClientHello hides the name it is for")
            if kind == _SERVER_NAME:
                names.extend(_host_names(body))
            at += 4 + size
    except (IndexError, struct.error):
        raise TunnelRefused("the ClientHello is truncated") from None
    if len(names) > 1:
        raise TunnelRefused("the ClientHello names more than one server")
    return names[0] if names else None


def _host_names(body: bytes) -> list[str]:
    listed = struct.unpack("!H", body[:2])[0]
    if listed + 2 != len(body):
        raise TunnelRefused("the ClientHello's server_name list is malformed")
    names, at = [], 2
    while at < len(body):
        kind, size = body[at], struct.unpack("!H", body[at + 1 : at + 3])[0]
        raw = body[at + 3 : at + 3 + size]
        if kind != 0 or len(raw) != size or not raw.isascii():
            raise TunnelRefused("the ClientHello's server_name is not one ASCII host name")
        names.append(raw.decode().lower().removesuffix("."))
        at += 3 + size
    return names


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


async def read_opening(
    client: socket.socket,
    target: socket.socket,
    host: str,
    first: bytes,
    idle_seconds: float,
    head_seconds: float,
) -> Opening:
    """The client's opening, judged (``first``: bytes that came with the CONNECT head). Until the
    client sends anything, either side may speak first; once it has, the rest of its opening
    must follow within ``head_seconds``."""
    loop = asyncio.get_running_loop()
    data = first
    if not data:
        spoke = await _first_to_speak(client, target, idle_seconds)
        if spoke is None:
            raise TimeoutError("neither side of the tunnel spoke")
        if spoke is target:
            return Opening(b"", server_first=True)
    try:
        async with asyncio.timeout(head_seconds):
            while (kind := judge(data, host)) is None:
                if len(data) >= MAX_RECORD:
                    raise TunnelRefused("the tunnel's opening is too long to read")
                chunk = await loop.sock_recv(client, MAX_RECORD - len(data))
                if not chunk:
                    raise TunnelRefused("the client closed the tunnel inside its opening")
                data += chunk
    except TimeoutError:
        raise TunnelRefused(f"the tunnel's opening did not arrive within {head_seconds:g} s") from None
    return Opening(data, http=kind == HTTP)


async def _first_to_speak(
    client: socket.socket, target: socket.socket, seconds: float
) -> socket.socket | None:
    """Whichever socket becomes readable first (the client on a tie, so it is judged); None when
    neither does within ``seconds``."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[socket.socket] = loop.create_future()

    def readable(sock: socket.socket) -> None:
        if not ready.done():
            ready.set_result(sock)

    loop.add_reader(client.fileno(), readable, client)
    loop.add_reader(target.fileno(), readable, target)
    try:
        async with asyncio.timeout(seconds):
            await ready
    except TimeoutError:
        return None
    finally:
        loop.remove_reader(client.fileno())
        loop.remove_reader(target.fileno())
    return ready.result()
