"""Prometheus metrics, one registry per running Gatekeeper (so tests don't collide).

Under ``workers: N`` the supervisor sets ``PROMETHEUS_MULTIPROC_DIR`` before it starts the
workers: prometheus_client then keeps every value in a per-process file there, and ``/metrics``,
whichever worker answers it, renders the sum over all of them (gauges by their own rule: the
audit lag summed over live workers, the pending approvals and policy version as the largest,
``gatekeeper_audit_accepting`` as the smallest). The process and Python collectors (``process_*``,
``python_*``) are the answering worker's own.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

# A counter's ``_created`` series doubles every counter's output and no alert or dashboard reads it.
disable_created_metrics()  # type: ignore[no-untyped-call]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# prometheus_client's multiprocess helpers are untyped: their typed shape, as used here.
_collect_files: Callable[[CollectorRegistry, str], object] = MultiProcessCollector
_forget_pid: Callable[[int, str], None] = mark_process_dead


def forget_process(pid: int, path: str) -> None:
    """A dead worker's live gauges no longer count (its counters and histograms still do)."""
    _forget_pid(pid, path)


_LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        # The process's own health (CPU, memory, open files, start time, GC, Python version):
        # the default collectors, read at scrape time, registered in this instance's registry.
        # Across workers they are the answering worker's, rendered after the summed files.
        self._own = self.registry if self.multiprocess_dir is None else CollectorRegistry()
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self._own.register(collector)
        self._policy_version: str | None = None
        self._accepting: Callable[[], float] | None = None
        self._audit_lag: Callable[[], float] | None = None
        self._decision_children: dict[tuple[str, str, str, str, str], Any] = {}
        self._upstream_children: dict[str, Any] = {}
        self.decisions = Counter(
            "gatekeeper_decisions",
            "Decisions by outcome, tool, code and rule",
            ["outcome", "tool", "code", "rule", "entry"],
            registry=self.registry,
        )
        self.decision_seconds = Histogram(
            "gatekeeper_decision_seconds",
            "Time to understand and decide a call",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_seconds = Histogram(
            "gatekeeper_upstream_seconds",
            "Time the tool upstream took to answer",
            ["upstream"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.shadow_disagreements = Counter(
            "gatekeeper_shadow_disagreements",
            "Calls the shadow policy would have decided differently",
            ["live", "shadow"],
            registry=self.registry,
        )
        self.policy_reloads = Counter(
            "gatekeeper_policy_reloads", "Policy reloads by result", ["result"], registry=self.registry
        )
        self.budget_spent = Counter(
            "gatekeeper_budget_spent",
            "Amount spent per budget rule (calls or the rule's metric)",
            ["rule"],
            registry=self.registry,
        )
        self.budget_exceeded = Counter(
            "gatekeeper_budget_exceeded",
            "Calls refused or held because a budget was exceeded",
            ["rule"],
            registry=self.registry,
        )
        self.audit_lag = Gauge(
            "gatekeeper_audit_lag_records",
            "Decisions recorded but not yet written to the audit store",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.audit_accepting = Gauge(
            "gatekeeper_audit_accepting",
            "1 while the audit trail takes records and calls may be forwarded; 0 while calls are refused",
            registry=self.registry,
            multiprocess_mode="livemin",  # across workers: 0 while any worker refuses
        )
        self.approvals_pending = Gauge(
            "gatekeeper_approvals_pending",
            "Approvals waiting for operators (refreshed every sweep)",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.approval_wait_seconds = Histogram(
            "gatekeeper_approval_wait_seconds",
            "Time from an approval's creation to its decision or expiry",
            ["result"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 86400),
            registry=self.registry,
        )
        self.policy_info = Gauge(
            "gatekeeper_policy_version_info",
            "The live policy version",
            ["version"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )

    def set_policy_version(self, version: str) -> None:
        """The one live version at 1. A replaced one is forgotten; across workers (where
        prometheus_client cannot forget a label) it stays, at 0."""
        if self._policy_version is not None and self._policy_version != version:
            self.policy_info.labels(version=self._policy_version).set(0)
        if self.multiprocess_dir is None:
            self.policy_info.clear()
        self.policy_info.labels(version=version).set(1)
        self._policy_version = version

    def decision_counter(self, outcome: str, tool: str, code: str, rule: str, entry: str) -> Any:
        """The labelled ``gatekeeper_decisions`` child, looked up once per label set: ``labels()``
        validates and sorts its arguments on every call."""
        key = (outcome, tool, code, rule, entry)
        child = self._decision_children.get(key)
        if child is None:
            child = self.decisions.labels(outcome=outcome, tool=tool, code=code, rule=rule, entry=entry)
            self._decision_children[key] = child
        return child

    def upstream_timer(self, upstream: str) -> Any:
        """The labelled ``gatekeeper_upstream_seconds`` child for one upstream (cached likewise)."""
        child = self._upstream_children.get(upstream)
        if child is None:
            child = self._upstream_children[upstream] = self.upstream_seconds.labels(upstream=upstream)
        return child

    def track_accepting(self, accepting: Callable[[], float]) -> None:
        """``gatekeeper_audit_accepting`` reads ``accepting()``: at scrape time in one process;
        across workers (values live in files) whenever ``refresh`` runs (app: twice a second)."""
        if self.multiprocess_dir is None:
            self.audit_accepting.set_function(accepting)
        else:
            self._accepting = accepting
            self.refresh()

    def track_audit_lag(self, lag: Callable[[], float]) -> None:
        """``gatekeeper_audit_lag_records`` reads ``lag()``, like ``track_accepting``: nothing is
        set per recorded call."""
        if self.multiprocess_dir is None:
            self.audit_lag.set_function(lag)
        else:
            self._audit_lag = lag
            self.refresh()

    def refresh(self) -> None:
        """Store the values read from functions (across workers only; see ``track_accepting``)."""
        if self._accepting is not None:
            self.audit_accepting.set(self._accepting())
        if self._audit_lag is not None:
            self.audit_lag.set(self._audit_lag())

    def render(self) -> bytes:
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        self.refresh()
        merged = CollectorRegistry()
        _collect_files(merged, self.multiprocess_dir)
        return generate_latest(merged) + generate_latest(self._own)
