"""The connection below the application, on a real ``gatekeeper serve`` process: a request too
broken for aiohttp's parser gets a JSON answer with a code and leaves no token in the log; clients
that trickle their headers are cut off."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from ..processes import json_lines, served_process, stop_served


def _raw(port: int, payload: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def test_a_folded_authorization_header_is_answered_in_json_and_its_token_never_logged(
    tmp_path: Path,
) -> None:
    with served_process(tmp_path) as served:
        token = served.token()
        assert token.startswith("eyJ")
        malformed = [
            # obs-fold: the token continues on a line that starts with a space
            b"POST /v1/invoke HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + token.encode()
            + b"\r\n  folded\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
            # a control character inside the header value
            b"POST /v1/invoke HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + token.encode()
            + b"\x01\r\nContent-Length: 2\r\n\r\n{}",
            # a header line too long for the parser, holding the token
            b"GET /healthz HTTP/1.1\r\nAuthorization: Bearer " + token.encode() + b"x" * 9000 + b"\r\n\r\n",
        ]
        answers = [_raw(served.agent_port, payload) for payload in malformed]
        code = stop_served(served)
    assert code == 0
    for answer in answers:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.split(b" ", 2)[1] == b"400", answer[:200]
        assert b"application/json" in head
        assert json.loads(body)["code"] in ("malformed_http", "header_too_large")
    lines = json_lines(served.stdout) + json_lines(served.stderr)  # every line is JSON
    text = served.stdout + served.stderr
    assert token not in text
    assert token.split(".")[1] not in text and token.split(".")[2] not in text
    unreadable = [line for line in lines if line.get("event") == "http_request_unreadable"]
    assert len(unreadable) == len(malformed)
    assert {line["code"] for line in unreadable} <= {"malformed_http", "header_too_large"}


def test_clients_trickling_header_lines_are_cut_off(tmp_path: Path) -> None:
    with served_process(tmp_path, "limits: {header_timeout_seconds: 1.5}\n") as served:
        socks = []
        for _ in range(100):
            sock = socket.create_connection(("127.0.0.1", served.agent_port), timeout=5)
            sock.sendall(b"POST /v1/invoke HTTP/1.1\r\nHost: x\r\n")
            sock.setblocking(False)
            socks.append(sock)
        started = time.monotonic()
        open_socks = set(range(len(socks)))
        answers: dict[int, bytes] = {}
        line = 0
        while open_socks and time.monotonic() - started < 12:
            line += 1
            for i in list(open_socks):
                try:
                    data = socks[i].recv(4096)
                except BlockingIOError:
                    data = None
                except ConnectionError:
                    data = b""
                if data is not None:
                    answers[i] = answers.get(i, b"") + data
                    if data == b"":
                        open_socks.discard(i)
                        continue
                try:
                    socks[i].sendall(b"X-Slow-%d: drip\r\n" % line)
                except (BlockingIOError, ConnectionError):
                    pass
            time.sleep(0.25)
        elapsed = time.monotonic() - started
        for sock in socks:
            sock.close()
        # a normal client still gets through afterwards
        healthy = _raw(served.agent_port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert not open_socks, (
        f"{len(open_socks)} of 100 trickling clients were still connected after {elapsed:.1f} s"
    )
    assert elapsed < 1.5 + 5.0  # the timeout, and slack for a loaded machine
    timed_out = [a for a in answers.values() if a.startswith(b"HTTP/1.1 408")]
    assert len(timed_out) >= 90 and b'"header_timeout"' in timed_out[0]
    assert healthy.startswith(b"HTTP/1.1 200")
    lines = json_lines(served.stdout) + json_lines(served.stderr)
    assert sum(line.get("event") == "http_header_timeout" for line in lines) == 100
