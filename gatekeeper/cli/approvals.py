"""``gatekeeper approvals list|show|approve|deny|watch``: work the approval queue from a terminal.

Talks to the operator listener through the blocking ``OperatorClient``. Its address: ``--url``,
else ``$GATEKEEPER_OPERATOR_URL``, else ``listeners.operator`` of ``--config FILE``, else
http://127.0.0.1:8081 (named in any connection error, with how to change it). ``--token``
(default ``$GATEKEEPER_OPERATOR_TOKEN``; prefer the variable: a command-line token is visible to
other local users in the process list). These options may be given before or after the verb.

``watch`` reconnects when the stream is lost (backoff from 0.5 s up to 30 s, said on stderr) until
Ctrl-C, or until ``--max-retries`` attempts in a row have failed.

Exit codes: 0 done, 1 refused or failed (``gatekeeper: <code>: <message>`` on stderr),
2 usage (e.g. no token), 3 authentication or authorization (401/403), 4 no such approval.

Everything an agent controls (principal, tool, arguments, reasons) is shown with control and
invisible formatting characters escaped, so a request cannot rewrite or hide part of what the
operator sees on the terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gatekeeper_client import (
    ApprovalView,
    AuthenticationFailed,
    Forbidden,
    GatekeeperError,
    GatekeeperUnreachable,
    NotFound,
    OperatorClient,
    QueueEvent,
    Unavailable,
)

from ..config import load_config
from ..errors import ConfigError

DEFAULT_URL = "http://127.0.0.1:8081"
URL_ENV = "GATEKEEPER_OPERATOR_URL"
TOKEN_ENV = "GATEKEEPER_OPERATOR_TOKEN"  # noqa: S105 - the name of a variable, not a secret

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4


def register(sub: Any) -> None:
    p = sub.add_parser("approvals", help="work the approval queue (operator API)")
    _connection_options(p, None)
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    ls = verbs.add_parser("list", help="list approvals (pending by default)")
    ls.add_argument("--state", default="pending", help="pending|approved|denied|expired|consumed|all")
    ls.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    ls.add_argument("--json", action="store_true", help="print the API's JSON")
    ls.set_defaults(run=run_list)

    show = verbs.add_parser("show", help="one approval in full: arguments, capabilities, votes")
    show.add_argument("id")
    show.add_argument("--json", action="store_true", help="print the API's JSON")
    show.set_defaults(run=run_show)

    approve = verbs.add_parser("approve", help="vote to approve (a quorum may need more votes)")
    approve.add_argument("id")
    approve.add_argument("--comment", default="", help="why (kept in the audit trail)")
    approve.add_argument(
        "--grant-minutes",
        type=float,
        default=None,
        metavar="M",
        help="also allow this same call by this principal for the next M minutes",
    )
    approve.add_argument("--json", action="store_true", help="print the API's JSON")
    approve.set_defaults(run=run_approve)

    deny = verbs.add_parser("deny", help="deny (one deny vote is final)")
    deny.add_argument("id")
    deny.add_argument("--comment", default="", help="why (shown to nobody but operators and the audit)")
    deny.add_argument("--json", action="store_true", help="print the API's JSON")
    deny.set_defaults(run=run_deny)

    watch = verbs.add_parser("watch", help="print one line per queue event until Ctrl-C; reconnects")
    watch.add_argument("--json", action="store_true", help="print each event's JSON on one line")
    watch.add_argument(
        "--max-retries",
        type=int,
        default=None,
        metavar="N",
        help="give up after N reconnection attempts in a row fail (default: never)",
    )
    watch.add_argument("--backoff", type=float, default=0.5, help=argparse.SUPPRESS)
    watch.set_defaults(run=run_watch)

    for verb in (ls, show, approve, deny, watch):
        # Also accepted after the verb; SUPPRESS keeps a value given before the verb.
        _connection_options(verb, argparse.SUPPRESS)


def _connection_options(p: argparse.ArgumentParser, default: Any) -> None:
    p.add_argument(
        "--url", default=default, help=f"operator API base URL (default ${URL_ENV} or {DEFAULT_URL})"
    )
    p.add_argument("--token", default=default, help=f"operator token (default ${TOKEN_ENV})")
    p.add_argument(
        "--config",
        type=Path,
        default=default,
        help="gatekeeper.yaml: talk to its operator listener (when neither --url nor the variable is set)",
    )


# -- verbs ----------------------------------------------------------------------------------------


def run_list(args: argparse.Namespace) -> int:
    state = None if args.state == "all" else args.state

    def act(client: OperatorClient) -> int:
        approvals, total = client.list_approvals_page(state=state, limit=args.limit)
        if args.json:
            _print_json({"approvals": [a.raw for a in approvals], "total": total})
            return 0
        if not approvals:
            print(f"no {args.state} approvals" if state else "no approvals")
            return 0
        print(format_table(approvals, now=time.time(), show_state=state != "pending"))
        if total > len(approvals):
            print(f"({len(approvals)} of {total} shown; use --limit)")
        return 0

    return _with_client(args, act)


def run_show(args: argparse.Namespace) -> int:
    def act(client: OperatorClient) -> int:
        approval = client.get(args.id)
        if args.json:
            _print_json(approval.raw)
        else:
            print(format_approval(approval, now=time.time()))
        return 0

    return _with_client(args, act)


def run_approve(args: argparse.Namespace) -> int:
    if args.grant_minutes is not None and not args.grant_minutes > 0:
        return _fail("usage", "--grant-minutes must be a positive number", EXIT_USAGE)

    def act(client: OperatorClient) -> int:
        approval = client.approve(args.id, comment=args.comment, grant_minutes=args.grant_minutes)
        if args.json:
            _print_json(approval.raw)
        elif approval.state == "pending":
            print(
                f"vote recorded on {safe(approval.id)}: {approval.approvals}/{approval.required_approvals} "
                "approvals; still pending until the quorum is reached"
            )
        else:
            grant = f"; grant for {args.grant_minutes:g} min" if args.grant_minutes else ""
            print(f"{safe(approval.state)} {safe(approval.id)}{grant}")
        return 0

    return _with_client(args, act)


def run_deny(args: argparse.Namespace) -> int:
    def act(client: OperatorClient) -> int:
        approval = client.deny(args.id, comment=args.comment)
        if args.json:
            _print_json(approval.raw)
        else:
            print(f"{safe(approval.state)} {safe(approval.id)}")
        return 0

    return _with_client(args, act)


MAX_BACKOFF = 30.0


def run_watch(args: argparse.Namespace) -> int:
    def act(client: OperatorClient) -> int:
        delay, failures = args.backoff, 0
        while True:
            started, seen = time.monotonic(), 0
            try:
                if failures:  # a reconnection: the queue may have moved while we were away
                    _, pending = client.list_approvals_page(state="pending", limit=1)
                    print(f"gatekeeper: reconnected ({pending} pending)", file=sys.stderr, flush=True)
                events = client.events()
                try:
                    for event in events:
                        seen += 1
                        if args.json:
                            print(json.dumps(event.raw, ensure_ascii=True, sort_keys=True), flush=True)
                        else:
                            print(format_event(event), flush=True)
                finally:
                    events.close()
                lost = ("stream_closed", "the operator API closed the event stream")
            except KeyboardInterrupt:
                return 0
            except (GatekeeperUnreachable, Unavailable) as exc:
                lost = (exc.code, exc.message)
            if seen or time.monotonic() - started > MAX_BACKOFF:  # it was up: start the backoff over
                delay, failures = args.backoff, 0
            failures += 1
            if args.max_retries is not None and failures > args.max_retries:
                return _fail(*lost, EXIT_ERROR)
            print(
                f"gatekeeper: {safe(lost[0])}: {safe(lost[1])}; reconnecting in {delay:g}s",
                file=sys.stderr,
                flush=True,
            )
            try:
                time.sleep(delay)
            except KeyboardInterrupt:
                return 0
            delay = min(delay * 2, MAX_BACKOFF)

    return _with_client(args, act)


# -- plumbing -------------------------------------------------------------------------------------


def operator_url(args: argparse.Namespace) -> tuple[str, str]:
    """The operator API's base URL, and where it came from (said when it cannot be reached)."""
    if getattr(args, "url", None):
        return args.url, "--url"
    if os.environ.get(URL_ENV):
        return os.environ[URL_ENV], f"${URL_ENV}"
    config_path = getattr(args, "config", None)
    if config_path is not None:
        listener = load_config(config_path, offline=True).operator_listener
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(listener.host, listener.host)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{listener.port}", f"listeners.operator in {config_path}"
    return DEFAULT_URL, f"the default; name yours with --url, ${URL_ENV} or --config"


def _with_client(args: argparse.Namespace, act: Callable[[OperatorClient], int]) -> int:
    try:
        url, origin = operator_url(args)
    except ConfigError as exc:
        return _fail("configuration_error", exc.message, EXIT_USAGE)
    token = getattr(args, "token", None) or os.environ.get(TOKEN_ENV)
    if not token:
        return _fail(
            "missing_token",
            f"an operator token is required: set ${TOKEN_ENV} or pass --token "
            "(gatekeeper token issue --operator ...)",
            EXIT_USAGE,
        )
    try:
        client = OperatorClient(url, token)
    except ValueError as exc:
        return _fail("usage", str(exc), EXIT_USAGE)
    try:
        return act(client)
    except (AuthenticationFailed, Forbidden) as exc:
        return _fail(exc.code, exc.message, EXIT_AUTH)
    except NotFound as exc:
        return _fail(exc.code, exc.message, EXIT_NOT_FOUND)
    except GatekeeperUnreachable as exc:
        return _fail(exc.code, f"{exc.message} ({url}: {origin})", EXIT_ERROR)
    except GatekeeperError as exc:
        return _fail(exc.code, exc.message, EXIT_ERROR)
    except ValueError as exc:
        return _fail("usage", str(exc), EXIT_USAGE)
    finally:
        client.close()


def _fail(code: str, message: str, exit_code: int) -> int:
    print(f"gatekeeper: {safe(code)}: {safe(message)}", file=sys.stderr)
    return exit_code


def _print_json(value: Any) -> None:
    # ensure_ascii: machine output that is also safe to land on a terminal.
    print(json.dumps(value, indent=2, ensure_ascii=True, sort_keys=True))


# -- formatting -----------------------------------------------------------------------------------

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def safe(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with control, bidi-override, zero-width and other invisible characters escaped
    (``\\x1b`` → ``\\u001b``), so it cannot move the cursor, recolour or reorder the terminal."""
    out: list[str] = []
    for ch in text:
        if ch == "\n" and keep_newlines:
            out.append(ch)
        elif unicodedata.category(ch) in _UNSAFE_CATEGORIES:
            code = ord(ch)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def format_duration(seconds: float) -> str:
    s = int(abs(seconds))
    if s < 60:
        text = f"{s}s"
    elif s < 3600:
        text = f"{s // 60}m{s % 60:02d}s"
    elif s < 86400:
        text = f"{s // 3600}h{s % 3600 // 60:02d}m"
    else:
        text = f"{s // 86400}d{s % 86400 // 3600:02d}h"
    return f"-{text}" if seconds < 0 else text


def escalated_by(approval: ApprovalView) -> str:
    """What held the call: the capability whose rule held it, that rule, and the rule that asks for
    more than one operator. Without a capability (a budget held it, or the approval predates the
    field) only the rule is named: guessing one could name a capability the rule is not about."""
    capability = approval.raw.get("capability")
    parts = [p for p in (capability if isinstance(capability, str) else None, approval.rule) if p]
    held = " / ".join(parts) or "-"
    return (
        f"{held}, {approval.required_approvals} operators: {quorum}"
        if (quorum := _quorum_rule(approval))
        else held
    )


def _quorum_rule(approval: ApprovalView) -> str | None:
    rule = approval.raw.get("quorum_rule")
    return rule if isinstance(rule, str) and rule and approval.required_approvals > 1 else None


def expires_in(approval: ApprovalView, now: float) -> str:
    if approval.state != "pending":
        return "-"
    left = approval.expires_at - now
    return format_duration(left) if left > 0 else "expired"


def format_table(approvals: Sequence[ApprovalView], *, now: float, show_state: bool = False) -> str:
    headers = ["ID", "AGE", "PRINCIPAL", "TOOL", "ESCALATED BY / RULE", "VOTES", "EXPIRES IN"]
    if show_state:
        headers.insert(1, "STATE")
    rows = []
    for a in approvals:
        row = [
            safe(a.id),
            format_duration(now - a.created_at),
            safe(a.principal),
            safe(a.tool),
            safe(escalated_by(a)),
            f"{a.approvals}/{a.required_approvals}",
            expires_in(a, now),
        ]
        if show_state:
            row.insert(1, safe(a.state))
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [headers, *rows]
    ]
    return "\n".join(lines)


def _when(ts: float | None, now: float) -> str:
    if ts is None:
        return "-"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
    delta = now - ts
    rel = f"{format_duration(delta)} ago" if delta >= 0 else f"in {format_duration(-delta)}"
    return f"{stamp} ({rel})"


def format_approval(a: ApprovalView, *, now: float) -> str:
    """The whole approval, arguments in full (pretty JSON, never truncated), then the votes."""
    label = 12
    fields: list[tuple[str, str]] = [
        ("id", safe(a.id)),
        ("state", safe(a.state)),
        ("principal", safe(a.principal)),
        ("roles", safe(", ".join(a.roles)) or "-"),
        ("tool", safe(a.tool)),
        ("held by", safe(escalated_by(a))),
        ("rule", safe(a.rule) if a.rule else "-"),
        ("reason", safe(a.reason) or "-"),
        ("capabilities", safe(", ".join(a.capabilities)) or "-"),
        (
            "approvals",
            f"{a.approvals} of {a.required_approvals} required"
            + (f" (two-person rule: {safe(q)})" if (q := _quorum_rule(a)) else ""),
        ),
        ("created", _when(a.created_at, now)),
        ("expires", _when(a.expires_at, now)),
    ]
    if a.decided_at is not None:
        fields.append(("decided", _when(a.decided_at, now)))
    if a.consumed_at is not None:
        fields.append(("consumed", _when(a.consumed_at, now)))
    fields.append(("digest", safe(a.digest)))
    out = [f"{name + ':':<{label}} {value}" for name, value in fields]
    out.append("arguments:")
    pretty = json.dumps(a.arguments, indent=2, ensure_ascii=False, sort_keys=True)
    # JSON already escapes C0 controls; safe() catches DEL, C1, bidi and zero-width characters.
    out.extend("  " + safe(line) for line in pretty.splitlines())
    out.append("votes:" if a.votes else "votes:       none yet")
    for v in a.votes:
        comment = f": {safe(v.comment)}" if v.comment else ""
        out.append(f"  {_when(v.at, now)}  {safe(v.verdict):<7} by {safe(v.operator)}{comment}")
    return "\n".join(out)


def format_event(event: QueueEvent) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(event.at)) if event.at else "--:--:--"
    parts = [stamp, f"{safe(event.kind):<9}"]
    a = event.approval
    if a is not None:
        parts += [
            safe(a.id),
            f"state={safe(a.state)}",
            f"votes={a.approvals}/{a.required_approvals}",
            f"principal={safe(a.principal)}",
            f"tool={safe(a.tool)}",
            f"by={safe(escalated_by(a))}",
        ]
    g = event.grant
    if g is not None:
        parts += [f"grant={safe(g.id)}", f"principal={safe(g.principal)}", f"tool={safe(g.tool)}"]
        if g.revoked_at is not None:
            parts.append(f"revoked_by={safe(g.revoked_by or '-')}")
        else:
            parts.append(f"until={time.strftime('%H:%M:%S', time.localtime(g.expires_at))}")
    return " ".join(parts)
