"""``POST /v1/invoke``: the JSON entry point, as a list of stages."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.streams import EofStream

from .. import strictjson
from ..errors import (
    GatekeeperError,
    PayloadTooLarge,
    RequestError,
    RequestTimeout,
    Unavailable,
    UpstreamError,
)
from ..escalation import Pending
from ..models import Decision, Outcome
from ..pipeline import FAILURE_CODES, Exchange, Halt, Stage, need, record, run
from ..streams import read_body
from ..timefmt import iso8601
from .budgets import refund_budgets, spend_budgets
from .request_ids import request_id_of
from .responses import error_response, json_response
from .run_files import bind_run_files, confirm_run_files
from .state import AUDIT, CONFIG, ESCALATION, GATE, LIFECYCLE, METRICS, SINKS, TRANSPORT, VERIFIER
from .written_code import inherit_written_code, record_written_code

_JSON_HEADERS = {"Content-Type": "application/json"}
# A client that sends its headers and then only part of its body holds a connection no longer.
BODY_READ_SECONDS = 30.0
_NO_QUERY: dict[str, str] = {}
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d{1,6})(?:$|[,;\s])", re.IGNORECASE)


async def read_json_body(request: web.Request, max_bytes: int, max_depth: int) -> Any:
    """One strict read: JSON content type, bounded size, strict parse."""
    ctype = request.headers.get("Content-Type", "")
    if request.headers.getall("Content-Type", []).__len__() > 1:
        raise RequestError("send exactly one Content-Type header", code="ambiguous_content_type")
    if ctype.split(";", 1)[0].strip().lower() != "application/json":
        raise RequestError(
            f"Content-Type must be application/json, got {ctype or 'nothing'!r}",
            code="unsupported_content_type",
        )
    charset = request.charset
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        raise RequestError("JSON must be UTF-8", code="unsupported_content_type")
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(f"body is {request.content_length} bytes; the limit is {max_bytes}")
    try:
        async with asyncio.timeout(BODY_READ_SECONDS):
            body = await read_body(request.content, max_bytes)
    except TimeoutError:
        raise RequestTimeout(
            f"the request body did not arrive within {BODY_READ_SECONDS:g} s", code="body_timeout"
        ) from None
    except (ConnectionError, aiohttp.ClientPayloadError, asyncio.IncompleteReadError, EofStream):
        raise RequestError(
            "the request body ended before its declared length", code="incomplete_body"
        ) from None
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"body is larger than the limit of {max_bytes} bytes")
    return strictjson.loads(body, max_bytes=max_bytes, max_depth=max_depth)


def prefer_wait(request: web.Request) -> float | None:
    """RFC 7240 ``Prefer: wait=N``; None when the caller did not say."""
    for value in request.headers.getall("Prefer", []):
        match = _PREFER_WAIT.search(value)
        if match:
            return float(match.group(1))
    return None


async def authenticate(ex: Exchange) -> None:
    request: web.Request = ex.request
    # No query string, nothing to check there: skips building the query mapping on every call.
    query = request.query if request.query_string else _NO_QUERY
    ex.principal = await request.app[VERIFIER].authenticate(request.headers, query)


async def parse_invoke(ex: Exchange) -> None:
    request: web.Request = ex.request
    limits = request.app[CONFIG].limits
    body = await read_json_body(request, limits.max_body_bytes, limits.max_json_depth)
    if not isinstance(body, dict):
        raise RequestError(
            'body must be a JSON object {"tool": ..., "arguments": {...}}', code="invalid_request"
        )
    unknown = sorted(set(body) - {"tool", "arguments"})
    if unknown:
        raise RequestError(
            f"unknown field {unknown[0]!r}; the body has only tool and arguments", code="unknown_field"
        )
    tool = body.get("tool")
    if not isinstance(tool, str) or not tool:
        raise RequestError("tool must be a non-empty string", code="invalid_request")
    arguments = body.get("arguments", {})
    if not isinstance(arguments, dict):
        raise RequestError("arguments must be a JSON object", code="invalid_request")
    ex.tool, ex.arguments = tool, arguments


async def decide(ex: Exchange) -> None:
    principal, tool = need(ex.principal, "principal"), need(ex.tool, "tool")
    verdict = ex.request.app[GATE].evaluate(principal, tool, ex.arguments)
    ex.call, ex.decision, ex.shadow = verdict.call, verdict.decision, verdict.shadow


async def hold_escalated(ex: Exchange) -> None:
    decision = need(ex.decision, "decision")
    if decision.outcome is not Outcome.ESCALATE or ex.call is None:
        return
    if ex.request.app[CONFIG].mode == "monitor":
        return  # nothing is held in monitor mode; refuse_denied records it as a would-be refusal
    result = await ex.request.app[ESCALATION].hold(ex.call, decision, wait_seconds=prefer_wait(ex.request))
    if isinstance(result, Pending):
        ex.approval_id = result.approval_id
        ex.response = json_response(
            202,
            {
                "outcome": "pending",
                "decision_id": ex.decision_id,
                "approval_id": result.approval_id,
                "expires_at": iso8601(result.expires_at),
                "reason": decision.reason,
            },
        )
        raise Halt
    ex.decision = recheck_after_hold(ex, decision, result)
    ex.approval_id = result.approval_id


def recheck_after_hold(ex: Exchange, held: Decision, result: Decision) -> Decision:
    """A call may wait minutes for a human; if the policy changed meanwhile, decide it again:
    an operator's approval never overrides what the new policy denies."""
    gate = ex.request.app[GATE]
    if result.outcome is not Outcome.ALLOW or gate.policy_set is None:
        return result
    if gate.policy_set.version == held.policy_version or ex.principal is None or ex.tool is None:
        return result
    again = gate.evaluate(ex.principal, ex.tool, ex.arguments).decision
    return again if again.outcome is Outcome.DENY else result


async def refuse_denied(ex: Exchange) -> None:
    decision = need(ex.decision, "decision")
    if decision.outcome is Outcome.ALLOW:
        return
    if ex.request.app[CONFIG].mode == "monitor" and decision.code not in FAILURE_CODES:
        ex.enforced = False  # monitor mode: recorded as would-deny, forwarded anyway
        return
    ex.response = json_response(
        403,
        {
            "outcome": "denied",
            "decision_id": ex.decision_id,
            "code": decision.code,
            "reason": f"{ex.tool} refused: {decision.reason}",
            "rule": decision.rule,
            "capability": decision.capability,
            "policy_version": decision.policy_version,
            "approval_id": decision.approval_id,
        },
    )
    raise Halt


def ensure_recordable(app: web.Application) -> None:
    """A call whose decision cannot be recorded does not run (both entry points call this): not
    while the audit store refuses writes, nor once ``audit.max_unwritten_records`` records (those
    of the calls in flight included) or ``audit.max_unwritten_seconds`` of them wait."""
    audit = app.get(AUDIT)
    if audit is None:
        return
    lifecycle = app.get(LIFECYCLE)
    inflight = lifecycle.inflight if lifecycle is not None else 0
    problem = audit.refusal(app[CONFIG].audit.max_unwritten_seconds)
    if problem is None and audit.lag + inflight > audit.max_queue:
        problem = f"{audit.lag} records wait to be written and {inflight} calls are in flight"
    if problem is not None:
        raise Unavailable(
            f"the audit trail cannot record this call ({problem}); it was not forwarded. Retry later",
            code="audit_unavailable",
        )


async def settle_record(app: web.Application, ex: Exchange, appended_before: int) -> GatekeeperError | None:
    """With ``audit.durable_answers``, hold the answer until the call's record is committed: a
    crash then loses no record of a call that was answered. None when the answer may go; else the
    refusal that replaces it (the record stays queued and is written when the store recovers)."""
    audit = app.get(AUDIT)
    settings = app[CONFIG].audit
    if audit is None or not settings.durable_answers:
        return None
    accepted = audit.appended > appended_before
    if not accepted or (not ex.forwarded and audit.refusal(settings.max_unwritten_seconds) is not None):
        # Not queued (its record went to the log), or a refusal while the store is down: a call
        # that did not run is answered at once. One that ran is not answered as if recorded.
        if not ex.forwarded:
            return None
    elif await audit.wait_written(audit.appended, settings.max_unwritten_seconds):
        return None
    what = "the tool received the call, but its answer is withheld" if ex.forwarded else "refused"
    return Unavailable(
        f"the call's audit record could not be written within {settings.max_unwritten_seconds:g} s; {what}",
        code="audit_unavailable",
        forwarded=ex.forwarded,
    )


async def forward(ex: Exchange) -> None:
    call = need(ex.call, "understood call")
    app = ex.request.app
    ensure_recordable(app)
    # The upstream was fixed when the call was understood: a policy swap cannot redirect it now.
    upstream = app[CONFIG].upstreams[call.upstream]
    started = time.perf_counter()
    # From here the upstream may act on the call even if its answer fails: its budget stays spent.
    ex.forwarded = True
    try:
        # The canonical bytes the digest covers are the bytes the tool gets: encoded once.
        answer = await app[TRANSPORT].call_tool(
            upstream, call.tool, call.canonical_arguments, ex.decision_id, call
        )
    except UpstreamError as exc:
        if exc.code in ("upstream_unreachable", "upstream_misconfigured"):
            ex.forwarded = False  # nothing reached the tool: what the call spent is refunded
        raise
    finally:
        ex.upstream_seconds = time.perf_counter() - started
        app[METRICS].upstream_timer(upstream.name).observe(ex.upstream_seconds)
    # Splice the tool's validated JSON in as-is: no second encoding on the hot path. The
    # decision id is hex, so it needs no escaping.
    body = b'{"outcome": "allowed", "decision_id": "%s", "result": %s}' % (ex.decision_id.encode(), answer)
    ex.response = web.Response(status=200, body=body, headers=_JSON_HEADERS)


# The whole flow of a JSON call, in order. MCP tools/call runs decide, spend_budgets and the hold too.
INVOKE_STAGES: tuple[Stage, ...] = (
    authenticate,
    parse_invoke,
    decide,
    inherit_written_code,
    bind_run_files,
    spend_budgets,
    hold_escalated,
    confirm_run_files,
    refuse_denied,
    record_written_code,
    forward,
)


async def handle_invoke(request: web.Request) -> web.StreamResponse:
    ex = Exchange(entry="invoke", request=request, request_id=request_id_of(request))
    audit = request.app.get(AUDIT)
    appended_before = audit.appended if audit is not None else 0
    try:
        await run(INVOKE_STAGES, ex)
    finally:
        try:
            await refund_budgets(ex)
        finally:
            appended_before = audit.appended if audit is not None else 0
            record(ex, request.app[METRICS], request.app[CONFIG].mode, request.app.get(SINKS))
    unrecorded = await settle_record(request.app, ex, appended_before)
    if unrecorded is not None:
        return error_response(unrecorded, decision_id=ex.decision_id)
    if ex.error is not None:
        extra = {"decision_id": ex.decision_id}
        if ex.decision is not None:
            extra["outcome"] = "error"
        return error_response(ex.error, **extra)
    response: web.StreamResponse = ex.response
    return response
