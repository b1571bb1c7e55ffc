"""Typed client for Gatekeeper's operator API (the approval queue), async and blocking.

::

    async with AsyncOperatorClient("http://127.0.0.1:8081", token) as ops:
        for approval in await ops.list_approvals():
            print(approval.id, approval.tool, approval.arguments)
        await ops.approve(approval.id, comment="looks fine")
        async for event in ops.events():
            print(event.kind, event.approval)

Every failure is a ``GatekeeperError`` subclass: ``AuthenticationFailed`` (401), ``Forbidden``
(403, e.g. ``self_approval``), ``NotFound`` (404), ``Conflict`` (409: ``not_pending``,
``already_voted``, ``approval_expired``), ``BadRequest`` (400), ``Unavailable`` (503),
``GatekeeperUnreachable`` / ``GatekeeperTimeout`` (no answer). The token goes only to
``base_url`` (redirects are not followed) and is never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from ._errors import (
    AuthenticationFailed,
    BadRequest,
    Conflict,
    Forbidden,
    GatekeeperError,
    GatekeeperTimeout,
    NotFound,
    PayloadTooLarge,
    Unavailable,
)
from ._runner import LoopThread
from ._transport import SessionClient, checked_base_url, json_object, unreachable

__all__ = [
    "ApprovalView",
    "AsyncOperatorClient",
    "GrantView",
    "OperatorClient",
    "QueueEvent",
    "VoteView",
]

log = logging.getLogger("gatekeeper_client")

_USER_AGENT = "gatekeeper-operator-client/0.1"
_ERRORS: dict[int, type[GatekeeperError]] = {
    400: BadRequest,
    401: AuthenticationFailed,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    503: Unavailable,
}
_MAX_EVENT_BYTES = 16 * 1024 * 1024
_EVENT_READ_TIMEOUT = 60.0  # the server sends a keepalive every 15 s; silence this long = dead

_LINE_END = re.compile(rb"\r\n|\r|\n")


# -- values ---------------------------------------------------------------------------------------


def _invalid(what: str, body: Any = None) -> GatekeeperError:
    return GatekeeperError(
        f"Gatekeeper sent an unexpected {what}",
        code="invalid_response",
        body=body if isinstance(body, dict) else None,
    )


def _str(obj: Mapping[str, Any], key: str, *, required: bool = False) -> str:
    value = obj.get(key)
    if isinstance(value, str):
        return value
    if required or value is not None:
        raise _invalid(f"'{key}' (expected a string)", obj)
    return ""


def _opt_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise _invalid(f"'{key}' (expected a string or null)", obj)


def _num(obj: Mapping[str, Any], key: str, default: float = 0.0) -> float:
    value = obj.get(key, default)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise _invalid(f"'{key}' (expected a number)", obj)


def _opt_num(obj: Mapping[str, Any], key: str) -> float | None:
    return None if obj.get(key) is None else _num(obj, key)


def _time(obj: Mapping[str, Any], key: str) -> float:
    """Epoch seconds of a time the API gives in ISO 8601 (older servers gave epoch numbers)."""
    value = obj.get(key)
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise _invalid(f"'{key}' (expected an ISO 8601 time)", obj) from None
        if when.tzinfo is None:
            raise _invalid(f"'{key}' (expected an ISO 8601 time with a time zone)", obj)
        return when.timestamp()
    return _num(obj, key)


def _opt_time(obj: Mapping[str, Any], key: str) -> float | None:
    return None if obj.get(key) is None else _time(obj, key)


def _int(obj: Mapping[str, Any], key: str, default: int) -> int:
    value = obj.get(key, default)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _invalid(f"'{key}' (expected an integer)", obj)


def _strs(obj: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = obj.get(key) or []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise _invalid(f"'{key}' (expected a list of strings)", obj)


def _obj(value: Any, what: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    raise _invalid(f"{what} (expected a JSON object)", value)


@dataclass(frozen=True, slots=True)
class VoteView:
    operator: str
    verdict: str  # "approve" | "deny"
    comment: str
    at: float

    @classmethod
    def from_json(cls, data: Any) -> VoteView:
        obj = _obj(data, "vote")
        return cls(
            operator=_str(obj, "operator", required=True),
            verdict=_str(obj, "verdict", required=True),
            comment=_str(obj, "comment"),
            at=_time(obj, "at"),
        )


@dataclass(frozen=True, slots=True)
class ApprovalView:
    """One approval as the operator API shows it. ``raw`` is the whole JSON object as received,
    including fields this client version does not know."""

    id: str
    state: str  # pending | approved | denied | expired | consumed
    principal: str
    roles: tuple[str, ...]
    tool: str
    arguments: dict[str, Any] = field(hash=False)
    digest: str
    capabilities: tuple[str, ...]
    rule: str | None
    reason: str
    created_at: float
    expires_at: float
    required_approvals: int
    approvals: int
    votes: tuple[VoteView, ...]
    decided_at: float | None
    consumed_at: float | None
    raw: dict[str, Any] = field(hash=False, compare=False, repr=False)

    @property
    def pending(self) -> bool:
        return self.state == "pending"

    @classmethod
    def from_json(cls, data: Any) -> ApprovalView:
        obj = _obj(data, "approval")
        votes = obj.get("votes") or []
        if not isinstance(votes, list):
            raise _invalid("'votes' (expected a list)", obj)
        return cls(
            id=_str(obj, "id", required=True),
            state=_str(obj, "state", required=True),
            principal=_str(obj, "principal"),
            roles=_strs(obj, "roles"),
            tool=_str(obj, "tool"),
            arguments=_obj(obj.get("arguments", {}), "'arguments'"),
            digest=_str(obj, "digest"),
            capabilities=_strs(obj, "capabilities"),
            rule=_opt_str(obj, "rule"),
            reason=_str(obj, "reason"),
            created_at=_time(obj, "created_at"),
            expires_at=_time(obj, "expires_at"),
            required_approvals=_int(obj, "required_approvals", 1),
            approvals=_int(obj, "approvals", 0),
            votes=tuple(VoteView.from_json(v) for v in votes),
            decided_at=_opt_time(obj, "decided_at"),
            consumed_at=_opt_time(obj, "consumed_at"),
            raw=obj,
        )


@dataclass(frozen=True, slots=True)
class GrantView:
    """A time-boxed grant ("this same call, for this principal, for T minutes")."""

    id: str
    principal: str
    tool: str
    digest: str
    approval_id: str | None
    granted_by: str
    comment: str
    created_at: float
    expires_at: float
    revoked_at: float | None
    revoked_by: str | None
    uses: int
    raw: dict[str, Any] = field(hash=False, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Any) -> GrantView:
        obj = _obj(data, "grant")
        return cls(
            id=_str(obj, "id", required=True),
            principal=_str(obj, "principal"),
            tool=_str(obj, "tool"),
            digest=_str(obj, "digest"),
            approval_id=_opt_str(obj, "approval_id"),
            granted_by=_str(obj, "granted_by"),
            comment=_str(obj, "comment"),
            created_at=_time(obj, "created_at"),
            expires_at=_time(obj, "expires_at"),
            revoked_at=_opt_time(obj, "revoked_at"),
            revoked_by=_opt_str(obj, "revoked_by"),
            uses=_int(obj, "uses", 0),
            raw=obj,
        )


@dataclass(frozen=True, slots=True)
class QueueEvent:
    """One change of the queue from ``GET /v1/events``: ``kind`` is one of created, vote,
    approved, denied, expired, consumed, grant, revoked."""

    kind: str
    approval: ApprovalView | None
    grant: GrantView | None
    at: float
    event_id: str | None = None  # the SSE ``id:`` field, when the server sends one
    raw: dict[str, Any] = field(default_factory=dict, hash=False, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Any, *, sse_event: str | None = None, event_id: str | None = None) -> QueueEvent:
        obj = _obj(data, "event")
        kind = obj.get("kind", sse_event)
        if not isinstance(kind, str) or not kind:
            raise _invalid("event without a kind", obj)
        approval, grant = obj.get("approval"), obj.get("grant")
        return cls(
            kind=kind,
            approval=None if approval is None else ApprovalView.from_json(approval),
            grant=None if grant is None else GrantView.from_json(grant),
            at=_time(obj, "at"),
            event_id=event_id,
            raw=obj,
        )


# -- HTTP -----------------------------------------------------------------------------------------


def _base_url(base_url: str) -> URL:
    url = checked_base_url(base_url)
    return url.with_path(url.path.rstrip("/"))


def _segment(value: str, what: str) -> str:
    """One path segment, percent-encoded so an id can never change which endpoint is called."""
    if not isinstance(value, str) or not value or value in (".", ".."):
        raise ValueError(f"{what} must be a non-empty string")
    return quote(value, safe="")


def _error(status: int, raw: bytes) -> GatekeeperError:
    try:
        body = json_object(status, raw)
    except GatekeeperError as exc:
        return exc
    code, message = body.get("code"), body.get("message")
    code = code if isinstance(code, str) and code else "error"
    message = message if isinstance(message, str) and message else f"HTTP {status}"
    cls = _ERRORS.get(status, GatekeeperError)
    return cls(message, status=status, code=code, body=body)


class AsyncOperatorClient(SessionClient):
    """The operator API over asyncio; one instance per operator token.

    Use ``async with`` or call ``aclose()``. A ``session`` passed in is used as is and left open.
    """

    _closed_name = "AsyncOperatorClient"

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if not isinstance(token, str) or not token or any(c.isspace() for c in token):
            raise ValueError("token must be a non-empty string without whitespace")
        super().__init__(timeout, session)
        self._base = _base_url(base_url)
        self._token = token

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={str(self._base)!r})"

    # -- approvals --

    async def list_approvals(
        self, state: str | None = "pending", limit: int = 100, offset: int = 0
    ) -> list[ApprovalView]:
        """Approvals in ``state`` (None: every state), newest page by ``limit``/``offset``."""
        return (await self.list_approvals_page(state, limit, offset))[0]

    async def list_approvals_page(
        self, state: str | None = "pending", limit: int = 100, offset: int = 0
    ) -> tuple[list[ApprovalView], int]:
        """Like ``list_approvals``, plus the total number matching ``state`` (for paging)."""
        if limit < 1 or offset < 0:
            raise ValueError("limit must be >= 1 and offset >= 0")
        query: dict[str, str] = {"limit": str(limit), "offset": str(offset)}
        if state is not None:
            query["state"] = state
        body = _obj(await self._request("GET", "/v1/approvals", query=query), "approval list")
        items = body.get("approvals")
        if not isinstance(items, list):
            raise _invalid("approval list without 'approvals'", body)
        total = body.get("total", len(items))
        if not isinstance(total, int) or isinstance(total, bool):
            raise _invalid("approval list 'total'", body)
        return [ApprovalView.from_json(item) for item in items], total

    async def get(self, approval_id: str) -> ApprovalView:
        path = f"/v1/approvals/{_segment(approval_id, 'approval_id')}"
        return ApprovalView.from_json(await self._request("GET", path))

    async def approve(
        self, approval_id: str, comment: str = "", grant_minutes: float | None = None
    ) -> ApprovalView:
        """Vote to approve. The answer's ``state`` stays "pending" while a quorum is incomplete.
        ``grant_minutes`` turns the approval into a grant of this same call for that long."""
        if grant_minutes is not None and (not math.isfinite(grant_minutes) or grant_minutes <= 0):
            raise ValueError("grant_minutes must be a positive number of minutes")
        path = f"/v1/approvals/{_segment(approval_id, 'approval_id')}/approve"
        body = await self._request(
            "POST", path, json_body={"comment": comment, "grant_minutes": grant_minutes}
        )
        return ApprovalView.from_json(body)

    async def deny(self, approval_id: str, comment: str = "") -> ApprovalView:
        path = f"/v1/approvals/{_segment(approval_id, 'approval_id')}/deny"
        return ApprovalView.from_json(await self._request("POST", path, json_body={"comment": comment}))

    # -- grants --

    async def grants(self, active: bool = True) -> list[GrantView]:
        body = _obj(
            await self._request("GET", "/v1/grants", query={"active": "true" if active else "false"}),
            "grant list",
        )
        items = body.get("grants")
        if not isinstance(items, list):
            raise _invalid("grant list without 'grants'", body)
        return [GrantView.from_json(item) for item in items]

    async def revoke_grant(self, grant_id: str) -> GrantView:
        path = f"/v1/grants/{_segment(grant_id, 'grant_id')}/revoke"
        return GrantView.from_json(await self._request("POST", path, json_body={}))

    # -- tool definition pins --

    async def tool_pins(self, state: str = "withheld") -> list[dict[str, Any]]:
        """MCP tool definitions (``withheld``: changed or flagged, each with its diff; or ``all``)."""
        body = _obj(await self._request("GET", "/v1/tool-pins", query={"state": state}), "pin list")
        items = body.get("pins")
        if not isinstance(items, list):
            raise _invalid("pin list without pins", body)
        return [_obj(item, "pin") for item in items]

    async def approve_tool(self, upstream: str, tool: str, digest: str) -> dict[str, Any]:
        """Pin the definition with ``digest`` (the ``seen_digest`` reviewed)."""
        path = f"/v1/tool-pins/{_segment(upstream, 'upstream')}/{_segment(tool, 'tool')}/approve"
        return _obj(await self._request("POST", path, json_body={"digest": digest}), "pin")

    # -- events --

    async def events(self) -> AsyncGenerator[QueueEvent, None]:
        """The live stream of queue changes (``GET /v1/events``), until the server closes it.

        Keepalive comments are skipped. Events whose data is not valid JSON raise
        ``GatekeeperError(code="invalid_response")``. Stop by breaking out of the loop.
        """
        session = self._open_session()
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._timeout, sock_read=max(self._timeout, _EVENT_READ_TIMEOUT)
        )
        headers = {**self._headers(), "Accept": "text/event-stream", "Cache-Control": "no-cache"}
        try:
            async with session.get(
                self._url("/v1/events"),
                headers=headers,
                allow_redirects=False,
                timeout=timeout,
            ) as response:
                if response.status != 200:
                    raise _error(response.status, await response.read())
                ctype = response.headers.get("Content-Type", "")
                if not ctype.startswith("text/event-stream"):
                    raise _invalid(f"content type for the event stream: {ctype!r}")
                async for sse_event, data, event_id in _parse_sse(response.content):
                    try:
                        payload = json.loads(data)
                    except ValueError as exc:
                        raise _invalid("event data (not JSON)") from exc
                    yield QueueEvent.from_json(payload, sse_event=sse_event, event_id=event_id)
        except TimeoutError as exc:
            raise GatekeeperTimeout(
                "the event stream went silent (no keepalive); reconnect", code="client_timeout"
            ) from exc
        except aiohttp.ClientError as exc:
            raise unreachable(exc, self._base.origin()) from exc

    # -- plumbing --

    def _url(self, path: str) -> URL:
        """``path`` (already percent-encoded) under ``base_url``'s own path."""
        return URL(str(self._base).rstrip("/") + path, encoded=True)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}", "User-Agent": _USER_AGENT}

    async def _request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
    ) -> Any:
        self._open_session()  # a closed client refuses before anything else
        url = self._url(path)
        if query:
            url = url.with_query(query)
        headers = {**self._headers(), "Accept": "application/json"}
        data: bytes | None = None
        if json_body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(dict(json_body), ensure_ascii=False, allow_nan=False).encode()
        status, raw = await self._send(method, url, data=data, headers=headers, seconds=self._timeout)
        log.debug("gatekeeper operator %s %s status=%d", method, url.path, status)
        if status != 200:
            raise _error(status, raw)
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            raise _invalid("non-JSON body") from exc


async def _lines(stream: aiohttp.StreamReader) -> AsyncIterator[str]:
    """The stream's lines, ending in CRLF, LF or CR (split here, so one large event is not limited
    by aiohttp's line-length limit; a line over 16 MiB is an error)."""
    buffer = bytearray()
    async for chunk in stream.iter_any():
        buffer += chunk
        start = 0
        while (match := _LINE_END.search(buffer, start)) is not None:
            # A CR at the end of what arrived may be the first half of a CRLF: wait for more.
            if match.group() == b"\r" and match.end() == len(buffer):
                break
            yield buffer[start : match.start()].decode("utf-8", "replace")
            start = match.end()
        del buffer[:start]
        if len(buffer) > _MAX_EVENT_BYTES:
            raise _invalid("event line larger than 16 MiB")
    if buffer.endswith(b"\r"):  # the stream ended right after a CR: it was a line end
        yield buffer[:-1].decode("utf-8", "replace")


async def _parse_sse(stream: aiohttp.StreamReader) -> AsyncIterator[tuple[str | None, str, str | None]]:
    """Server-sent events (WHATWG HTML §9.2): yields (event type, data, last event id).

    Comments (the keepalive) and ``retry:`` are skipped; an event cut off by the end of the
    stream is dropped, as the standard says.
    """
    event: str | None = None
    data: list[str] = []
    last_id: str | None = None
    size = 0
    async for line in _lines(stream):
        if line == "":
            if data:
                yield event, "\n".join(data), last_id
            event, data, size = None, [], 0
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
            size += len(value)
            if size > _MAX_EVENT_BYTES:
                raise _invalid("event larger than 16 MiB")
        elif name == "id" and "\x00" not in value:
            last_id = value


# -- blocking twin -------------------------------------------------------------------------------


class OperatorClient:
    """Blocking twin of ``AsyncOperatorClient``: same methods, results and exceptions.

    Runs the async client on a private event loop in one background thread; safe to share between
    threads. Must not be called from inside a running event loop. Use ``with`` or ``close()``.
    """

    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0) -> None:
        self._client = AsyncOperatorClient(base_url, token, timeout=timeout)
        self._runner = LoopThread(
            "OperatorClient",
            in_loop_error="OperatorClient blocks and cannot be called from a running event loop; "
            "use AsyncOperatorClient there",
            thread_name="gatekeeper-operator-client",
        )

    def __repr__(self) -> str:
        return f"OperatorClient(wrapping={self._client!r})"

    def __enter__(self) -> OperatorClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def list_approvals(
        self, state: str | None = "pending", limit: int = 100, offset: int = 0
    ) -> list[ApprovalView]:
        return self._runner.run(lambda: self._client.list_approvals(state, limit, offset))

    def list_approvals_page(
        self, state: str | None = "pending", limit: int = 100, offset: int = 0
    ) -> tuple[list[ApprovalView], int]:
        return self._runner.run(lambda: self._client.list_approvals_page(state, limit, offset))

    def get(self, approval_id: str) -> ApprovalView:
        return self._runner.run(lambda: self._client.get(approval_id))

    def approve(
        self, approval_id: str, comment: str = "", grant_minutes: float | None = None
    ) -> ApprovalView:
        return self._runner.run(lambda: self._client.approve(approval_id, comment, grant_minutes))

    def deny(self, approval_id: str, comment: str = "") -> ApprovalView:
        return self._runner.run(lambda: self._client.deny(approval_id, comment))

    def grants(self, active: bool = True) -> list[GrantView]:
        return self._runner.run(lambda: self._client.grants(active))

    def revoke_grant(self, grant_id: str) -> GrantView:
        return self._runner.run(lambda: self._client.revoke_grant(grant_id))

    def tool_pins(self, state: str = "withheld") -> list[dict[str, Any]]:
        return self._runner.run(lambda: self._client.tool_pins(state))

    def approve_tool(self, upstream: str, tool: str, digest: str) -> dict[str, Any]:
        return self._runner.run(lambda: self._client.approve_tool(upstream, tool, digest))

    def events(self) -> Generator[QueueEvent, None, None]:
        """Blocking iterator over the event stream; leaving the loop (or Ctrl-C) closes the stream."""
        stream = self._client.events()
        try:
            while True:
                try:
                    yield self._runner.run(stream.__anext__)
                except StopAsyncIteration:
                    return
        finally:
            loop = self._runner.loop
            if loop is not None and not loop.is_closed():
                try:
                    asyncio.run_coroutine_threadsafe(stream.aclose(), loop).result(timeout=5)
                except Exception:  # noqa: S110 - best effort: the stream is going away either way
                    pass

    def close(self) -> None:
        """Close the HTTP session and stop the background thread; safe to call more than once."""
        self._runner.close(self._client.aclose)
