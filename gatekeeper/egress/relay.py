"""Move bytes between two connected sockets until both directions end, counting them.

On Linux each direction is a thread that ``splice(2)``s socket -> pipe -> socket: the bytes never
enter Python (a bulk download through the gate costs the kernel's copies, not ours). Elsewhere,
raw non-blocking sockets with ``loop.sock_recv_into``/``sock_sendall`` and one reused buffer per
direction. Either way a connection that moved nothing either way for ``idle_seconds`` ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Final

CHUNK: Final = 1024 * 1024  # also the pipe's size: at the 256 KiB before, bulk ran at 0.6x direct


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


_SPLICE: Final = hasattr(os, "splice")
_WAKE_SECONDS: Final = 2  # how often a quiet splice thread looks at the idle clock
_F_SETPIPE_SZ: Final = 1031


def _splice_pump(src: socket.socket, dst: socket.socket, traffic: Traffic, upward: bool, idle: float) -> None:
    """One direction, in its own thread, on blocking sockets with a receive timeout."""
    read_end, write_end = os.pipe()
    try:
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_end, _F_SETPIPE_SZ, CHUNK)
        while True:
            try:
                n = os.splice(src.fileno(), write_end, CHUNK)
            except BlockingIOError:  # the receive timeout: quiet this long
                if time.monotonic() - traffic.last >= idle:
                    traffic.ended = "idle_timeout"
                    break
                continue
            if n == 0:
                break
            left = n
            while left:
                left -= os.splice(read_end, dst.fileno(), left)
            if upward:
                traffic.up += n
            else:
                traffic.down += n
            traffic.last = time.monotonic()
    except OSError as exc:
        traffic.ended = f"error:{type(exc).__name__}"
    finally:
        os.close(read_end)
        os.close(write_end)
        if traffic.ended == "closed":  # this side is done: pass the end on, the other way goes on
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
        else:  # idle or failed: end both ways (a send blocked on a stalled reader included)
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


async def _splice_relay(
    client: socket.socket, target: socket.socket, idle_seconds: float, traffic: Traffic, upload: bool
) -> Traffic:
    timeout = struct.pack("ll", _WAKE_SECONDS, 0)
    for sock in (client, target):
        sock.setblocking(True)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeout)
    loop = asyncio.get_running_loop()
    ways = [(client, target, True), (target, client, False)] if upload else [(target, client, False)]
    done = [loop.create_future() for _ in ways]
    for index, (src, dst, upward) in enumerate(ways):

        def run(
            src: socket.socket = src, dst: socket.socket = dst, up: bool = upward, i: int = index
        ) -> None:
            try:
                _splice_pump(src, dst, traffic, up, idle_seconds)
            finally:
                loop.call_soon_threadsafe(done[i].set_result, None)

        threading.Thread(target=run, name="egress-splice", daemon=True).start()
    try:
        await asyncio.gather(*done)
    except asyncio.CancelledError:  # Gatekeeper stops: end both threads before the sockets close
        for sock in (client, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        await asyncio.shield(asyncio.gather(*done))
        raise
    return traffic


async def relay(
    client: socket.socket,
    target: socket.socket,
    idle_seconds: float,
    *,
    upload: bool = True,
    traffic: Traffic | None = None,
) -> Traffic:
    """Relay until both sides have closed, one fails, or nothing moved for ``idle_seconds``.
    ``upload=False``: only the target's answer flows (the client's request was already sent)."""
    traffic = traffic or Traffic()
    traffic.last = time.monotonic()
    if _SPLICE:
        return await _splice_relay(client, target, idle_seconds, traffic, upload)
    pumps = [asyncio.ensure_future(_pump(target, client, traffic, False))]
    if upload:
        pumps.append(asyncio.ensure_future(_pump(client, target, traffic, True)))
    try:
        while True:
            done, _ = await asyncio.wait(pumps, timeout=min(idle_seconds, 5.0))
            failed = [t for t in done if t.exception() is not None]
            if failed:
                exc = failed[0].exception()
                traffic.ended = f"error:{type(exc).__name__}"
                break
            if len(done) == len(pumps):
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
