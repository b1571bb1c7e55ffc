"""Move bytes between two connected sockets until both directions end, counting them.

Raw non-blocking sockets and ``loop.sock_recv_into``/``sock_sendall`` with one reused buffer per
direction: no stream objects, no per-chunk allocation. One watchdog ends a connection that moved
nothing either way for ``idle_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass
from typing import Final

CHUNK: Final = 256 * 1024


@dataclass(slots=True)
class Traffic:
    """Bytes each way and how the relay ended (``closed``, ``idle_timeout``, ``error:...``)."""

    up: int = 0  # client -> target
    down: int = 0  # target -> client
    ended: str = "closed"
    last: float = 0.0


async def _pump(src: socket.socket, dst: socket.socket, traffic: Traffic, upward: bool) -> None:
    loop = asyncio.get_running_loop()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    while True:
        n = await loop.sock_recv_into(src, buffer)
        if n == 0:
            break
        await loop.sock_sendall(dst, view[:n])
        if upward:
            traffic.up += n
        else:
            traffic.down += n
        traffic.last = time.monotonic()
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


async def relay(client: socket.socket, target: socket.socket, idle_seconds: float) -> Traffic:
    """Relay until both sides have closed, one fails, or nothing moved for ``idle_seconds``."""
    traffic = Traffic(last=time.monotonic())
    pumps = [
        asyncio.ensure_future(_pump(client, target, traffic, True)),
        asyncio.ensure_future(_pump(target, client, traffic, False)),
    ]
    try:
        while True:
            done, _ = await asyncio.wait(pumps, timeout=min(idle_seconds, 5.0))
            failed = [t for t in done if t.exception() is not None]
            if failed:
                exc = failed[0].exception()
                traffic.ended = f"error:{type(exc).__name__}"
                break
            if len(done) == 2:
                break
            if time.monotonic() - traffic.last >= idle_seconds:
                traffic.ended = "idle_timeout"
                break
    finally:
        for pump in pumps:
            pump.cancel()
        for pump in pumps:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
    return traffic
