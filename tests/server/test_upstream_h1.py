"""The small HTTP/1.1 client plain-HTTP tool upstreams are called with (``upstream/h1.py``):
framing, limits, keep-alive, and every way an answer can be refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from gatekeeper.config import Upstream
from gatekeeper.errors import UpstreamError, UpstreamTimeout
from gatekeeper.upstream import HttpTransport
from gatekeeper.upstream.h1 import H1Pool

Answer = Callable[[bytes], bytes | None]  # the request's bytes -> the raw answer (None: say nothing)


class RawServer:
    """A loopback server that answers each request with the raw bytes ``answer`` gives."""

    def __init__(self, answer: Answer, *, close_after: bool = False) -> None:
        self.answer = answer
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.handlers: set[asyncio.Task[None]] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                raw = self.answer(request)
                if raw is None:
                    await asyncio.sleep(10)
                    return
                writer.write(raw)
                await writer.drain()
                if self.close_after:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self.handlers.discard(task)

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        """The server and every connection it still serves (one that never answers sleeps): a
        writer left to the garbage collector after the loop closed warns in a later test."""
        assert self.server is not None
        self.server.close()
        for task in list(self.handlers):
            task.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)
        await self.server.wait_closed()


def ok(body: bytes = b'{"ok": true}', extra: bytes = b"") -> Answer:
    return lambda _req: b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


@pytest.fixture
async def transport() -> AsyncIterator[HttpTransport]:
    pool = H1Pool(limit=8)
    async with aiohttp.ClientSession() as session:
        yield HttpTransport(session, max_response_bytes=1000, pool=pool)
    pool.close()


async def call(transport: HttpTransport, url: str, **kw: object) -> bytes:
    upstream = Upstream("u", url=url, **kw)  # type: ignore[arg-type]
    return await transport.call_tool(upstream, "file.read", b'{"path":"x"}', "d" * 32)


async def test_answers_are_read_and_connections_kept_alive(transport: HttpTransport) -> None:
    server = RawServer(ok())
    async with server as url:
        for _ in range(3):
            assert await call(transport, url) == b'{"ok": true}'
    assert server.connections == 1
    request = server.requests[0]
    assert request.startswith(b"POST /tools/file.read HTTP/1.1\r\n")
    assert b"\r\nX-Gatekeeper-Decision-Id: " + b"d" * 32 + b"\r\n" in request
    assert b"\r\nAccept-Encoding: identity\r\n" in request
    assert request.endswith(b'Content-Length: 12\r\n\r\n{"path":"x"}')


async def test_configured_headers_go_but_never_in_place_of_the_gates_own(transport: HttpTransport) -> None:
    server = RawServer(ok())
    async with server as url:
        await call(transport, url, headers={"Authorization": "Bearer up", "content-length": "1"})
    request = server.requests[0]
    assert b"\r\nAuthorization: Bearer up\r\n" in request
    assert request.lower().count(b"content-length") == 1
    async with server as url:
        await call(transport, url, headers={"host": "tools.internal"})
    assert b"\r\nHost: tools.internal\r\n" in server.requests[-1]
    assert server.requests[-1].lower().count(b"\r\nhost:") == 1


async def test_a_header_that_would_split_the_request_is_refused(transport: HttpTransport) -> None:
    async with RawServer(ok()) as url:
        with pytest.raises(UpstreamError) as err:
            await call(transport, url, headers={"X-A": "b\r\nX-Injected: 1"})
    assert err.value.code == "upstream_misconfigured"


async def test_chunked_and_close_delimited_answers(transport: HttpTransport) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'4;x=y\r\n{"a"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\nT: v\r\n\r\n'
    )
    async with RawServer(lambda _r: chunked) as url:
        assert await call(transport, url) == b'{"a": 1}'
    closing = b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"b": 2}'
    server = RawServer(lambda _r: closing, close_after=True)
    async with server as url:
        assert await call(transport, url) == b'{"b": 2}'
        assert await call(transport, url) == b'{"b": 2}'
    assert server.connections == 2  # the first connection ended with its answer


async def test_interim_answers_are_skipped(transport: HttpTransport) -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    async with RawServer(lambda _r: answer) as url:
        assert await call(transport, url) == b"{}"


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n folded\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/2 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 101 Switching\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
        b"HTTP/1.1 503 Busy\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.2/\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nnot json",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}",  # the connection ends short
    ],
)
async def test_ambiguous_or_bad_answers_fail_the_call(transport: HttpTransport, raw: bytes) -> None:
    async with RawServer(lambda _r: raw, close_after=True) as url:
        with pytest.raises(UpstreamError) as err:
            await call(transport, url, timeout_seconds=2.0)
    assert err.value.code == "upstream_error"


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b" " * 1001,
    ],
)
async def test_answers_over_the_limit_are_refused(transport: HttpTransport, raw: bytes) -> None:
    async with RawServer(lambda _r: raw, close_after=True) as url:
        with pytest.raises(UpstreamError) as err:
            await call(transport, url, timeout_seconds=2.0)
    assert err.value.code == "upstream_response_too_large"


async def test_a_second_answer_to_one_request_never_reaches_the_next_call(transport: HttpTransport) -> None:
    server = RawServer(lambda _r: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}" * 2)
    async with server as url:
        assert await call(transport, url) == b"{}"
        assert await call(transport, url) == b"{}"
    assert server.connections == 2  # the connection that said too much was not reused


async def test_a_timed_out_call_closes_its_connection(transport: HttpTransport) -> None:
    answers = iter([None, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"])
    server = RawServer(lambda _r: next(answers))
    async with server as url:
        with pytest.raises(UpstreamTimeout):
            await call(transport, url, timeout_seconds=0.2)
        assert await call(transport, url) == b"{}"
    assert server.connections == 2


async def test_an_unreachable_upstream_is_said_so(transport: HttpTransport) -> None:
    async with RawServer(ok()) as url:
        pass  # closed: nothing listens there now
    with pytest.raises(UpstreamError) as err:
        await call(transport, url)
    assert err.value.code == "upstream_unreachable"


async def test_requests_beyond_the_limit_wait_for_a_slot() -> None:
    pool = H1Pool(limit=2)
    server = RawServer(ok())
    async with aiohttp.ClientSession() as session, server as url:
        transport = HttpTransport(session, max_response_bytes=1000, pool=pool)
        results = await asyncio.gather(*(call(transport, url) for _ in range(6)))
    pool.close()
    assert results == [b'{"ok": true}'] * 6
    assert server.connections <= 2


async def test_a_connection_closed_at_once_fails_the_call_at_once(transport: HttpTransport) -> None:
    async def close_at_once(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(close_at_once, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    started = asyncio.get_running_loop().time()
    with pytest.raises(UpstreamError) as err:
        await call(transport, f"http://127.0.0.1:{port}", timeout_seconds=10.0)
    server.close()
    assert asyncio.get_running_loop().time() - started < 2.0  # not the timeout
    assert err.value.code in ("upstream_unreachable", "upstream_error")


@pytest.mark.parametrize(
    "raw",
    [
        b'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{"a": 1}',
        b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"a"\r\n4\r\n: 1}\r\n0\r\nT: v\r\n\r\n',
    ],
)
async def test_answers_arriving_byte_by_byte(transport: HttpTransport, raw: bytes) -> None:
    """Every state of the reader resumes where the last packet left it (head, chunk sizes,
    chunk data, trailers)."""

    done = asyncio.Event()

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]))
            for i in range(len(raw)):
                writer.write(raw[i : i + 1])
                await writer.drain()
                await asyncio.sleep(0.001)
        finally:
            writer.close()  # before the test's loop closes: a writer left open warns in a later test
            done.set()

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert await call(transport, f"http://127.0.0.1:{port}", timeout_seconds=10.0) == b'{"a": 1}'
        await asyncio.wait_for(done.wait(), 5)
    finally:
        server.close()
