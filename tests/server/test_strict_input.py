"""Every malformed body gets a 400 (or 413) with a stable code, and nothing is forwarded."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import aiohttp
import pytest

from gatekeeper.app import Gatekeeper
from gatekeeper.server import invoke as invoke_module

from ..helpers import (  # noqa: F401 (shared_gk, shared_gk_per_test, http_in_module_loop: fixtures)
    decisions,
    http_in_module_loop,
    mint,
    poll_until,
    run_in_module_loop,
    shared_gk,
    shared_gk_per_test,
)

GOOD = b'{"tool": "file.read", "arguments": {"path": "README.md"}}'


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (
            b'{"tool": "file.read", "tool": "shell.exec", "arguments": {"cmd": "id"}}',
            "application/json",
            400,
            "duplicate_key",
        ),
        (
            b'{"tool": "file.read", "arguments": {"path": "a", "path": "/root/.ssh/id_rsa"}}',
            "application/json",
            400,
            "duplicate_key",
        ),
        (
            b'{"tool": "file.read", "arguments": {"path": "\\ud800"}}',
            "application/json",
            400,
            "invalid_unicode",
        ),
        (
            b'{"tool": "file.read", "arguments": {"path": "\\udc00x"}}',
            "application/json",
            400,
            "invalid_unicode",
        ),
        (
            b'{"tool": "compute.provision", "arguments": {"gpu_type": "T4", "count": NaN}}',
            "application/json",
            400,
            "invalid_number",
        ),
        (
            b'{"tool": "compute.provision", "arguments": {"gpu_type": "T4", "count": Infinity}}',
            "application/json",
            400,
            "invalid_number",
        ),
        (
            b'{"tool": "compute.provision", "arguments": {"gpu_type": "T4", "count": 18446744073709551617}}',
            "application/json",
            400,
            "number_out_of_range",
        ),
        (
            b'{"tool": "compute.provision", "arguments": {"gpu_type": "T4", "count": 1, "hours": 1e999}}',
            "application/json",
            400,
            "number_out_of_range",
        ),
        (GOOD, "text/plain", 400, "unsupported_content_type"),
        (GOOD, "application/x-www-form-urlencoded", 400, "unsupported_content_type"),
        (GOOD, "application/json; charset=latin-1", 400, "unsupported_content_type"),
        (b"[" * 200 + b"]" * 200, "application/json", 400, "nesting_too_deep"),
        (
            b'{"tool": "file.read", "arguments": ' + b'{"a":' * 100 + b"1" + b"}" * 100 + b"}",
            "application/json",
            400,
            "nesting_too_deep",
        ),
        (b'{"tool": "file.read", "arguments": {"path": "\xff"}}', "application/json", 400, "invalid_unicode"),
        (b"\xef\xbb\xbf" + GOOD, "application/json", 400, "invalid_json"),
        (
            b'{"tool": "file.read", "arguments": {"path": "README.md"}',
            "application/json",
            400,
            "invalid_json",
        ),
        (b"", "application/json", 400, "invalid_json"),
        (b'"file.read"', "application/json", 400, "invalid_request"),
        (b'{"tool": "file.read", "arguments": [], "x": 1}', "application/json", 400, "unknown_field"),
        (b'{"tool": "file.read", "arguments": ["README.md"]}', "application/json", 400, "invalid_request"),
        (b'{"tool": 7, "arguments": {}}', "application/json", 400, "invalid_request"),
        (
            b'{"tool": "file.read", "arguments": {"path": "' + b"a" * (1024 * 1024) + b'"}}',
            "application/json",
            413,
            "payload_too_large",
        ),
    ],
    ids=lambda value: value[:40] if isinstance(value, bytes) else str(value),
)
async def test_malformed_bodies(
    gk: Gatekeeper, http: aiohttp.ClientSession, body: bytes, content_type: str, status: int, code: str
) -> None:
    headers = {"Authorization": f"Bearer {mint(gk)}", "Content-Type": content_type}
    async with http.post(f"{gk.agent_url}/v1/invoke", data=io.BytesIO(body), headers=headers) as resp:
        payload = await resp.json()
        assert (resp.status, payload["code"]) == (status, code), payload
        assert payload["message"]
    assert gk.demo is not None and gk.demo.http_received == []


async def test_two_content_type_headers_are_ambiguous(gk: Gatekeeper, http: aiohttp.ClientSession) -> None:
    # aiohttp's own HTTP parser refuses this before our handler sees it (a plain-text 400).
    headers = [
        ("Authorization", f"Bearer {mint(gk)}"),
        ("Content-Type", "application/json"),
        ("Content-Type", "text/plain"),
    ]
    async with http.post(f"{gk.agent_url}/v1/invoke", data=GOOD, headers=headers) as resp:
        assert resp.status == 400
    assert gk.demo is not None and gk.demo.http_received == []


async def _raw(gk: Gatekeeper, request: bytes) -> bytes:
    host, port = gk.agent_url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), timeout=5)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_ambiguous_framing_is_refused(gk: Gatekeeper) -> None:
    """Content-Length together with Transfer-Encoding is request smuggling's favourite shape."""
    token = mint(gk)
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(GOOD), GOOD)
    request = (
        b"POST /v1/invoke HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
        + token.encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked
    )
    answer = await _raw(gk, request)
    assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request"), answer[:200]
    assert gk.demo is not None and gk.demo.http_received == []


async def test_method_and_path_errors_are_json(gk: Gatekeeper, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{gk.agent_url}/v1/invoke") as resp:
        assert resp.status == 405
        assert (await resp.json())["code"] == "method_not_allowed"
    async with http.get(f"{gk.agent_url}/v2/nothing") as resp:
        assert resp.status == 404
        assert (await resp.json())["code"] == "not_found"


async def test_a_body_that_arrives_in_pieces_is_read_whole(gk: Gatekeeper) -> None:
    """A body sent in two TCP writes, with a pause between them, is one body: read to its end,
    not cut at what happened to be buffered when the handler started reading."""
    body = b'{"tool": "file.read", "arguments": {"path": "' + b"a" * 3000 + b'"}}'
    head = (
        b"POST /v1/invoke HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer "
        + mint(gk).encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    host, port = gk.agent_url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head + body[:40])
        await writer.drain()
        await asyncio.sleep(0.2)  # the handler is already reading by now
        writer.write(body[40:])
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = answer.partition(b"\r\n")
    # The whole body was understood: a path inspected and forwarded (the demo has no such file).
    assert b"invalid_json" not in rest, rest[-300:]
    assert gk.demo is not None and [c.arguments for c in gk.demo.http_received] == [{"path": "a" * 3000}]
    assert status_line.split()[1] in (b"200", b"404"), status_line


async def _send_partial_body(
    gk: Gatekeeper, declared: int, sent: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    head = (
        b"POST /v1/invoke HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
        + mint(gk).encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % declared
    )
    host, port = gk.agent_url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head + sent)
    await writer.drain()
    return reader, writer


async def test_a_body_that_never_finishes_arriving_is_refused_in_time(
    gk: Gatekeeper, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(invoke_module, "BODY_READ_SECONDS", 0.3)
    reader, writer = await _send_partial_body(gk, len(GOOD), GOOD[:20])
    try:
        answer = await asyncio.wait_for(reader.read(65536), timeout=5)
    finally:
        writer.close()
        await writer.wait_closed()
    assert answer.split(b"\r\n", 1)[0].endswith(b" 408 Request Timeout"), answer[:200]
    assert b'"code": "body_timeout"' in answer
    assert gk.demo is not None and gk.demo.http_received == []


async def test_a_client_that_hangs_up_mid_body_is_a_quiet_refusal(
    gk: Gatekeeper, log_output: list[dict[str, Any]]
) -> None:
    _reader, writer = await _send_partial_body(gk, len(GOOD), GOOD[:20])
    await asyncio.sleep(0.1)
    writer.close()
    await writer.wait_closed()
    await poll_until(lambda: decisions(log_output), what="the decision record")
    assert [d["code"] for d in decisions(log_output)] == ["incomplete_body"]
    assert not [e for e in log_output if e.get("event") in ("stage_failed", "internal_error")]
    assert gk.demo is not None and gk.demo.http_received == []


# One Gatekeeper for the module (tests/helpers.py: shared_gk): these tests only send it calls.
run_in_module_loop(globals())
