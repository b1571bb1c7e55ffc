"""The gate's end of ``sandbox_netns.py``: receive the listening socket made in a new sandbox's
network namespace, and check it is what the gate will serve before serving it.

The socket arrives over a socketpair of which the child held the only other end; the child sent
it before it exec'd bubblewrap, and closed its own copy, so the listener's open file description
is the gate's alone (``docs/containment.md``: why a sandbox can never reach it).
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import os
import socket
from typing import Final

HANDOFF_SECONDS: Final = 10.0  # the prep step is one Python start: tens of milliseconds
_SIOCGSKNS: Final = 0x894C  # the network namespace of a socket, as a new descriptor (Linux >= 4.10)
_EXPECTED: Final = b"listening"


class HandoffError(OSError):
    """The sandbox's network namespace or its listener could not be made: nothing runs."""


async def receive_listener(channel: socket.socket, port: int) -> socket.socket:
    """The listener ``sandbox_netns.py`` sends on ``channel`` (non-blocking), checked: a TCP
    socket listening on ``127.0.0.1:port`` in a network namespace other than the gate's."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(channel.fileno(), readable)
    try:
        async with asyncio.timeout(HANDOFF_SECONDS):
            await ready
    except TimeoutError:
        raise HandoffError(
            f"the sandbox's network namespace was not ready within {HANDOFF_SECONDS:g} s"
        ) from None
    finally:
        loop.remove_reader(channel.fileno())
    fds = array.array("i")
    message, ancillary, _, _ = channel.recvmsg(
        1024, socket.CMSG_SPACE(4 * fds.itemsize), socket.MSG_CMSG_CLOEXEC
    )
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    if len(fds) != 1 or message != _EXPECTED:
        for fd in fds:
            os.close(fd)
        said = message.decode(errors="replace").strip() or "it exited before sending its listener"
        raise HandoffError(f"the sandbox's network namespace could not be made: {said}")
    listener = socket.socket(fileno=fds[0])
    try:
        _check(listener, port)
    except BaseException:
        listener.close()
        raise
    listener.setblocking(False)
    return listener


def _check(listener: socket.socket, port: int) -> None:
    if listener.family != socket.AF_INET or listener.type != socket.SOCK_STREAM:
        raise HandoffError(f"the sandbox's listener is not a TCP socket ({listener.family!r})")
    if not listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        raise HandoffError("the sandbox's listener is not listening")
    bound = listener.getsockname()
    if bound != ("127.0.0.1", port):
        raise HandoffError(f"the sandbox's listener is bound to {bound}, not 127.0.0.1:{port}")
    if _netns_inode(listener) == os.stat("/proc/self/ns/net").st_ino:
        raise HandoffError("the sandbox's listener is in Gatekeeper's own network namespace")


def _netns_inode(sock: socket.socket) -> int:
    """Which network namespace ``sock`` lives in (the gate may ask: it owns the sandbox's user
    namespace's parent, or is root)."""
    try:
        fd = fcntl.ioctl(sock.fileno(), _SIOCGSKNS)
    except OSError as exc:  # Linux before 4.10, or no right to ask: cannot tell, so refuse
        raise HandoffError(
            f"could not tell which network namespace the sandbox's listener is in: {exc.strerror}"
        ) from None
    try:
        return os.fstat(fd).st_ino
    finally:
        os.close(fd)
