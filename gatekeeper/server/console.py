"""The operator web console and the read-only APIs it needs beyond the approval queue.

Served by the operator listener: ``/`` is the console's page, ``/console/<asset>`` its
scripts and styles (every asset ships in the package; no CDN, no build step). The APIs:

- ``GET /v1/decisions?outcome=&principal=&tool=&since=&until=&limit=`` — recent decisions, newest
  first, from the in-memory ring buffer (``RECENT``);
- ``GET /v1/audit/status`` — the audit chain's status (``AUDIT_STATUS``), or ``unknown``;
- ``GET /v1/console/config`` — the capability patterns treated as high-risk (``approvals.high_risk``);
- ``GET /v1/approvals/{id}/explain`` — why a held call is dangerous: every capability with its
  evidence and what the policy says about it alone, and for shell commands the command line
  split into commands and tokens with the dangerous spans marked.

Every API route requires an operator token, like the rest of the listener.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import structlog
from aiohttp import web

from gatekeeper import codes
from gatekeeper.inspectors.bashlex_fixes import bashlex

from ..approvals.models import Approval
from ..errors import GatekeeperError, NotFound, RequestError
from ..gate import Gate
from ..manifest import WHOLE_ARGUMENTS
from ..models import Capability, Decision, Outcome, Principal
from ..timefmt import iso8601
from .operator import operator
from .responses import json_response
from .state import APPROVALS, CONFIG, GATE, RECENT

log = structlog.get_logger("gatekeeper.console")

AuditStatus = Callable[[], Awaitable[dict[str, Any]]]
AUDIT_STATUS: web.AppKey[AuditStatus] = web.AppKey("audit_status")

# Approvals that need a comment (besides any needing two operators): ``approvals.high_risk``,
# enforced by the queue itself (approvals/risk.py); the console only asks for it up front.

ASSET_DIR: Final = Path(__file__).resolve().parent.parent / "console"
_ASSET_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(?:js|css|svg|html|ico|png)$")
_CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".png": "image/png",
}
CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
_SECURITY_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_OUTCOMES: Final = frozenset({"allowed", "denied", "pending", "error"})
_FILTER_MAX: Final = 200
SHELL_INSPECTORS: Final = frozenset({"shell", "shell.command"})
MAX_MARKS_PER_CAPABILITY: Final = 32


# -- static assets -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    content_type: str
    etag: str


_assets: dict[str, _Asset] = {}


def _asset(name: str) -> _Asset:
    """Read once, then served from memory. Only plain names in the console folder exist."""
    cached = _assets.get(name)
    if cached is not None:
        return cached
    path = ASSET_DIR / name
    if not _ASSET_NAME.match(name) or not path.is_file():
        raise NotFound(f"no console asset named {name!r}")
    body = path.read_bytes()
    asset = _Asset(body, _CONTENT_TYPES[path.suffix], '"' + hashlib.sha256(body).hexdigest()[:20] + '"')
    _assets[name] = asset
    return asset


def _serve(request: web.Request, name: str) -> web.Response:
    asset = _asset(name)
    headers = {**_SECURITY_HEADERS, "ETag": asset.etag}
    if name.endswith(".html"):
        headers["Content-Security-Policy"] = CSP
        headers["Cache-Control"] = "no-store"
    else:
        # No build step, so no hashed names: revalidate every time (cheap, 304 by ETag).
        headers["Cache-Control"] = "no-cache"
    if request.headers.get("If-None-Match") == asset.etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})


async def console_index(request: web.Request) -> web.Response:
    return _serve(request, "index.html")


async def console_asset(request: web.Request) -> web.Response:
    return _serve(request, request.match_info["name"])


# -- recent decisions and audit status ----------------------------------------------


def _time_param(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise RequestError(
            f"{name} must be Unix seconds or an ISO 8601 time", code=codes.INVALID_QUERY
        ) from None


def _text_param(request: web.Request, name: str) -> str | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > _FILTER_MAX:
        raise RequestError(f"{name} must be at most {_FILTER_MAX} characters", code=codes.INVALID_QUERY)
    return raw


async def recent_decisions(request: web.Request) -> web.Response:
    await operator(request)
    outcome = _text_param(request, "outcome")
    if outcome is not None and outcome not in _OUTCOMES:
        raise RequestError(f"outcome must be one of {', '.join(sorted(_OUTCOMES))}", code=codes.INVALID_QUERY)
    raw_limit = request.query.get("limit", "100")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
        raise RequestError("limit must be an integer from 1 to 1000", code=codes.INVALID_QUERY)
    since, until = _time_param(request, "since"), _time_param(request, "until")
    recent = request.app.get(RECENT)
    if recent is None:
        return json_response(200, {"decisions": [], "available": False, "capacity": 0})
    found = recent.query(
        outcome=outcome,
        principal=_text_param(request, "principal"),
        tool=_text_param(request, "tool"),
        since=since,
        until=until,
        limit=int(raw_limit),
    )
    # Times in answers are ISO 8601 (the records keep epoch seconds, as the audit trail hashes them).
    shown = [
        {**d, "time": iso8601(d["time"])} if isinstance(d.get("time"), int | float) else d for d in found
    ]
    return json_response(200, {"decisions": shown, "available": True, "capacity": recent.maxlen})


async def audit_status(request: web.Request) -> web.Response:
    await operator(request)
    status = request.app.get(AUDIT_STATUS)
    if status is None:
        return json_response(200, {"status": "unknown", "message": "no audit trail is attached"})
    try:
        body = await status()
    except Exception:
        log.exception("audit_status_failed")
        return json_response(200, {"status": "unknown", "message": "the audit status could not be read"})
    return json_response(200, dict(body))


async def console_config(request: web.Request) -> web.Response:
    """What the console needs to know about this deployment (not secret, but operators only)."""
    await operator(request)
    patterns = request.app[CONFIG].approvals.high_risk
    return json_response(200, {"high_risk": list(patterns), "quorum_is_high_risk": True})


# -- explain -----------------------------------------------------------------------


async def explain_approval(request: web.Request) -> web.Response:
    await operator(request)
    approval = await request.app[APPROVALS].get(request.match_info["id"])
    return json_response(200, explain(request.app[GATE], approval))


def explain(gate: Gate, approval: Approval) -> dict[str, Any]:
    """Re-derive the capabilities (with evidence) from the stored call, now, and say which are
    the ones that held it. Inspectors and the policy are pure, so this costs a parse."""
    principal = Principal(approval.principal, tuple(approval.roles), issuer="", expires_at=0.0)
    note = ""
    capabilities: Sequence[Capability]
    try:
        capabilities = gate.understand(principal, approval.tool, approval.arguments).capabilities
    except GatekeeperError as exc:
        note = f"the call could not be inspected again: {exc.message}"
        capabilities = [Capability(name) for name in approval.capabilities]
    caps = _judge(gate, principal, approval.tool, capabilities)
    if not note and {c["name"] for c in caps} != set(approval.capabilities):
        note = "the tools or inspectors changed since the call was held; this is what they say now"
    shell = _shell_part(gate, approval)
    body: dict[str, Any] = {
        "approval_id": approval.id,
        "tool": approval.tool,
        "capabilities": caps,
        "shell": None,
        "note": note,
    }
    if shell is not None:
        argument, command = shell
        body["shell"] = {"argument": argument, **explain_command(command, caps)}
    return body


def _judge(
    gate: Gate, principal: Principal, tool: str, capabilities: Iterable[Capability]
) -> list[dict[str, Any]]:
    """Each capability as the policy sees it on its own: ``flagged`` when it is why the call is held."""
    engine = gate.policy_set.engine if gate.policy_set is not None else None
    base: Decision | None = None
    if engine is not None:
        try:
            base = engine.decide(principal, tool, [])
        except GatekeeperError:
            base = None
    judged: list[dict[str, Any]] = []
    for cap in capabilities:
        entry: dict[str, Any] = {
            "name": cap.name,
            "evidence": cap.evidence,
            "outcome": "unknown",
            "rule": None,
            "reason": "",
            "flagged": False,
        }
        if engine is not None and base is not None:
            try:
                alone = engine.decide(principal, tool, [cap])
            except GatekeeperError:
                alone = None
            if alone is not None:
                entry.update(outcome=str(alone.outcome), rule=alone.rule, reason=alone.reason)
                if alone.outcome == Outcome.DENY:
                    entry["flagged"] = alone.capability == cap.name
                elif alone.outcome == Outcome.ESCALATE:
                    entry["flagged"] = alone.capability == cap.name or bool(
                        set(alone.matched) - set(base.matched)
                    )
        judged.append(entry)
    return judged


def _shell_part(gate: Gate, approval: Approval) -> tuple[str, str] | None:
    """(argument name, command line) when a shell inspector reads this tool's arguments."""
    if gate.policy_set is None:
        return None
    manifest = gate.policy_set.manifests.get(approval.tool)
    if manifest is None:
        return None
    for argument, inspector in manifest.inspect:
        if inspector not in SHELL_INSPECTORS:
            continue
        name = "cmd" if argument == WHOLE_ARGUMENTS else argument
        value = approval.arguments.get(name)
        if isinstance(value, str):
            return name, value
    return None


# -- the command line, parsed and marked ---------------------------------------------------


@dataclass(slots=True)
class _Token:
    text: str
    start: int
    end: int
    kind: str  # "word" | "assignment" | "redirect"
    value: str  # the word after quote removal (what the program sees)


@dataclass(slots=True)
class _Command:
    start: int
    end: int
    tokens: list[_Token]
    nested: bool


_BOUNDARY: Final = frozenset(" \t\n;|&()<>'\"`$={}")


def _split(command: str) -> tuple[list[_Command], list[tuple[int, int, str]], bool]:
    """Commands (with their tokens) and the operators between them; falls back to whitespace."""
    commands: list[_Command] = []
    operators: list[tuple[int, int, str]] = []
    try:
        trees: list[Any] = bashlex.parse(command)
    except Exception:  # bashlex raises ParsingError, NotImplementedError, RecursionError...
        tokens = [
            _Token(m.group(), m.start(), m.end(), "word", m.group()) for m in re.finditer(r"\S+", command)
        ]
        if tokens:
            commands.append(_Command(tokens[0].start, tokens[-1].end, tokens, False))
        return commands, operators, False

    def visit(node: Any, nested: bool, depth: int) -> None:
        if depth > 64:
            return
        kind = getattr(node, "kind", "")
        if kind == "command":
            tokens: list[_Token] = []
            for part in node.parts:
                start, end = part.pos
                if part.kind in ("word", "assignment"):
                    tokens.append(_Token(command[start:end], start, end, part.kind, part.word))
                elif part.kind == "redirect":
                    target = getattr(part, "output", None)
                    value = getattr(target, "word", "") if target is not None else ""
                    tokens.append(_Token(command[start:end], start, end, "redirect", value))
            if tokens:
                commands.append(_Command(node.pos[0], node.pos[1], tokens, nested))
        elif kind in ("operator", "pipe", "reservedword"):
            start, end = node.pos
            operators.append((start, end, command[start:end]))
        if kind in ("commandsubstitution", "processsubstitution"):
            visit(node.command, True, depth + 1)
            return
        for attr in ("parts", "list"):
            for child in getattr(node, attr, None) or ():
                visit(child, nested, depth + 1)
        for attr in ("command", "output"):
            child = getattr(node, attr, None)
            if child is not None and hasattr(child, "kind") and kind not in ("command",):
                visit(child, nested, depth + 1)

    for tree in trees:
        visit(tree, False, 0)
    commands.sort(key=lambda c: (c.start, c.nested))
    operators.sort()
    return commands, operators, True


def _occurrences(command: str, needle: str) -> list[tuple[int, int]]:
    """Where ``needle`` occurs in ``command`` as a whole (not inside a longer word)."""
    found: list[tuple[int, int]] = []
    if not needle.strip():
        return found
    start = command.find(needle)
    while start != -1 and len(found) < MAX_MARKS_PER_CAPABILITY:
        end = start + len(needle)
        before_ok = start == 0 or command[start - 1] in _BOUNDARY or needle[0] in _BOUNDARY
        after_ok = end == len(command) or command[end] in _BOUNDARY or needle[-1] in _BOUNDARY
        if before_ok and after_ok:
            found.append((start, end))
        start = command.find(needle, start + 1)
    return found


def _program(cmd: _Command) -> str:
    return next((t.value for t in cmd.tokens if t.kind == "word"), "")


def _locate(command: str, commands: Sequence[_Command], evidence: str) -> list[tuple[int, int]]:
    """The spans of the command line an evidence string points at (empty if none does)."""
    candidates = [evidence.strip()]
    if ": " in evidence:  # "program name not known statically: $S$H"
        candidates.append(evidence.split(": ", 1)[1].strip())
    if evidence.endswith(")") and " (" in evidence:  # "python3: <code> (import ctypes)": what in it
        candidates.append(evidence[evidence.rindex(" (") + 2 : -1].strip())
    for needle in candidates:
        if not needle:
            continue
        spans = _occurrences(command, needle)
        if spans:
            return spans
        # Evidence is often the words after quote removal ("python -c import os"): compare words.
        for cmd in commands:
            joined = " ".join(t.value for t in cmd.tokens)
            if joined and (joined == needle or joined in needle):
                spans.append((cmd.start, cmd.end))
            elif joined and needle in joined:
                spans.extend((t.start, t.end) for t in cmd.tokens if t.value and t.value in needle)
            elif _program(cmd) and needle.split(" ", 1)[0] == _program(cmd):
                # "python import os; ...": the program, then some of its words (flags left out).
                spans.extend(
                    (t.start, t.end)
                    for t in cmd.tokens
                    if t.value and not t.value.startswith("-") and _occurrences(needle, t.value)
                )
        if spans:
            return spans[:MAX_MARKS_PER_CAPABILITY]
    return []


def explain_command(command: str, capabilities: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The command line split into commands and tokens, with the flagged capabilities' spans marked.

    ``marks`` are non-overlapping ``{start, end, capabilities}`` character ranges of ``command``
    (Python string indices = Unicode code points); every token overlapping a mark is ``marked``.
    """
    commands, operators, parsed = _split(command)
    spans: list[tuple[int, int, str]] = []
    unlocated: list[str] = []
    for cap in capabilities:
        if not cap.get("flagged"):
            continue
        found = _locate(command, commands, str(cap.get("evidence") or ""))
        if not found:
            unlocated.append(str(cap["name"]))
        spans.extend((s, e, str(cap["name"])) for s, e in found)
    marks = _merge(spans)

    def caps_over(start: int, end: int) -> list[str]:
        names: list[str] = []
        for mark in marks:
            if mark["start"] < end and start < mark["end"]:
                names.extend(n for n in mark["capabilities"] if n not in names)
        return names

    shown = []
    for cmd in commands:
        tokens = []
        for t in cmd.tokens:
            over = caps_over(t.start, t.end)
            tokens.append(
                {
                    "text": t.text,
                    "value": t.value,
                    "kind": t.kind,
                    "start": t.start,
                    "end": t.end,
                    "marked": bool(over),
                    "capabilities": over,
                }
            )
        program = _program(cmd)
        shown.append(
            {
                "text": command[cmd.start : cmd.end],
                "start": cmd.start,
                "end": cmd.end,
                "program": program,
                "nested": cmd.nested,
                "marked": any(t["marked"] for t in tokens),
                "tokens": tokens,
            }
        )
    return {
        "command": command,
        "parsed": parsed,
        "commands": shown,
        "operators": [{"start": s, "end": e, "text": t} for s, e, t in operators],
        "marks": marks,
        "unlocated": unlocated,
    }


def _merge(spans: Iterable[tuple[int, int, str]]) -> list[dict[str, Any]]:
    """Overlapping spans become one mark carrying every capability that pointed there."""
    merged: list[dict[str, Any]] = []
    for start, end, name in sorted(spans):
        if merged and start < merged[-1]["end"]:
            last = merged[-1]
            last["end"] = max(last["end"], end)
            if name not in last["capabilities"]:
                last["capabilities"].append(name)
        else:
            merged.append({"start": start, "end": end, "capabilities": [name]})
    return merged


def add_console_routes(app: web.Application) -> None:
    app.router.add_get("/", console_index)
    app.router.add_get("/console/approvals/{id}", console_index)  # one approval's link: the console
    app.router.add_get("/console/{name}", console_asset)
    app.router.add_get("/v1/decisions", recent_decisions)
    app.router.add_get("/v1/audit/status", audit_status)
    app.router.add_get("/v1/console/config", console_config)
    app.router.add_get("/v1/approvals/{id}/explain", explain_approval)
