"""tunnel.judge: a CONNECT tunnel's opening must be for its own host (real ClientHellos from
Python's ssl, and hand-made ones for what no ordinary client sends)."""

from __future__ import annotations

import ssl
import struct

import pytest

from gatekeeper.egress.tunnel import HTTP, RELAY, TunnelRefused, judge


def client_hello(server_hostname: str | None) -> bytes:
    """The first flight of Python's TLS client for ``server_hostname`` (None: no SNI)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = server_hostname is not None
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def hand_made(*extensions: tuple[int, bytes]) -> bytes:
    exts = b"".join(struct.pack("!HH", kind, len(body)) + body for kind, body in extensions)
    body = b"\x03\x03" + b"\0" * 32 + b"\0" + b"\x00\x02\x13\x01" + b"\x01\x00"
    body += struct.pack("!H", len(exts)) + exts
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


def sni(*names: bytes) -> tuple[int, bytes]:
    listed = b"".join(b"\0" + struct.pack("!H", len(n)) + n for n in names)
    return 0, struct.pack("!H", len(listed)) + listed


def test_a_client_hello_for_the_tunnel_s_host_passes_whole() -> None:
    hello = client_hello("pypi.org")
    assert judge(hello, "pypi.org") == RELAY
    assert judge(hello[:3], "pypi.org") is None and judge(hello[:-1], "pypi.org") is None
    assert judge(client_hello(None), "[::1]") == RELAY  # an IP literal: no name at all
    assert judge(hand_made(sni(b"PyPI.org.")), "pypi.org") == RELAY


@pytest.mark.parametrize(
    ("opening", "host"),
    [
        (client_hello("evil.example"), "pypi.org"),  # another site on the same address
        (client_hello(None), "pypi.org"),  # no name: the address's default site
        (client_hello("pypi.org"), "[::1]"),  # a name on an IP literal's tunnel
        (hand_made(sni(b"pypi.org", b"evil.example")), "pypi.org"),
        (hand_made(sni(b"pypi.org"), sni(b"evil.example")), "pypi.org"),  # repeated extension
        (hand_made(sni(b"pypi.org"), (0xFE0D, b"\0" * 8)), "pypi.org"),  # ECH hides the real name
        (b"\x15\x03\x01\x00\x02\x02\x28", "pypi.org"),  # an alert first
        # The ClientHello split over two records: the first one holds no name.
        (b"\x16\x03\x01\x00\x10" + hand_made(sni(b"pypi.org"))[5:21], "pypi.org"),
    ],
)
def test_an_opening_for_another_site_is_refused(opening: bytes, host: str) -> None:
    with pytest.raises(TunnelRefused):
        judge(opening, host)


@pytest.mark.parametrize(
    "opening",
    [
        b"GET / HTTP/1.1\r\nHost: pypi.org\r\n\r\n",
        b"\r\nGET /",
        b" \tGET http://evil.example/ HTTP/1.1\r\n",  # blanks a lenient server skips
        b"PRI * HTTP/2.0\r\n\r\n",
        b"CONNECT evil.example:443 HTTP/1.1\r\n\r\n",
    ],
)
def test_plain_http_is_read_as_one_request(opening: bytes) -> None:
    """proxy.py reads it whole and forwards one request, for the tunnel's host only."""
    assert judge(opening, "pypi.org") == HTTP


def test_other_protocols_pass_as_they_are() -> None:
    assert judge(b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5\r\n", "github.com") == RELAY
    assert judge(b"\x00\x00\x00\x08\x04\xd2\x16\x2f", "db.example") == RELAY
    assert judge(b"GET", "pypi.org") is None  # could still be a request line: wait for more
