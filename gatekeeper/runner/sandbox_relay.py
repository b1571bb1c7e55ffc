"""Runs INSIDE the sandbox, under the system Python (``-I -S``, standard library only).

The sandbox has its own network namespace with nothing but loopback. This relay listens on
``127.0.0.1:PORT`` there and carries every connection, byte for byte, to the egress gate's unix
socket bound into the sandbox; the proxy variables name it. Then it starts the command and exits
with its status. It grants nothing: the gate decides each connection on the credential it carries.

    python3 -I -S sandbox_relay.py SOCKET PORT -- ARGV...
"""

import os
import socket
import subprocess
import sys
import threading


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(262144)
            if not data:
                break
            dst.sendall(data)
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
