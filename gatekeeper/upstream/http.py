"""Forward an allowed call to a plain-HTTP tool upstream.

The wire contract with a tool: ``POST {url}/tools/{name}`` with the canonical
arguments as the JSON body; the tool answers JSON. Only Gatekeeper's own headers
and the upstream's configured credentials go out; nothing of the agent's request
(its token above all) is ever copied.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

from gatekeeper import codes

from ..config import Upstream
from ..egress.credentials import EgressCredentials
from ..errors import UpstreamError, UpstreamTimeout
from ..models import ToolCall
from ..streams import read_body
from ..tracing import current_request
from .h1 import AnswerError, AnswerTooLarge, ConnectFailed, H1Pool, unsafe_header

EGRESS_CREDENTIAL_HEADER = "X-Gatekeeper-Egress-Credential"
# Headers the gate sets itself: an upstream's configured header of the same name is not sent
# beside them (the plain-HTTP path; aiohttp's path lets the gate's own value win the same way).
_OWN_HEADERS = frozenset(
    {
        "host",
        "content-type",
        "content-length",
        "transfer-encoding",
        "connection",
        "accept",
        "accept-encoding",
        "x-gatekeeper-decision-id",
        "x-request-id",
        "traceparent",
        EGRESS_CREDENTIAL_HEADER.lower(),
    }
)
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class HttpTransport:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        max_response_bytes: int,
        credentials: EgressCredentials | None = None,
        pool: H1Pool | None = None,
    ) -> None:
        self._session = session
        self._max = max_response_bytes
        self._credentials = credentials
        # Parsed once per (upstream url, tool): building and parsing the URL is per-call work
        # otherwise. Bounded by the configured upstreams x tools (unknown tools never get here).
        self._urls: dict[tuple[str, str], URL] = {}
        # Plain http:// upstreams go through the small HTTP/1.1 client (h1.py); anything else
        # (https, credentials in the URL) through aiohttp. None: aiohttp for everything.
        self._pool = pool
        # Per (upstream, tool): the request's fixed head, rendered once; the upstream object is
        # kept beside it, so a reloaded configuration (a new object) renders it again.
        self._heads: dict[tuple[str, str], tuple[Upstream, tuple[str, int, str] | None]] = {}

    def _url(self, base: str, tool: str) -> URL:
        url = self._urls.get((base, tool))
        if url is None:
            url = URL(f"{base.rstrip('/')}/tools/{quote(tool, safe='.-_')}")
            if len(self._urls) < 10_000:
                self._urls[(base, tool)] = url
        return url

    async def call_tool(
        self,
        upstream: Upstream,
        tool: str,
        canonical_arguments: bytes,
        decision_id: str,
        call: ToolCall | None = None,
    ) -> bytes:
        """Return the tool's JSON answer as raw bytes (validated JSON, not re-encoded)."""
        if upstream.url is None:
            raise UpstreamError(
                f"upstream {upstream.name!r} has no plain-HTTP url configured",
                code=codes.UPSTREAM_MISCONFIGURED,
            )
        if self._pool is not None:
            prepared = self._head(upstream, upstream.url, tool)
            if prepared is not None:
                return await self._post_h1(upstream, tool, prepared, decision_id, canonical_arguments, call)
        url = self._url(upstream.url, tool)
        headers = {
            **upstream.headers,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-Gatekeeper-Decision-Id": decision_id,
        }
        ids = current_request.get()
        if ids is not None:
            headers.update(ids.upstream_headers())
        with self._egress_credential(upstream, tool, decision_id, call) as credential:
            if credential is not None:
                headers[EGRESS_CREDENTIAL_HEADER] = credential
            return await self._post(upstream, url, headers, canonical_arguments)

    @contextlib.contextmanager
    def _egress_credential(
        self, upstream: Upstream, tool: str, decision_id: str, call: ToolCall | None
    ) -> Iterator[str | None]:
        """The call's egress credential, when the upstream wants one: valid while the call runs
        (the tool's timeout bounds it), revoked however it ends. None when it wants none."""
        if not upstream.egress_credential:
            yield None
            return
        if self._credentials is None or call is None:  # config validation makes this unreachable
            raise UpstreamError(
                f"upstream {upstream.name!r} wants an egress credential and none can be minted",
                code=codes.UPSTREAM_MISCONFIGURED,
            )
        ttl = upstream.timeout_seconds + 5.0
        with self._credentials.issued(call.principal, tool, decision_id, ttl) as credential:
            yield credential

    def _head(self, upstream: Upstream, base: str, tool: str) -> tuple[str, int, str] | None:
        """(host, port, the fixed part of the request head) for a plain http:// upstream; None
        when aiohttp carries its calls."""
        cached = self._heads.get((upstream.name, tool))
        if cached is not None and cached[0] is upstream:
            return cached[1]
        url = self._url(base, tool)
        prepared: tuple[str, int, str] | None = None
        if url.scheme == "http" and url.raw_host and url.port and url.user is None and url.password is None:
            lines = [
                f"POST {url.raw_path_qs} HTTP/1.1",
                f"Host: {url.host_port_subcomponent}",
                "Content-Type: application/json",
                "Accept: application/json",
                "Accept-Encoding: identity",
            ]
            for name, value in upstream.headers.items():
                if not name or not set(name) <= _TOKEN or unsafe_header(value):
                    raise UpstreamError(
                        f"upstream {upstream.name!r} has a header that cannot be sent: {name!r}",
                        code=codes.UPSTREAM_MISCONFIGURED,
                    )
                if name.lower() == "host":  # a virtual host behind the URL's address, as aiohttp sent it
                    lines[1] = f"Host: {value}"
                elif name.lower() not in _OWN_HEADERS:
                    lines.append(f"{name}: {value}")
            if not unsafe_header(lines[0] + lines[1]):
                prepared = (url.raw_host, url.port, "\r\n".join(lines) + "\r\n")
        if len(self._heads) < 10_000:
            self._heads[(upstream.name, tool)] = (upstream, prepared)
        return prepared

    async def _post_h1(
        self,
        upstream: Upstream,
        tool: str,
        prepared: tuple[str, int, str],
        decision_id: str,
        canonical_arguments: bytes,
        call: ToolCall | None,
    ) -> bytes:
        host, port, head = prepared
        own = f"X-Gatekeeper-Decision-Id: {decision_id}\r\n"
        ids = current_request.get()
        if ids is not None:
            for name, value in ids.upstream_headers().items():
                own += f"{name}: {value}\r\n"
        with self._egress_credential(upstream, tool, decision_id, call) as credential:
            if credential is not None:
                own += f"{EGRESS_CREDENTIAL_HEADER}: {credential}\r\n"
            return await self._send_h1(upstream, host, port, head, own, canonical_arguments)

    async def _send_h1(
        self, upstream: Upstream, host: str, port: int, head: str, own: str, body: bytes
    ) -> bytes:
        if unsafe_header(own.replace("\r\n", "")):  # ids and credentials are the gate's own: never
            raise UpstreamError("a request header cannot be sent", code=codes.UPSTREAM_ERROR)
        request = f"{head}{own}Content-Length: {len(body)}\r\n\r\n".encode() + body
        pool = self._pool
        if pool is None:  # _head prepares nothing without a pool: unreachable
            raise UpstreamError("no upstream client", code=codes.UPSTREAM_MISCONFIGURED)
        try:
            async with asyncio.timeout(upstream.timeout_seconds):
                status, answer = await pool.post(host, port, request, self._max)
        except TimeoutError:
            raise UpstreamTimeout(
                f"tool upstream {upstream.name!r} did not answer within {upstream.timeout_seconds:g}s"
            ) from None
        except ConnectFailed as exc:  # never connected: the tool saw nothing
            raise UpstreamError(f"tool upstream {upstream.name!r} could not be reached: {exc}") from None
        except AnswerTooLarge:
            raise UpstreamError(
                "the tool's answer is larger than the configured limit",
                code=codes.UPSTREAM_RESPONSE_TOO_LARGE,
            ) from None
        except AnswerError as exc:  # the request may have reached the tool
            raise UpstreamError(
                f"tool upstream {upstream.name!r} failed mid-call: {exc}", code=codes.UPSTREAM_ERROR
            ) from None
        return self._checked(upstream, status, answer)

    def _checked(self, upstream: Upstream, status: int, body: bytes) -> bytes:
        if status >= 500 or status in (301, 302, 303, 307, 308):
            raise UpstreamError(
                f"tool upstream {upstream.name!r} answered HTTP {status}", code=codes.UPSTREAM_ERROR
            )
        if len(body) > self._max:
            raise UpstreamError(
                "the tool's answer is larger than the configured limit",
                code=codes.UPSTREAM_RESPONSE_TOO_LARGE,
            )
        try:
            _check_json(body)
        except (ValueError, UnicodeDecodeError):
            raise UpstreamError(
                f"tool upstream {upstream.name!r} did not answer valid JSON", code=codes.UPSTREAM_ERROR
            ) from None
        return body

    async def _post(
        self, upstream: Upstream, url: URL, headers: dict[str, str], canonical_arguments: bytes
    ) -> bytes:
        try:
            async with asyncio.timeout(upstream.timeout_seconds):
                async with self._session.post(
                    url, data=canonical_arguments, headers=headers, allow_redirects=False
                ) as resp:
                    if resp.status >= 500 or resp.status in (301, 302, 303, 307, 308):
                        raise UpstreamError(
                            f"tool upstream {upstream.name!r} answered HTTP {resp.status}",
                            code=codes.UPSTREAM_ERROR,
                        )
                    if resp.content_length is not None and resp.content_length > self._max:
                        raise UpstreamError(
                            "the tool's answer is larger than the configured limit",
                            code=codes.UPSTREAM_RESPONSE_TOO_LARGE,
                        )
                    body = await read_body(resp.content, self._max)
                    if len(body) > self._max:
                        raise UpstreamError(
                            "the tool's answer is larger than the configured limit",
                            code=codes.UPSTREAM_RESPONSE_TOO_LARGE,
                        )
        except TimeoutError:
            raise UpstreamTimeout(
                f"tool upstream {upstream.name!r} did not answer within {upstream.timeout_seconds:g}s"
            ) from None
        except aiohttp.ClientConnectorError as exc:  # never connected: the tool saw nothing
            raise UpstreamError(
                f"tool upstream {upstream.name!r} could not be reached: {type(exc).__name__}"
            ) from None
        except aiohttp.ClientError as exc:  # the request may have reached the tool
            raise UpstreamError(
                f"tool upstream {upstream.name!r} failed mid-call: {type(exc).__name__}",
                code=codes.UPSTREAM_ERROR,
            ) from None
        try:
            _check_json(body)
        except (ValueError, UnicodeDecodeError):
            raise UpstreamError(
                f"tool upstream {upstream.name!r} did not answer valid JSON", code=codes.UPSTREAM_ERROR
            ) from None
        return body


def _check_json(body: bytes) -> None:
    """Raise ValueError unless ``body`` is JSON. orjson first (several times faster); it is
    stricter than ``json`` (NaN, lone surrogates), so what it refuses gets the old reading."""
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        json.loads(body)
