"""The HTTP connection itself, below the application: a bound on reading a request head, and
JSON answers (with a stable ``code``) for requests too broken to reach a handler.

aiohttp reads headers for as long as a client keeps sending them, so a hundred clients each
trickling a header line every few seconds hold a hundred connections indefinitely. Here every
request head must arrive whole within ``head_timeout`` seconds of its first byte (of the
connection, for the first request); a client that does not finish is answered ``408`` and cut
off. An idle keep-alive connection is aiohttp's ``keepalive_timeout``'s business, as before.

When aiohttp's parser rejects a request (a folded header, a bad method, an oversized line) it
would log a traceback quoting the offending bytes, which may be an ``Authorization`` header,
and answer ``text/plain``. Here it logs one line naming the kind of error and the peer, and
answers JSON.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from gatekeeper import codes

from .responses import json_response

log = structlog.get_logger("gatekeeper.http")

DEFAULT_HEAD_TIMEOUT_SECONDS = 10.0

_TIMEOUT_BODY = json.dumps(
    {"code": codes.HEADER_TIMEOUT, "message": "the request head did not arrive in time; send it whole"}
).encode()
_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


def _parse_error_code(status: int, exc: BaseException | None) -> tuple[str, str]:
    """(code, message) for what the connection layer answers itself; no request bytes quoted."""
    if isinstance(exc, LineTooLong):
        return codes.HEADER_TOO_LARGE, "a request line or header is longer than the server accepts"
    if isinstance(exc, BadHttpMethod):
        return codes.BAD_HTTP_METHOD, "the request method is not valid HTTP"
    if isinstance(exc, HttpProcessingError) or status == 400:
        return codes.MALFORMED_HTTP, "the request is not valid HTTP/1.1 (a folded or malformed header, say)"
    if status == 504:
        return codes.HANDLER_TIMEOUT, "the request took too long to handle"
    return codes.INTERNAL_ERROR, "internal error; the call was not forwarded"


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection handler with a request-head deadline and JSON error answers."""

    head_timeout: float = DEFAULT_HEAD_TIMEOUT_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        heads_before = self._request_count
        super().data_received(data)
        if self._request_count != heads_before:
            self._disarm_head_timer()  # a head arrived whole (or was refused whole)
        elif data and self._head_timer is None and not self._request_in_progress and not self._messages:
            self._arm_head_timer()  # the first bytes of the next request on a kept-alive connection

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self._loop.call_later(self.head_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        peer = transport.get_extra_info("peername")
        log.warning(
            "http_header_timeout",
            code=codes.HEADER_TIMEOUT,
            peer=str(peer[0]) if isinstance(peer, tuple) and peer else None,
            timeout_seconds=self.head_timeout,
        )
        if not self._request_in_progress:
            transport.write(_TIMEOUT_ANSWER)
        self.force_close()
        transport.close()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        code, text = _parse_error_code(status, exc)
        fields: dict[str, Any] = {
            "status": status,
            "code": code,
            "error": type(exc).__name__ if exc is not None else None,
            "peer": request.remote,
        }
        if status >= 500 and exc is not None:
            log.error("http_request_failed", exc_info=exc, **fields)
        else:  # the exception's text quotes request bytes, a token among them: never logged
            log.info("http_request_unreadable", **fields)
        if request.writer.output_size > 0:
            raise ConnectionError("the answer was already being sent; the connection is closed")
        response = json_response(status, {"code": code, "message": text})
        response.force_close()
        return response


class GuardedServer(web.Server):
    """``web.Server`` whose connections are ``GuardedRequestHandler``s."""

    def __init__(self, *args: Any, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_timeout = head_timeout

    def __call__(self) -> RequestHandler:
        handler = GuardedRequestHandler(self, loop=self._loop, **self._kwargs)
        handler.head_timeout = self.head_timeout
        return handler


class GuardedAppRunner(web.AppRunner):
    """``web.AppRunner`` serving through a ``GuardedServer``."""

    def __init__(
        self, app: web.Application, *, head_timeout: float = DEFAULT_HEAD_TIMEOUT_SECONDS, **kwargs: Any
    ) -> None:
        super().__init__(app, **kwargs)
        self.head_timeout = head_timeout

    async def _make_server(self) -> web.Server:
        # aiohttp builds its Server in Application._make_handler; take what it built (handler,
        # request factory, keyword settings) and serve it through GuardedServer instead. This
        # reads Server's _loop and _kwargs, stable since aiohttp 3.0 (we require 3.10).
        plain = await super()._make_server()
        return GuardedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            head_timeout=self.head_timeout,
            **plain._kwargs,
        )
