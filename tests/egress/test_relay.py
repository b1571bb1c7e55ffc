"""The byte pump on real loopback TCP connections: splice(2) threads and the asyncio fallback."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket

import pytest

from gatekeeper.egress import relay as relay_module


async def _pair() -> tuple[socket.socket, socket.socket]:
    """Two ends of one loopback TCP connection, non-blocking, as the gate holds them."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    loop = asyncio.get_running_loop()
    near = socket.socket()
    near.setblocking(False)
    connecting = asyncio.ensure_future(loop.sock_connect(near, listener.getsockname()))
    far, _ = await loop.sock_accept(listener)
    await connecting
    listener.close()
    far.setblocking(False)
    return near, far


@pytest.fixture(params=["splice", "asyncio"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "asyncio":
        monkeypatch.setattr(relay_module, "_SPLICE", False)
    return str(request.param)


async def _drain(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    chunks = []
    while chunk := await loop.sock_recv(sock, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


async def test_both_ways_byte_for_byte_with_half_close(mode: str) -> None:
    agent, gate_client = await _pair()
    gate_target, origin = await _pair()
    loop = asyncio.get_running_loop()
    up, down = os.urandom(3 << 20), os.urandom(9 << 20)

    async def agent_side() -> bytes:
        await loop.sock_sendall(agent, up)
        agent.shutdown(socket.SHUT_WR)
        return await _drain(agent)

    async def origin_side() -> bytes:
        received = await _drain(origin)  # the agent's end arrives as an end
        await loop.sock_sendall(origin, down)
        origin.shutdown(socket.SHUT_WR)
        return received

    traffic, got_down, got_up = await asyncio.gather(
        relay_module.relay(gate_client, gate_target, 30.0), agent_side(), origin_side()
    )
    assert hashlib.sha256(got_up).digest() == hashlib.sha256(up).digest()
    assert hashlib.sha256(got_down).digest() == hashlib.sha256(down).digest()
    assert (traffic.up, traffic.down, traffic.ended) == (len(up), len(down), "closed")
    for sock in (agent, gate_client, gate_target, origin):
        sock.close()


async def test_answer_only_never_reads_the_client(mode: str) -> None:
    agent, gate_client = await _pair()
    gate_target, origin = await _pair()
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(agent, b"GET http://elsewhere/ HTTP/1.1\r\nProxy-Authorization: x\r\n\r\n")
    await loop.sock_sendall(origin, b"answer")
    origin.shutdown(socket.SHUT_WR)
    traffic = await relay_module.relay(gate_client, gate_target, 30.0, upload=False)
    assert traffic.down == 6 and traffic.up == 0
    await asyncio.sleep(0.2)
    with pytest.raises(BlockingIOError):  # the client's second request never reached the target
        origin.recv(100)
    for sock in (agent, gate_client, gate_target, origin):
        sock.close()


async def test_a_quiet_connection_ends_at_the_idle_limit(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay_module, "_WAKE_SECONDS", 1)
    agent, gate_client = await _pair()
    gate_target, origin = await _pair()
    traffic = await asyncio.wait_for(relay_module.relay(gate_client, gate_target, 1.0), 15.0)
    assert traffic.ended == "idle_timeout"
    for sock in (agent, gate_client, gate_target, origin):
        sock.close()
