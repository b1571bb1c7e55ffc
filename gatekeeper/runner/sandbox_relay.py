"""Runs INSIDE the sandbox, under the system Python (``-I -S``, standard library only).

The sandbox has its own network namespace with nothing but loopback. This relay listens on
``127.0.0.1:PORT`` there and carries every connection, byte for byte, to the egress gate's unix
socket bound into the sandbox; the proxy variables name it. Then it starts the command and exits
with its status. It grants nothing: the gate decides each connection on the credential it carries.

    python3 -I -S sandbox_relay.py SOCKET PORT -- ARGV...
"""

import fcntl
import os
import socket
import subprocess
import sys
import threading

_CHUNK = 1024 * 1024  # also the pipe's size (the gate's relay uses the same)
_F_SETPIPE_SZ = 1031


def _splice(src: socket.socket, dst: socket.socket) -> None:
    """socket -> pipe -> socket inside the kernel (Linux): the bytes never enter this Python.

    The connection itself is not handed to the gate (``SCM_RIGHTS``), though that would spare
    a hop: a passed socket shares its open file with whoever in the sandbox kept a copy, who
    could then make it blocking under the gate's event loop, or set a linger that stalls the
    gate's close."""
    read_end, write_end = os.pipe()
    try:
        try:
            fcntl.fcntl(write_end, _F_SETPIPE_SZ, _CHUNK)
        except OSError:
            pass
        while True:
            n = os.splice(src.fileno(), write_end, _CHUNK)
            if n == 0:
                break
            while n:
                n -= os.splice(read_end, dst.fileno(), n)
    finally:
        os.close(read_end)
        os.close(write_end)


def _copy(src: socket.socket, dst: socket.socket) -> None:
    while True:
        data = src.recv(262144)
        if not data:
            break
        dst.sendall(data)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        (_splice if hasattr(os, "splice") else _copy)(src, dst)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _carry(client: socket.socket, path: str) -> None:
    gate = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        gate.connect(path)
    except OSError:
        client.close()
        gate.close()
        return
    up = threading.Thread(target=_pipe, args=(client, gate), daemon=True)
    up.start()
    _pipe(gate, client)
    up.join()
    client.close()
    gate.close()


def _serve(listener: socket.socket, path: str) -> None:
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_carry, args=(client, path), daemon=True).start()


def main() -> int:
    path, port, sep, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    if sep != "--" or not argv:
        print("usage: sandbox_relay.py SOCKET PORT -- ARGV...", file=sys.stderr)
        return 2
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    threading.Thread(target=_serve, args=(listener, path), daemon=True).start()
    listener_fd = listener.fileno()
    child = subprocess.Popen(argv, pass_fds=(), close_fds=True)  # noqa: S603 - the sandboxed command
    os.set_inheritable(listener_fd, False)
    status = child.wait()
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main())
