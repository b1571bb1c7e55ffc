"""Runs BEFORE the sandbox, as the sandbox's host uid, under the system Python (``-I -S -c``,
standard library only): it makes the sandbox's network namespace and hands the gate its door.

1. ``unshare(CLONE_NEWUSER | CLONE_NEWNET)``: a user namespace (this uid mapped to itself,
   ``setgroups`` denied) owning a new network namespace; brings ``lo`` up there, and checks that
   ``lo`` is all there is;
2. listens on ``127.0.0.1:PORT`` in it and sends that listening socket to the egress gate over the
   inherited ``HANDOFF_FD`` (``SCM_RIGHTS``), then closes every copy it holds;
3. execs bubblewrap (``ARGV``: without ``--unshare-net``, so the sandbox lives in this namespace).

The sandboxed command never holds the listener: each connection it makes is accepted by the gate
into a socket only the gate holds. Any failure: a line ``error: ...`` on ``HANDOFF_FD``, exit 125,
and nothing is run.

    python3 -I -S -c SOURCE HANDOFF_FD PORT -- ARGV...
"""

import ctypes
import fcntl
import os
import socket
import struct
import sys

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
EXIT_REFUSED = 125


class Refused(Exception):
    pass


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _unshare() -> None:
    uid, gid = os.geteuid(), os.getegid()
    before = os.stat("/proc/self/ns/net").st_ino
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise Refused(f"unshare(CLONE_NEWUSER|CLONE_NEWNET) failed: {os.strerror(errno)}")
    if os.stat("/proc/self/ns/net").st_ino == before:
        raise Refused("the network namespace did not change")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1\n")
    _write("/proc/self/gid_map", f"{gid} {gid} 1\n")


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))
    names = [name for _, name in socket.if_nameindex()]
    if names != ["lo"]:
        raise Refused(f"the new network namespace has interfaces besides lo: {names}")


def main() -> int:
    if len(sys.argv) < 5 or sys.argv[3] != "--":
        print("usage: sandbox_netns.py HANDOFF_FD PORT -- ARGV...", file=sys.stderr)
        return 2
    handoff = socket.socket(fileno=int(sys.argv[1]))
    port, argv = int(sys.argv[2]), sys.argv[4:]
    try:
        _unshare()
        _loopback_up()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
        socket.send_fds(handoff, [b"listening"], [listener.fileno()])
        listener.close()
    except (OSError, Refused) as exc:
        message = f"error: {exc}"
        try:
            handoff.sendall(message.encode(errors="replace"))
        except OSError:
            pass
        print(f"gatekeeper sandbox: {message}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        handoff.close()
    try:
        # bubblewrap, given by Gatekeeper; every other descriptor here is close-on-exec
        os.execv(argv[0], argv)  # noqa: S606 - an argv, no shell
    except OSError as exc:
        print(f"gatekeeper sandbox: {argv[0]}: {exc.strerror}", file=sys.stderr)
    return EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
