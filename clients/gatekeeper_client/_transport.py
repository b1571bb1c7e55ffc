"""What the invoke client and the operator client share on the wire: checking ``base_url``, owning
(or borrowing) an aiohttp session, sending one request with the token kept to ``base_url``, and
mapping transport failures and non-JSON answers to ``GatekeeperError``s."""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any, ClassVar, Self

import aiohttp
from yarl import URL

from ._errors import GatekeeperError, GatekeeperTimeout, GatekeeperUnreachable

# Appended, for a tool call, to say whether it ran: the caller must know whether to retry.
DID_NOT_RUN = "; the call did not run"
MAY_HAVE_RUN = "; the call may or may not have run"


def checked_base_url(base_url: str) -> URL:
    """``base_url`` as a URL, rejecting URLs that could leak the token or are ambiguous."""
    url = URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("base_url must be an absolute http:// or https:// URL")
    if url.user is not None or url.password is not None:
        raise ValueError("base_url must not carry credentials; pass the token separately")
    if url.query_string or url.fragment:
        raise ValueError("base_url must not have a query or fragment")
    return url


def json_object(status: int, raw: bytes) -> dict[str, Any]:
    """The answer's body as a JSON object, or ``GatekeeperError(code="invalid_response")``."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        body = None
    if not isinstance(body, dict):
        snippet = raw[:200].decode("utf-8", "replace")
        raise GatekeeperError(
            f"Gatekeeper answered HTTP {status} without a JSON object body: {snippet!r}",
            status=status,
            code="invalid_response",
        )
    return body


def unreachable(exc: aiohttp.ClientError, origin: URL, *, for_call: bool = False) -> GatekeeperUnreachable:
    """A connection that failed (nothing sent) or broke (``for_call``: the call may have run)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return GatekeeperUnreachable(
            f"cannot connect to Gatekeeper at {origin}: {exc.os_error}" + (DID_NOT_RUN if for_call else ""),
            code="connection_failed",
        )
    return GatekeeperUnreachable(
        f"no usable answer from Gatekeeper at {origin} ({type(exc).__name__})"
        + (MAY_HAVE_RUN if for_call else ""),
        code="connection_error",
    )


class SessionClient:
    """An HTTP session this client opens on first use and closes, or one passed in that its
    owner closes; ``async with`` closes it. Subclasses check their token first, then call this."""

    _closed_name: ClassVar[str]  # for "this ... is closed"

    def __init__(self, timeout: float, session: aiohttp.ClientSession | None) -> None:
        if not timeout > 0:
            raise ValueError("timeout must be > 0 seconds")
        self._timeout = timeout
        self._session = session
        self._owns_session = session is None
        self._closed = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session if this client opened it; safe to call more than once."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    def _open_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError(f"this {self._closed_name} is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _send(
        self,
        method: str,
        url: URL,
        *,
        data: bytes | None,
        headers: dict[str, str],
        seconds: float,
        for_call: bool = False,
    ) -> tuple[int, bytes]:
        """One request within ``seconds``, redirects not followed (the token goes to ``base_url``
        only): (status, body). ``for_call`` adds to a failure whether the tool call ran."""
        session = self._open_session()
        try:
            async with session.request(
                method,
                url,
                data=data,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=seconds),
            ) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise GatekeeperTimeout(
                f"no answer from Gatekeeper within {seconds:g}s" + (MAY_HAVE_RUN if for_call else ""),
                code="client_timeout",
            ) from exc
        except aiohttp.ClientError as exc:
            raise unreachable(exc, url.origin(), for_call=for_call) from exc
