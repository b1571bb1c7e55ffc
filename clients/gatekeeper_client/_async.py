"""The asyncio client for ``POST /v1/invoke``."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, overload

import aiohttp
from yarl import URL

from ._errors import (
    AuthenticationFailed,
    BadRequest,
    CallDenied,
    CallPending,
    GatekeeperError,
    PayloadTooLarge,
    Unavailable,
    UnknownTool,
    UpstreamFailed,
    UpstreamTimeout,
)
from ._transport import SessionClient, checked_base_url, json_object

__all__ = ["AsyncGatekeeperClient", "InvokeResult"]

# Never log the token or the arguments: both may be secret. Tool name, status and decision id only.
log = logging.getLogger("gatekeeper_client")

_USER_AGENT = "gatekeeper-client/0.1"
_SIMPLE_ERRORS: dict[int, type[GatekeeperError]] = {
    400: BadRequest,
    401: AuthenticationFailed,
    404: UnknownTool,
    413: PayloadTooLarge,
    502: UpstreamFailed,
    503: Unavailable,
    504: UpstreamTimeout,
}


@dataclass(frozen=True, slots=True)
class InvokeResult:
    """An allowed, forwarded call: the tool's answer and the decision id that audits it.

    ``result`` is whatever the tool answered, including a tool-level error such as a missing
    file: the gate's outcome is about the call being allowed, not about the tool succeeding.
    """

    result: Any
    decision_id: str


@dataclass(frozen=True, slots=True)
class Decision:
    """An allowed call that Gatekeeper did not forward (``POST /v1/decide``): run it yourself.

    ``capabilities`` are what Gatekeeper read in the arguments; ``rule`` allowed them;
    ``approval_id`` is set when an operator's approval was used for it.
    """

    decision_id: str
    tool: str
    capabilities: tuple[str, ...]
    rule: str | None
    reason: str | None
    approval_id: str | None
    body: dict[str, Any]


def _invoke_url(base_url: str, path: str = "/v1/invoke") -> URL:
    """``base_url`` + ``path``, rejecting URLs that could leak the token or are ambiguous."""
    url = checked_base_url(base_url)
    return url.with_path(url.path.rstrip("/") + path)


def _wait_header(wait: float | None) -> dict[str, str]:
    if wait is None:
        return {}
    if not math.isfinite(wait) or wait < 0:
        raise ValueError("wait must be a finite number of seconds >= 0")
    # RFC 7240 wait is whole seconds; round up so the gate waits at least as long as asked.
    return {"Prefer": f"wait={math.ceil(wait)}"}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@overload
def _outcome(status: int, raw: bytes, decided: Literal[False] = False) -> InvokeResult: ...
@overload
def _outcome(status: int, raw: bytes, decided: Literal[True]) -> Decision: ...
def _outcome(status: int, raw: bytes, decided: bool = False) -> InvokeResult | Decision:
    """Turn one HTTP answer into a result (a decision, for /v1/decide) or the matching exception."""
    body = json_object(status, raw)
    decision_id = _text(body.get("decision_id"))
    code = _text(body.get("code"))
    message = _text(body.get("message")) or _text(body.get("reason")) or f"HTTP {status}"

    if status == 200 and decided:
        if body.get("outcome") != "allowed" or decision_id is None or not isinstance(body.get("tool"), str):
            raise GatekeeperError(
                "Gatekeeper answered 200 without an allowed outcome, decision_id and tool",
                status=status,
                code="invalid_response",
                decision_id=decision_id,
                body=body,
            )
        capabilities = body.get("capabilities")
        return Decision(
            decision_id=decision_id,
            tool=body["tool"],
            capabilities=tuple(c for c in capabilities if isinstance(c, str))
            if isinstance(capabilities, list)
            else (),
            rule=_text(body.get("rule")),
            reason=_text(body.get("reason")),
            approval_id=_text(body.get("approval_id")),
            body=body,
        )
    if status == 200:
        if body.get("outcome") != "allowed" or decision_id is None or "result" not in body:
            raise GatekeeperError(
                "Gatekeeper answered 200 without an allowed outcome, decision_id and result",
                status=status,
                code="invalid_response",
                decision_id=decision_id,
                body=body,
            )
        return InvokeResult(result=body["result"], decision_id=decision_id)
    if status == 403:
        # Also fail-closed refusals (inspector or policy errors), which carry a message, not a reason.
        raise CallDenied(
            _text(body.get("reason")) or message,
            code=code or "denied",
            decision_id=decision_id,
            rule=_text(body.get("rule")),
            capability=_text(body.get("capability")),
            body=body,
        )
    if status == 202:
        raise CallPending(
            "the call is held for human approval",
            code=code or "pending",
            decision_id=decision_id,
            approval_id=_text(body.get("approval_id")),
            expires_at=body.get("expires_at"),
            reason=_text(body.get("reason")),
            body=body,
        )
    cls = _SIMPLE_ERRORS.get(status, GatekeeperError)
    raise cls(message, status=status, code=code or "error", decision_id=decision_id, body=body)


class AsyncGatekeeperClient(SessionClient):
    """Sends tool calls through Gatekeeper; one instance per agent identity (token).

    Use ``async with`` or call ``aclose()``. A ``session`` passed in is used as is and left open
    (its owner closes it); otherwise the client opens its own on first use.
    The token goes only to ``base_url`` (redirects are not followed) and is never logged.
    """

    _closed_name = "AsyncGatekeeperClient"

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 60.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if not token or any(c.isspace() for c in token):
            raise ValueError("token must be a non-empty string without whitespace")
        super().__init__(timeout, session)
        self._url = _invoke_url(base_url)
        self._decide_url = _invoke_url(base_url, "/v1/decide")
        self._token = token

    def __repr__(self) -> str:
        # Deliberately leaves out the token.
        return f"{type(self).__name__}(base_url={str(self._url.with_path('/'))!r})"

    async def invoke(
        self, tool: str, arguments: Mapping[str, Any] | None = None, *, wait: float | None = None
    ) -> InvokeResult:
        """Ask Gatekeeper to run ``tool`` with ``arguments``; return its result or raise.

        ``wait`` asks Gatekeeper to hold the request up to that many seconds for a human
        decision before answering "pending" (``Prefer: wait=N``). The client-side timeout is
        ``timeout`` on top of ``wait``, so waiting does not turn into a client timeout.
        Raises a ``GatekeeperError`` subclass for every outcome other than "allowed".
        """
        status, raw = await self._post(self._url, tool, arguments, wait)
        return _outcome(status, raw)

    async def decide(
        self, tool: str, arguments: Mapping[str, Any] | None = None, *, wait: float | None = None
    ) -> Decision:
        """Ask Gatekeeper whether ``tool`` may run with ``arguments``, without running it
        (``POST /v1/decide``): a ``Decision`` when allowed (run it yourself), else the same
        exceptions as ``invoke`` (``CallDenied``, ``CallPending``, ...)."""
        status, raw = await self._post(self._decide_url, tool, arguments, wait)
        return _outcome(status, raw, True)

    async def _post(
        self, url: URL, tool: str, arguments: Mapping[str, Any] | None, wait: float | None
    ) -> tuple[int, bytes]:
        if self._closed:
            raise RuntimeError("this AsyncGatekeeperClient is closed")
        if not isinstance(tool, str) or not tool:
            raise ValueError("tool must be a non-empty string")
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
            **_wait_header(wait),
        }
        # allow_nan=False: Gatekeeper's strict parser rejects NaN/Infinity, so fail here, clearly.
        payload = json.dumps(
            {"tool": tool, "arguments": dict(arguments or {})}, ensure_ascii=False, allow_nan=False
        ).encode()
        total = self._timeout + (math.ceil(wait) if wait is not None else 0)
        status, raw = await self._send(
            "POST", url, data=payload, headers=headers, seconds=total, for_call=True
        )
        log.debug("gatekeeper %s tool=%s status=%d", url.path, tool, status)
        return status, raw
