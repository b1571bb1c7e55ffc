"""Forward an allowed call to a plain-HTTP tool upstream.

The wire contract with a tool: ``POST {url}/tools/{name}`` with the canonical
arguments as the JSON body; the tool answers JSON. Only Gatekeeper's own headers
and the upstream's configured credentials go out; nothing of the agent's request
(its token above all) is ever copied.
"""

from __future__ import annotations

import asyncio
import json
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

EGRESS_CREDENTIAL_HEADER = "X-Gatekeeper-Egress-Credential"


class HttpTransport:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        max_response_bytes: int,
        credentials: EgressCredentials | None = None,
    ) -> None:
        self._session = session
        self._max = max_response_bytes
        self._credentials = credentials
        # Parsed once per (upstream url, tool): building and parsing the URL is per-call work
        # otherwise. Bounded by the configured upstreams x tools (unknown tools never get here).
        self._urls: dict[tuple[str, str], URL] = {}

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
        if not upstream.egress_credential:
            return await self._post(upstream, url, headers, canonical_arguments)
        if self._credentials is None or call is None:  # config validation makes this unreachable
            raise UpstreamError(
                f"upstream {upstream.name!r} wants an egress credential and none can be minted",
                code=codes.UPSTREAM_MISCONFIGURED,
            )
        # Valid while the call runs (the tool's timeout bounds it), revoked however it ends.
        ttl = upstream.timeout_seconds + 5.0
        with self._credentials.issued(call.principal, tool, decision_id, ttl) as credential:
            headers[EGRESS_CREDENTIAL_HEADER] = credential
            return await self._post(upstream, url, headers, canonical_arguments)

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
