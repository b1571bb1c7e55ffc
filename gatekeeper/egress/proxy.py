"""The egress gate's listener: an HTTP forward proxy that connects only what the policy allows.

It speaks ``CONNECT host:port`` and absolute-form ``http://`` requests, on TCP
(``listeners.egress``) and on each sandbox's own listener: ``127.0.0.1:3128`` in the sandbox's
network namespace, made before the sandbox and handed to the gate (``runner/sandbox_netns.py``),
served for that one call or server. Every connection:

1. must carry a live per-call credential (``Proxy-Authorization``), else ``407``; on a sandbox's
   listener, that sandbox's own;
2. is decided as ``net.egress:HOST:PORT`` (and what the literal and the resolved address say)
   with the principal and tool of the call that minted the credential (a sandboxed stdio
   server's: ``upstream:NAME``, on the capabilities alone); ``escalate`` holds it on the approval
   queue for ``egress.hold_seconds``;
3. goes to exactly the address that was checked: names are resolved here, once, never by the
   sandbox, and ``egress.pin`` fixes a name's address;
4. is one audit record (entry ``egress``) tied to its call by ``extra.parent_decision_id`` (for a
   stdio server, the one call in flight on it, if exactly one is), with the bytes each way and
   how it ended.

A plain-HTTP request is forwarded alone (``Connection: close``, the body by ``Content-Length``,
``Host`` the decided host's), so a second request on the same connection can neither reach another
host nor carry the credential to the target. A tunnel's opening must be for its own host (a TLS
ClientHello's name; plain HTTP goes absolute-form): ``tunnel.py``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hmac
import json
import math
import os
import select
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import structlog

from gatekeeper import codes

from ..escalation import EscalationHandler, Pending
from ..gate import Gate
from ..models import Decision, Outcome, ToolCall
from ..pipeline import FAILURE_CODES, new_decision_id
from ..runner.settings import EgressSettings
from ..tasks import BackgroundTasks
from .credentials import EgressCredentials, EgressGrant
from .decide import BadTarget, Target, address_capabilities, connection_call, parse_authority, read_target
from .relay import Traffic, relay
from .tunnel import Opening, TunnelRefused, read_opening

log = structlog.get_logger("gatekeeper.egress")

MAX_HEAD: Final = 16 * 1024
_HOP_BY_HOP: Final = frozenset(
    {"proxy-authorization", "proxy-connection", "connection", "keep-alive", "te", "trailer", "upgrade"}
)


class Refusal(Exception):
    """Answer the client with ``status`` and stop; nothing was connected."""

    def __init__(self, status: int, code: str, reason: str, extra_headers: str = "") -> None:
        super().__init__(reason)
        self.status, self.code, self.reason, self.extra_headers = status, code, reason, extra_headers


@dataclass(slots=True)
class Connection:
    """One proxied connection's facts, for its audit record."""

    decision_id: str = field(default_factory=new_decision_id)
    started: float = field(default_factory=time.perf_counter)
    grant: EgressGrant | None = None
    parent: str | None = None  # the decision id of the call this connection is recorded under
    target: Target | None = None
    address: str | None = None
    decision: Decision | None = None
    capabilities: tuple[str, ...] = ()
    digest: str | None = None
    arguments: Any = None
    approval_id: str | None = None
    outcome: str = "error"  # "allowed" once relaying, "denied" when refused, else "error"
    code: str = codes.INTERNAL_ERROR
    reason: str | None = None
    traffic: Traffic | None = None
    enforced: bool = True


@dataclass(slots=True)
class Request:
    method: str
    target: str
    headers: list[tuple[str, str]]
    rest: bytes  # bytes after the head (a TLS hello, a body) that arrived with it

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name]


class EgressGate:
    def __init__(
        self,
        settings: EgressSettings,
        gate: Gate,
        credentials: EgressCredentials,
        escalation: EscalationHandler,
        sink: Callable[[dict[str, Any]], None] | None,
        *,
        mode: str = "enforce",
    ) -> None:
        self.settings = settings
        self.gate = gate
        self.credentials = credentials
        self.escalation = escalation
        self.sink = sink
        self.mode = mode
        self.resolver: Resolver = system_resolver  # replaceable: tests here have no DNS to ask
        self._listeners: list[socket.socket] = []
        self._tasks = BackgroundTasks()
        self.url = ""

    # --- listeners ------------------------------------------------------------------------
    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        """Listen on ``host:port``; ``reuse_port`` beside other workers on the same port."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise OSError(exc.errno, f"egress listener {host}:{port}: {exc.strerror}") from None
        self._listen(sock)
        bound = sock.getsockname()[1]
        self.url = f"http://{f'[{host}]' if family == socket.AF_INET6 else host}:{bound}"

    def serve_sandbox(
        self, listener: socket.socket, credential: str, *, refusals: int | None = None
    ) -> SandboxListener:
        """Serve a sandbox's listener (in its network namespace) for as long as that sandbox
        runs: only ``credential`` opens a connection there. ``close`` when the sandbox ends (a
        socket keeps its network namespace alive). ``refusals``: how many refused connections
        before the gate stops listening there (a call's sandbox; None: never, for a long-lived
        server, whose refusals add up over days)."""
        listener.setblocking(False)
        self.credentials.bind_to_sandbox(credential)
        budget = _SandboxBudget(
            asyncio.Semaphore(self.settings.sandbox_connections),
            math.inf if refusals is None else refusals,
        )
        task = self._tasks.spawn(
            self._accept_loop(listener, credential, budget), name="egress-sandbox-accept"
        )
        return SandboxListener(listener, task)

    def _listen(self, sock: socket.socket) -> None:
        sock.listen(256)
        sock.setblocking(False)
        self._listeners.append(sock)
        self._tasks.spawn(self._accept_loop(sock), name="egress-accept")

    async def stop(self) -> None:
        for sock in self._listeners:
            sock.close()
        self._listeners.clear()
        await self._tasks.cancel_all()

    async def _accept_loop(
        self, listener: socket.socket, only: str | None = None, budget: _SandboxBudget | None = None
    ) -> None:
        """Accept and serve. With a ``budget`` (a sandbox's listener): only so many connections
        at once (the next is not accepted until one ends: it waits in the sandbox's backlog), and
        once so many were refused, the listener is closed for the rest of the call (every refusal
        is an audit record: a loop of them would bury the trail and fill its disk)."""
        loop = asyncio.get_running_loop()
        while True:
            if budget is not None:
                if budget.refusals_left <= 0:
                    self._close_spent(listener, only)
                    return
                await budget.slots.acquire()
            try:
                client, _ = await loop.sock_accept(listener)
            except OSError:
                if budget is not None:
                    budget.slots.release()
                if listener.fileno() == -1:
                    return
                await asyncio.sleep(0.05)  # out of descriptors, say: do not spin
                continue
            except BaseException:
                if budget is not None:
                    budget.slots.release()
                raise
            if budget is not None and budget.refusals_left <= 0:
                client.close()
                budget.slots.release()
                continue  # the check above closes the listener
            client.setblocking(False)
            self._tasks.spawn(self._serve(client, only, budget), name="egress-connection")

    def _close_spent(self, listener: socket.socket, credential: str | None) -> None:
        """Stop listening in a sandbox whose refusals are spent, and say so once in the trail."""
        listener.close()
        conn = Connection()
        conn.grant = self.credentials.check(credential) if credential else None
        conn.parent = conn.grant.parent() if conn.grant else None
        conn.outcome, conn.code = "denied", codes.EGRESS_REFUSALS_SPENT
        conn.reason = (
            f"{self.settings.sandbox_refusals} connections of this sandbox were refused "
            "(egress.sandbox_refusals): the gate no longer listens there"
        )
        self._record(conn)

    # --- one connection -------------------------------------------------------------------
    async def _serve(
        self, client: socket.socket, only: str | None = None, budget: _SandboxBudget | None = None
    ) -> None:
        conn = Connection()
        target_sock: socket.socket | None = None
        try:
            try:
                async with asyncio.timeout(self.settings.head_timeout_seconds):
                    request = await _read_head(client)
                target_sock, first = await self._admit(conn, request, only)
            except Refusal as refusal:
                # 4xx: refused by the gate; 5xx (resolve or connect failed): allowed, but not reached
                conn.outcome = "denied" if refusal.status < 500 else "error"
                conn.code, conn.reason = refusal.code, refusal.reason
                await _answer(client, refusal)
                return
            except TimeoutError:
                conn.outcome, conn.code = "denied", codes.HEAD_TIMEOUT
                conn.reason = "the proxy request did not arrive in time"
                return
            conn.outcome = "allowed"
            if request.method == "CONNECT":
                await _sendall(client, b"HTTP/1.1 200 Connection established\r\n\r\n")
                opening = await self._opening(conn, client, target_sock, request.rest)
                if opening is None:
                    return
                if opening.http:
                    conn.traffic = await self._tunnel_request(conn, client, target_sock, opening.data)
                    return
                await _sendall(target_sock, opening.data)
                conn.traffic = await relay(
                    client,
                    target_sock,
                    self.settings.idle_timeout_seconds,
                    traffic=Traffic(up=len(opening.data)),
                )
            else:
                await _sendall(target_sock, first)
                conn.traffic = await self._forward_one(client, target_sock, request, len(first))
        except (ConnectionError, OSError, TimeoutError) as exc:  # a side went away mid-relay
            conn.reason = f"{conn.reason or conn.code}; the connection ended: {type(exc).__name__}"
            if conn.traffic is None:
                conn.traffic = Traffic(ended=f"error:{type(exc).__name__}")
        except asyncio.CancelledError:
            conn.reason = f"{conn.reason or conn.code}; Gatekeeper stopped"
            raise
        except Exception:  # a bug: nothing more is relayed, and it stays in the log
            log.exception("egress_failed", decision_id=conn.decision_id)
            conn.outcome, conn.code = "error", codes.INTERNAL_ERROR
            conn.reason = "internal error; the connection was refused"
        finally:
            for sock in (target_sock, client):
                if sock is not None:
                    sock.close()
            self._record(conn)
            if budget is not None:
                budget.ended(conn)

    async def _admit(
        self, conn: Connection, request: Request, only: str | None = None
    ) -> tuple[socket.socket, bytes]:
        """Authenticate, decide and connect; the first bytes to send to the target.

        The name is decided before it is resolved: a name the policy refuses is never looked up
        (a DNS query is itself a way out: ``<secret>.attacker.example``). The address it
        resolves to is then decided again, and a deny there wins over any approval of the name.
        """
        conn.grant = grant = self._authenticate(request, only)
        token = self._token(request)
        conn.parent = grant.parent()
        host, port = _target_of(request)
        try:
            target, capabilities = read_target(host, port)
        except BadTarget as exc:
            raise Refusal(400, codes.BAD_TARGET, str(exc)) from None
        conn.target = target
        call = connection_call(grant, target, capabilities, conn.parent)
        self._note(conn, call)
        # A stdio server's own connection is no tool call: its capabilities alone are decided.
        decide = functools.partial(self.gate.decide, tool_object=not grant.service)
        decision = await self._hold_if_escalated(conn, call, decide(call))
        self._enforce(conn, target, decision)
        address, port_to = await self._resolve(target)
        conn.address = f"[{address}]:{port_to}" if ":" in address else f"{address}:{port_to}"
        if target.authority not in self.settings.pin:  # a pin is the operator's word
            try:
                seen = address_capabilities(address, f"{target.host} resolved to {conn.address}")
            except BadTarget as exc:
                raise Refusal(502, codes.RESOLVE_FAILED, f"{target.host}: {exc}") from None
            if seen:
                call = connection_call(grant, target, (*capabilities, *seen), conn.parent)
                self._note(conn, call)
                again = decide(call)
                if again.outcome is not Outcome.ALLOW:  # an approval covered the name, not this
                    self._enforce(conn, target, again)
        if self.credentials.check(token) is None:  # the call ended while this one was held
            raise Refusal(
                407, codes.INVALID_CREDENTIAL, "the call that opened this connection ended while it waited"
            )
        sock = await self._connect(address, port_to)
        first = b"" if request.method == "CONNECT" else _origin_request(request, target)
        return sock, first

    async def _opening(
        self, conn: Connection, client: socket.socket, target: socket.socket, first: bytes
    ) -> Opening | None:
        """The tunnel's opening once read and found to be for its own host (tunnel.py), or None:
        refused (recorded on ``conn``; the tunnel is closed)."""
        assert conn.target is not None  # _admit set it
        try:
            return await read_opening(
                client,
                target,
                conn.target.host,
                first,
                self.settings.idle_timeout_seconds,
                self.settings.head_timeout_seconds,
            )
        except TunnelRefused as refused:
            conn.outcome, conn.code = "denied", codes.TUNNEL_REFUSED
            conn.reason = f"{conn.target.authority}: {refused.reason}"
            return None

    async def _tunnel_request(
        self, conn: Connection, client: socket.socket, target: socket.socket, start: bytes
    ) -> Traffic | None:
        """Plain HTTP in a tunnel, read as an absolute-form request is: one request for the
        tunnel's own host (its ``Host`` set to it), then only the answer. None: refused, with an
        answer in the tunnel."""
        assert conn.target is not None  # _admit set it
        try:
            async with asyncio.timeout(self.settings.head_timeout_seconds):
                inner = await _read_head(client, start)
            _check_tunnel_request(inner, conn.target)
        except (Refusal, TimeoutError) as exc:
            refusal = (
                exc
                if isinstance(exc, Refusal)
                else Refusal(408, codes.HEAD_TIMEOUT, "the request in the tunnel did not arrive in time")
            )
            conn.outcome, conn.code = "denied", refusal.code
            conn.reason = f"{conn.target.authority}: {refusal.reason}"
            await _answer(client, refusal)
            return None
        head = _origin_request(inner, conn.target)
        await _sendall(target, head)
        return await self._forward_one(client, target, inner, len(head))

    @staticmethod
    def _note(conn: Connection, call: ToolCall) -> None:
        conn.capabilities = tuple(c.name for c in call.capabilities)
        conn.digest, conn.arguments = call.digest, call.arguments

    async def _hold_if_escalated(self, conn: Connection, call: ToolCall, decision: Decision) -> Decision:
        """An escalated connection waits on the approval queue (not in monitor mode, as for calls)."""
        if decision.outcome is not Outcome.ESCALATE or self.mode == "monitor":
            return decision
        held = await self.escalation.hold(call, decision, wait_seconds=self.settings.hold_seconds)
        conn.approval_id = held.approval_id
        if not isinstance(held, Pending):
            return held
        return Decision(
            Outcome.DENY,
            codes.APPROVAL_TIMEOUT,
            f"{decision.reason}; no operator approved it within {self.settings.hold_seconds:g} s "
            f"(approval {held.approval_id})",
            decision.rule,
            capability=decision.capability,
            policy_version=decision.policy_version,
        )

    def _enforce(self, conn: Connection, target: Target, decision: Decision) -> None:
        """Keep the decision on the connection; refuse unless it allows (or monitor mode lets it by)."""
        conn.decision = decision
        conn.code, conn.reason = decision.code, decision.reason
        if decision.outcome is Outcome.ALLOW:
            return
        if self.mode != "monitor" or decision.code in FAILURE_CODES:
            raise Refusal(403, decision.code, f"{target.authority} refused: {decision.reason}")
        conn.enforced = False  # monitor mode: recorded as a would-be refusal, connected anyway

    @staticmethod
    def _token(request: Request) -> str:
        """The credential in the request's one ``Proxy-Authorization`` (Basic password or Bearer)."""
        values = request.header("proxy-authorization")
        if len(values) != 1:
            return ""
        scheme, _, value = values[0].strip().partition(" ")
        token = ""
        if scheme.lower() == "basic":
            with contextlib.suppress(ValueError):
                token = base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        elif scheme.lower() == "bearer":
            token = value.strip()
        return token

    def _authenticate(self, request: Request, only: str | None = None) -> EgressGrant:
        challenge = 'Proxy-Authenticate: Basic realm="gatekeeper-egress"\r\n'
        if len(request.header("proxy-authorization")) != 1:
            raise Refusal(
                407,
                codes.MISSING_CREDENTIAL,
                "connections need the credential of a running tool call",
                challenge,
            )
        token = self._token(request)
        grant = self.credentials.check(token) if token else None
        if only is not None and not hmac.compare_digest(token.encode(), only.encode()):
            grant = None  # another call's credential, inside this sandbox: not its way out
        if only is None and grant is not None and grant.sandboxed:
            grant = None  # a sandbox's credential carried out of it: good on its own listener only
        if grant is None:
            raise Refusal(
                407, codes.INVALID_CREDENTIAL, "the credential is unknown or its call has ended", challenge
            )
        return grant

    async def _resolve(self, target: Target) -> tuple[str, int]:
        pinned = self.settings.pin.get(target.authority)
        if pinned is not None:
            return pinned
        try:
            addresses = await asyncio.wait_for(
                self.resolver(target.host.strip("[]"), target.port), self.settings.connect_timeout_seconds
            )
        except (OSError, TimeoutError) as exc:
            raise Refusal(502, codes.RESOLVE_FAILED, f"{target.host} could not be resolved: {exc}") from None
        if not addresses:
            raise Refusal(502, codes.RESOLVE_FAILED, f"{target.host} has no address")
        return addresses[0], target.port

    async def _connect(self, address: str, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(self.settings.connect_timeout_seconds):
                await _connected(sock, (address, port))
        except (OSError, TimeoutError) as exc:
            sock.close()
            raise Refusal(
                502, codes.CONNECT_FAILED, f"{address}:{port} could not be reached: {exc}"
            ) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    async def _forward_one(
        self, client: socket.socket, target: socket.socket, request: Request, head_bytes: int
    ) -> Traffic:
        """One plain-HTTP request: its body by Content-Length, then the answer until the target closes."""
        loop = asyncio.get_running_loop()
        length = int((request.header("content-length") or ["0"])[0])
        sent = min(len(request.rest), length)
        if sent:
            await loop.sock_sendall(target, request.rest[:sent])
        while sent < length:
            chunk = await asyncio.wait_for(
                loop.sock_recv(client, min(256 * 1024, length - sent)), self.settings.idle_timeout_seconds
            )
            if not chunk:
                break
            await loop.sock_sendall(target, chunk)
            sent += len(chunk)
        # Only the answer flows from here: the client's next bytes are never read (a second
        # request could name another host, or carry the credential to this one).
        return await relay(
            client,
            target,
            self.settings.idle_timeout_seconds,
            upload=False,
            traffic=Traffic(up=head_bytes + sent),
        )

    def _record(self, conn: Connection) -> None:
        decision, grant, traffic = conn.decision, conn.grant, conn.traffic
        principal = grant.principal if grant else None
        entry: dict[str, Any] = {
            "decision_id": conn.decision_id,
            "entry": "egress",
            "principal": principal.subject if principal else None,
            "issuer": principal.issuer if principal else None,
            "roles": list(principal.roles) if principal else [],
            "tool": grant.tool if grant else None,
            "arguments": conn.arguments,
            "digest": conn.digest,
            "capabilities": list(conn.capabilities),
            "outcome": conn.outcome,
            "code": conn.code,
            "rule": decision.rule if decision else None,
            "reason": conn.reason,
            "enforced": conn.enforced,
            "mode": self.mode,
            "policy_version": decision.policy_version if decision else None,
            "approval_id": conn.approval_id,
            "latency_ms": round((time.perf_counter() - conn.started) * 1000, 3),
            "time": time.time(),
            "extra": {
                "parent_decision_id": conn.parent,
                "target": conn.target.authority if conn.target else None,
                "address": conn.address,
                "bytes_up": traffic.up if traffic else 0,
                "bytes_down": traffic.down if traffic else 0,
                "ended": traffic.ended if traffic else "refused",
            },
        }
        log.info(
            "egress",
            **{k: entry[k] for k in ("decision_id", "principal", "tool", "outcome", "code", "rule")},
            **entry["extra"],
        )
        if self.sink is not None:
            self.sink(entry)


class SandboxListener:
    """A sandbox's listener being served; ``close`` stops accepting and releases the socket
    (connections already accepted run to their end)."""

    def __init__(self, listener: socket.socket, task: asyncio.Task[None]) -> None:
        self.listener, self.task = listener, task

    async def close(self) -> None:
        self.task.cancel()  # first: the event loop stops watching the descriptor before it closes
        try:
            await asyncio.wait([self.task])
        finally:
            self.listener.close()


Resolver = Callable[[str, int], Awaitable[list[str]]]


@dataclass(slots=True)
class _SandboxBudget:
    """What one sandbox's listener may cost the gate: ``slots`` connections at once, and
    ``refusals_left`` refused connections (each one an audit record) before it stops listening."""

    slots: asyncio.Semaphore
    refusals_left: float  # math.inf: no budget

    def ended(self, conn: Connection) -> None:
        self.slots.release()
        if conn.outcome != "allowed":
            self.refusals_left -= 1


async def system_resolver(host: str, port: int) -> list[str]:
    """The host's resolver, as ``getaddrinfo`` answers (IP literals need no lookup)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def _connected(sock: socket.socket, address: tuple[str, int]) -> None:
    """Connect a non-blocking socket. A handshake that is already done when ``connect`` returns
    (a nearby host, a pinned mirror) goes on at once; only one still under way waits for the
    event loop (``loop.sock_connect`` always waits a turn, which costs most of a connection's
    added latency on a busy host)."""
    try:
        sock.connect(address)
        return
    except BlockingIOError:
        pass
    if not select.select([], [sock], [], 0)[1]:
        loop = asyncio.get_running_loop()
        writable: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not writable.done():
                writable.set_result(None)

        loop.add_writer(sock.fileno(), ready)
        try:
            await writable
        finally:
            loop.remove_writer(sock.fileno())
    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if error:
        raise OSError(error, os.strerror(error))


async def _sendall(sock: socket.socket, data: bytes) -> None:
    if data:
        await asyncio.get_running_loop().sock_sendall(sock, data)


async def _read_head(client: socket.socket, start: bytes = b"") -> Request:
    """A request head (``start``: its first bytes, already read), parsed strictly."""
    loop = asyncio.get_running_loop()
    data = start
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD:
            raise Refusal(431, codes.HEAD_TOO_LARGE, f"the request head is larger than {MAX_HEAD} bytes")
        chunk = await loop.sock_recv(client, 4096)
        if not chunk:
            raise Refusal(
                400, codes.INCOMPLETE_REQUEST, "the connection closed before the request head ended"
            )
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise Refusal(400, codes.BAD_REQUEST, "the request head must be ASCII") from None
    lines = text.split("\r\n")
    # One framing only: a bare CR or LF (or a NUL) could smuggle a header line past this reading.
    if any("\r" in line or "\n" in line or "\0" in line for line in lines):
        raise Refusal(400, codes.BAD_REQUEST, "bare CR, LF or NUL in the request head are refused")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise Refusal(400, codes.BAD_REQUEST, "expected METHOD TARGET HTTP/1.x")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or line[:1] in (" ", "\t"):
            raise Refusal(400, codes.BAD_REQUEST, "a header line is malformed (folded headers are refused)")
        headers.append((name, value.strip()))
    return Request(parts[0], parts[1], headers, rest)


def _target_of(request: Request) -> tuple[str, int]:
    """Host and port a request names (and the framing checks of a plain-HTTP one)."""
    if request.method == "CONNECT":
        try:
            host, port = parse_authority(request.target)
        except BadTarget as exc:
            raise Refusal(400, codes.BAD_TARGET, str(exc)) from None
        return host.strip("[]"), port
    url = urlsplit(request.target)
    if url.scheme != "http" or not url.netloc:
        raise Refusal(
            400, codes.BAD_TARGET, "only absolute http:// URLs are forwarded; use CONNECT for anything else"
        )
    if "@" in url.netloc:
        raise Refusal(400, codes.BAD_TARGET, "credentials in the target URL are refused")
    _check_framing(request)
    try:
        port = url.port or 80
    except ValueError:
        raise Refusal(400, codes.BAD_TARGET, "the port is not a number") from None
    return url.hostname or "", port


def _check_framing(request: Request) -> None:
    """A body by one numeric ``Content-Length`` or none: the gate forwards exactly that much."""
    if request.header("transfer-encoding"):
        raise Refusal(
            501, codes.UNSUPPORTED_FRAMING, "chunked request bodies are not forwarded; send Content-Length"
        )
    lengths = request.header("content-length")
    if len(lengths) > 1 or (lengths and not lengths[0].isdigit()):
        raise Refusal(400, codes.BAD_REQUEST, "one numeric Content-Length, or none")


def _check_tunnel_request(request: Request, tunnel: Target) -> None:
    """A request in a tunnel names the tunnel's host or none (origin-form ``/path``)."""
    if request.target.startswith("/"):
        _check_framing(request)
        return
    if request.method == "CONNECT" or not request.target.lower().startswith("http://"):
        raise Refusal(
            403, codes.TUNNEL_REFUSED, "a request in a tunnel names a path, or the tunnel's own host"
        )
    host, port = _target_of(request)
    try:
        named, _ = read_target(host, port)
    except BadTarget as exc:
        raise Refusal(400, codes.BAD_TARGET, str(exc)) from None
    if named != tunnel:
        raise Refusal(
            403,
            codes.TUNNEL_REFUSED,
            f"the request names {named.authority}; the tunnel is for {tunnel.authority}",
        )


def _origin_request(request: Request, target: Target) -> bytes:
    """The request as the target gets it: origin-form, and its ``Host`` the host that was decided
    (the client's own ``Host`` lines are dropped, as RFC 9112 asks of a proxy: on a shared
    address another name is another site)."""
    url = urlsplit(request.target)
    path = url.path or "/"
    if url.query:
        path += "?" + url.query
    host = target.host if target.port == 80 else target.authority
    lines = [f"{request.method} {path} HTTP/1.1", f"Host: {host}"]
    for name, value in request.headers:
        if name.lower() not in _HOP_BY_HOP and name.lower() != "host":
            lines.append(f"{name}: {value}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


async def _answer(client: socket.socket, refusal: Refusal) -> None:
    reason = refusal.reason.replace("\r", " ").replace("\n", " ")
    body = (f'{{"outcome": "denied", "code": "{refusal.code}", "reason": {json.dumps(reason)}}}\n').encode()
    phrase = {400: "Bad Request", 403: "Forbidden", 407: "Proxy Authentication Required"}.get(
        refusal.status, "Refused"
    )
    head = (
        f"HTTP/1.1 {refusal.status} {phrase}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"X-Gatekeeper-Code: {refusal.code}\r\n{refusal.extra_headers}Connection: close\r\n\r\n"
    ).encode()
    with contextlib.suppress(OSError):
        await asyncio.wait_for(_sendall(client, head + body), 5.0)
