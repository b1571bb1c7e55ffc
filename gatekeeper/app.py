"""Assemble and run a Gatekeeper: listeners, gate, identity, transports, demo tools."""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from .approvals.queue import ApprovalQueue
from .approvals.stores import open_store
from .approvals.webhook import WebhookNotifier
from .audit.checkpoints import default_key_path, ensure_signer
from .audit.log import AuditLog, default_chain_id, make_sink
from .audit.offloop import OffLoopAuditLog
from .budgets import open_counter
from .config import Config, Upstream
from .demo.runner import DemoUpstream
from .egress.credentials import EgressCredentials
from .egress.proxy import EgressGate
from .errors import GatekeeperError
from .escalation import EscalationHandler, NoApprovalQueue
from .gate import Gate, load_policy_set
from .identity import TokenVerifier, ensure_dev_key
from .lifecycle import Lifecycle, drain_middleware
from .listen import binding
from .mcp_sessions import CachedSessions, MemorySessions
from .metrics import Metrics
from .pipeline import DecisionSinks
from .policy_sync import PolicySync
from .recent import RecentDecisions
from .reload import PolicyReloader
from .runner.stdio_server import ContainedServer
from .runner.transport import Runner, RunnerTransport
from .server.agent_approvals import add_agent_approval_routes, openapi_agent
from .server.console import AUDIT_STATUS
from .server.decide import handle_decide
from .server.health import add_health_routes
from .server.invoke import CallTool, handle_invoke
from .server.mcp_events import event_key
from .server.mcp_proxy import handle_mcp
from .server.operator import add_operator_routes
from .server.protocol import GuardedAppRunner
from .server.request_ids import add_request_ids
from .server.responses import error_middleware
from .server.state import (
    APPROVALS,
    AUDIT,
    BUDGETS,
    CLIENT_SESSION,
    CONFIG,
    ESCALATION,
    GATE,
    LIFECYCLE,
    MCP_EVENT_KEY,
    MCP_SESSIONS,
    METRICS,
    RECENT,
    RUNNER,
    SINKS,
    TOOL_CALLS,
    TOOL_PINS,
    TRANSPORT,
    VERIFIER,
    WORKER,
    WRITTEN_CODE,
)
from .tool_pins import MemoryToolPinStore, ToolPins
from .upstream import HttpTransport
from .upstream.stdio_bridge import StdioBridge
from .workers.shared import chain_id_for
from .written.records import open_written_store

log = structlog.get_logger("gatekeeper")


def prepare_identity(config: Config) -> Config:
    """On the embedded identity (no keys configured), use the development key in the data folder."""
    ident = config.identity
    if ident.public_keys or ident.jwks_url or ident.dev_key_path:
        return config
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_path = ensure_dev_key(config.data_dir)
    return replace(config, identity=replace(ident, dev_key_path=str(key_path)))


def build_gate(config: Config) -> Gate:
    """Load the policy; a failure leaves a gate that refuses everything (and is not ready)."""
    gate = Gate(None, protected=(str(config.data_dir.resolve()),))
    try:
        gate.policy_set = load_policy_set(
            config.policy, upstreams=config.upstreams.keys(), shadow=config.policy_shadow
        )
    except GatekeeperError as exc:
        gate.load_error = exc.message
        log.error("policy_load_failed", error=exc.message)
    return gate


def _shared(
    app: web.Application, config: Config, gate: Gate, verifier: TokenVerifier, metrics: Metrics
) -> None:
    app[CONFIG] = config
    app[GATE] = gate
    app[VERIFIER] = verifier
    app[METRICS] = metrics


def build_agent_app(
    config: Config,
    gate: Gate,
    verifier: TokenVerifier,
    metrics: Metrics,
    escalation: EscalationHandler | None = None,
    lifecycle: Lifecycle | None = None,
    runner: Runner | None = None,
    credentials: EgressCredentials | None = None,
) -> web.Application:
    # The body limit is enforced by our own strict reader; aiohttp's cap stays above it.
    app = web.Application(
        middlewares=[drain_middleware, error_middleware], client_max_size=config.limits.max_body_bytes + 1
    )
    add_request_ids(app)
    _shared(app, config, gate, verifier, metrics)
    app[LIFECYCLE] = lifecycle or Lifecycle()
    app[ESCALATION] = escalation or NoApprovalQueue()
    app[MCP_SESSIONS] = MemorySessions()  # Gatekeeper.start puts the approval store's table here
    app[TOOL_PINS] = ToolPins(MemoryToolPinStore())  # and its tool pins here
    app[MCP_EVENT_KEY] = event_key(config.data_dir)

    async def client_session(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=256, ttl_dns_cache=300)
        # No cookie jar: a cookie one principal's call got from an upstream must not ride on the next
        # principal's calls (the session is shared by every call Gatekeeper forwards).
        jar = aiohttp.DummyCookieJar()
        client = aiohttp.ClientSession(connector=connector, auto_decompress=False, cookie_jar=jar)
        async with client as session:
            app[CLIENT_SESSION] = session
            http = HttpTransport(
                session, max_response_bytes=config.limits.max_response_bytes, credentials=credentials
            )
            app[TRANSPORT] = RunnerTransport(runner, http) if runner is not None else http
            app[TOOL_CALLS] = CallTool(app[TRANSPORT], config.upstreams)
            yield

    if runner is not None:
        app[RUNNER] = runner
    app.cleanup_ctx.append(client_session)
    app.router.add_post("/v1/invoke", handle_invoke)
    app.router.add_post("/v1/decide", handle_decide)
    add_agent_approval_routes(app)  # answers 404 until an approval queue is attached
    app.router.add_get("/openapi.json", openapi_agent)
    app.router.add_route("*", "/mcp/{upstream}", handle_mcp)
    add_health_routes(app)
    return app


def build_operator_app(
    config: Config, gate: Gate, verifier: TokenVerifier, metrics: Metrics
) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    add_request_ids(app)
    _shared(app, config, gate, verifier, metrics)
    add_operator_routes(app)
    return app


class Gatekeeper:
    """One running instance: both listeners and (on defaults) the demo tools."""

    def __init__(self, config: Config, *, worker: int | None = None) -> None:
        # worker: this process's index among ``workers: N`` (gatekeeper.workers), None when alone.
        self.worker = worker
        config = prepare_identity(config)
        if config.demo.enabled and "demo" not in config.upstreams:
            # The demo upstream's real address is known once it starts; its name is known now.
            config = replace(config, upstreams={**config.upstreams, "demo": Upstream("demo")})
        self.config = config
        self.metrics = Metrics()
        self.gate = build_gate(self.config)
        if self.gate.policy_set is not None:
            self.metrics.set_policy_version(self.gate.policy_set.version)
        self.verifier = TokenVerifier(self.config.identity)
        approvals = self.config.approvals
        notifier = (
            WebhookNotifier(approvals.webhook_url, approvals.webhook_secret)
            if approvals.webhook_url and approvals.webhook_secret
            else None
        )
        self.approvals = ApprovalQueue(
            open_store(approvals.store, self.config.data_dir, schema=approvals.postgres_schema),
            approvals,
            notifier=notifier,
            metrics=self.metrics,
        )
        self.reloader = PolicyReloader(
            self.gate,
            self.config.policy,
            upstreams=self.config.upstreams.keys(),
            metrics=self.metrics,
            shadow=self.config.policy_shadow,
            interval_seconds=self.config.policy_watch_seconds or 1.0,
        )
        self.gate.reloader = self.reloader
        # A member of a policy fleet: sets published to PostgreSQL replace the local files.
        self.policy_sync = (
            PolicySync(config.policy_sync, approvals.postgres_schema, config.data_dir, self.reloader)
            if config.policy_sync
            else None
        )
        # What code written by file.write does, beside the approval queue (shared by replicas).
        self.written_code = open_written_store(
            approvals.store, self.config.data_dir, schema=approvals.postgres_schema
        )
        self.lifecycle = Lifecycle()
        self.budgets = open_counter(self.config.budget_store, prefix=self.config.budget_prefix)
        self.recent = RecentDecisions()
        audit = self.config.audit
        key_path = Path(audit.checkpoint_key) if audit.checkpoint_key else default_key_path(config.data_dir)
        chain_id = default_chain_id(self.config.agent_listener.port)
        if worker is not None:
            chain_id = chain_id_for(chain_id, worker)
        self.audit: AuditLog
        if audit.writer == "process":  # chained and committed by a writer process of its own
            self.audit = OffLoopAuditLog(
                approvals.store,
                self.config.data_dir,
                schema=approvals.postgres_schema,
                chain_id=chain_id,
                max_queue=audit.max_unwritten_records,
                checkpoint_seconds=audit.checkpoint_seconds,
                signer=ensure_signer(key_path),
                key_path=key_path,
                sync=audit.durable_answers,
                log_level=self.config.log_level,
            )
        else:
            self.audit = AuditLog(
                make_sink(approvals.store, self.config.data_dir, schema=approvals.postgres_schema),
                chain_id=chain_id,
                max_queue=audit.max_unwritten_records,
                checkpoint_seconds=audit.checkpoint_seconds,
                # Callers wait for their record's commit: write at once, batching what piles up.
                batch_window_seconds=0.0 if audit.durable_answers else 0.02,
                signer=ensure_signer(key_path),
            )
        max_seconds = audit.max_unwritten_seconds
        self.metrics.track_accepting(lambda: float(self.audit.refusal(max_seconds) is None))
        self.metrics.track_audit_lag(lambda: float(self.audit.lag))
        self.tool_pins = ToolPins(self.approvals.store)
        self.sinks = DecisionSinks()
        self.sinks.sinks += [self._audit_decision, self.recent.add]
        self.demo: DemoUpstream | None = None
        self.stdio: dict[str, StdioBridge] = {}  # stdio MCP upstreams, each bridged onto loopback
        # Containment at the effect: the sandboxed runner and its only way out, the egress gate.
        self.credentials = EgressCredentials()
        self.runner = (
            Runner(config.runner, self.credentials, config.data_dir) if config.runner.enabled else None
        )
        self.egress: EgressGate | None = None
        self.egress_url = ""
        self._runners: list[web.AppRunner] = []
        self._metrics_task: asyncio.Task[None] | None = None
        self.agent_url = ""
        self.operator_url = ""

    async def start(self, *, handle_sighup: bool = False) -> None:
        """Start everything; if any part cannot start (a port in use, say), what did is stopped
        again before the error goes up, so a failed start leaves no store open or task running."""
        try:
            await self._start(handle_sighup=handle_sighup)
        except BaseException:
            try:
                await self.stop(drain_seconds=0)
            except Exception as exc:  # the first error is the one to report
                log.warning("abandoned_start_cleanup_failed", error=f"{type(exc).__name__}: {exc}")
            raise

    async def _start(self, *, handle_sighup: bool) -> None:
        cfg = self.config
        if cfg.egress_enabled:  # first: a runner that cannot sandbox stops start-up before anything runs
            await self._start_egress(cfg)  # on failure, start() stops what did start
        if cfg.demo.enabled:
            self.demo = DemoUpstream(cfg.demo.host, cfg.demo.http_port, cfg.demo.mcp_port)
            await self.demo.start()
            # Ports may have been 0 ("any free port"): point the demo upstream at the real ones.
            configured = cfg.upstreams.get("demo") or Upstream("demo")
            demo = replace(configured, url=self.demo.http_url, mcp_url=self.demo.mcp_url)
            cfg = self.config = replace(cfg, upstreams={**cfg.upstreams, "demo": demo})
        cfg = self.config = await self._start_stdio(cfg)
        await self.audit.start()
        if self.metrics.multiprocess_dir is not None:  # across workers: values live in files
            self._metrics_task = asyncio.create_task(self._refresh_metrics(), name="metrics-refresh")
        await self.approvals.start()
        await self.written_code.open()
        await self.budgets.open()
        if cfg.policy_watch_seconds is not None or handle_sighup:
            await self.reloader.start(watch=cfg.policy_watch_seconds is not None, handle_sighup=handle_sighup)
        if self.policy_sync is not None:
            await self.policy_sync.start()
        agent = build_agent_app(
            cfg,
            self.gate,
            self.verifier,
            self.metrics,
            self.approvals,
            self.lifecycle,
            self.runner,
            self.credentials if cfg.egress_enabled else None,
        )
        agent[BUDGETS] = self.budgets
        agent[SINKS] = self.sinks
        agent[AUDIT] = self.audit
        agent[APPROVALS] = self.approvals  # read-only there: an agent sees its own held calls
        agent[WRITTEN_CODE] = self.written_code
        agent[MCP_SESSIONS] = CachedSessions(self.approvals.store)
        await self.tool_pins.refresh()
        agent[TOOL_PINS] = self.tool_pins
        operator = build_operator_app(cfg, self.gate, self.verifier, self.metrics)
        operator[APPROVALS] = self.approvals
        operator[RECENT] = self.recent
        operator[AUDIT] = self.audit
        operator[BUDGETS] = self.budgets
        operator[AUDIT_STATUS] = self._audit_status
        operator[TOOL_PINS] = self.tool_pins
        for app, listener, attr in (
            (agent, cfg.agent_listener, "agent_url"),
            (operator, cfg.operator_listener, "operator_url"),
        ):
            runner = GuardedAppRunner(
                app, head_timeout=cfg.limits.header_timeout_seconds, access_log=None, handle_signals=False
            )
            await runner.setup()
            self._runners.append(runner)
            if self.worker is not None:  # the other workers listen on the same port
                app[WORKER] = self.worker
            site = web.TCPSite(
                runner, listener.host, listener.port, reuse_address=True, reuse_port=self.worker is not None
            )
            with binding(attr.removesuffix("_url"), listener.host, listener.port):
                await site.start()
            port = runner.addresses[0][1] if runner.addresses else listener.port
            setattr(self, attr, f"http://{listener.host}:{port}")
        if not self.approvals.console_url:
            self.approvals.console_url = self.operator_url
        # Everything loaded so far (policy index, inspectors' tables) lives as long as the process:
        # keep it out of the cyclic collector, whose full passes over it stall every call.
        gc.collect()
        gc.freeze()
        log.info(
            "gatekeeper_started",
            agent=self.agent_url,
            operator=self.operator_url,
            egress=self.egress_url or None,
            runner=str(cfg.runner.workspace) if self.runner else None,
            config=cfg.source,
            data_dir=str(cfg.data_dir),
            policy_version=self.gate.policy_set.version if self.gate.policy_set else None,
            mode=cfg.mode,
            demo=cfg.demo.enabled,
        )
        if cfg.mode == "monitor":
            log.warning(
                "monitor_mode",
                message="denied calls are recorded but FORWARDED; do not run this in production",
            )

    async def stop(self, *, drain_seconds: float = 30.0) -> None:
        """Graceful: refuse new calls (503 shutting_down), answer held callers "pending" (their
        approvals stay in the store), let in-flight forwards finish, then close everything."""
        self.lifecycle.draining = True
        self.approvals.release_waiters()
        await self.lifecycle.wait_idle(drain_seconds)
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if self.policy_sync is not None:
            await self.policy_sync.stop()
        await self.reloader.stop()
        if self.egress is not None:
            await self.egress.stop()
        await self.approvals.stop()
        await self.written_code.close()
        await self.budgets.close()
        await self.audit.stop()  # drains: every decision made is written before we exit
        if self._metrics_task is not None:
            self._metrics_task.cancel()
            await asyncio.gather(self._metrics_task, return_exceptions=True)
            self._metrics_task = None
        if self.demo is not None:
            await self.demo.stop()
        for bridge in self.stdio.values():
            await bridge.stop()
        self.stdio.clear()
        await self.verifier.aclose()

    async def _start_egress(self, cfg: Config) -> None:
        """The egress gate, then the runner behind it (the gate serves each sandbox's listener)."""
        self.egress = EgressGate(
            cfg.egress, self.gate, self.credentials, self.approvals, self.sinks, mode=cfg.mode
        )
        listener = cfg.egress_address
        with binding("egress", listener.host, listener.port):
            await self.egress.start(listener.host, listener.port, reuse_port=self.worker is not None)
        self.egress_url = self.egress.url
        if self.runner is not None:
            self.runner.sandbox.prepare()
            await self.runner.start(self.egress)

    async def _start_stdio(self, cfg: Config) -> Config:
        """Start every ``command`` upstream; the proxy then reaches it at its bridge's URL."""
        upstreams = dict(cfg.upstreams)
        try:
            for name, upstream in cfg.upstreams.items():
                if upstream.command is None:
                    continue
                # With the runner on, the server runs in its sandbox; never outside it.
                contained = ContainedServer(upstream, self.runner) if self.runner is not None else None
                bridge = self.stdio[name] = StdioBridge(upstream, contained=contained)
                await bridge.start()
                headers = {**upstream.headers, **bridge.upstream_headers}  # the bridge's own secret
                upstreams[name] = replace(upstream, mcp_url=bridge.url, headers=headers)
        except BaseException:
            for started in self.stdio.values():
                await started.stop()
            self.stdio.clear()
            raise
        return replace(cfg, upstreams=upstreams)

    async def _refresh_metrics(self) -> None:
        """Across workers: this worker's read-at-scrape values (audit accepting, lag) go to its
        metrics file twice a second, so whichever worker answers ``/metrics`` sees them."""
        while True:
            self.metrics.refresh()
            await asyncio.sleep(0.5)

    def _audit_decision(self, record: dict[str, Any]) -> None:
        # The decision recorder's dict holds exactly the audit fields; anything else is a TypeError.
        self.audit.append_record(record)  # gatekeeper_audit_lag_records is read when scraped

    async def _audit_status(self) -> dict[str, Any]:
        seq, digest = self.audit.head
        return {
            "status": "ok" if self.audit.head[0] else "empty",
            "chain": self.audit.chain_id,
            "head": f"{seq}:{digest}",
            "lag": self.audit.lag,
            "refusing": self.audit.refusal(self.config.audit.max_unwritten_seconds),
            "signed_checkpoints": self.audit.signer.key_id if self.audit.signer else None,
            "verify": "run `gatekeeper audit verify` to check the whole chain",
        }


async def serve_forever(config: Config) -> None:
    gk = Gatekeeper(config)
    await gk.start(handle_sighup=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("gatekeeper_stopping")
        await gk.stop()
