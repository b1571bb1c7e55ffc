"""Prometheus metrics, one registry per running Gatekeeper (so tests don't collide)."""

from __future__ import annotations

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

# A counter's ``_created`` series doubles every counter's output and no alert or dashboard reads it.
disable_created_metrics()  # type: ignore[no-untyped-call]

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
        # The process's own health (CPU, memory, open files, start time, GC, Python version):
        # the default collectors, read at scrape time, registered in this instance's registry.
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
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
        )
        self.audit_accepting = Gauge(
            "gatekeeper_audit_accepting",
            "1 while the audit trail takes records and calls may be forwarded; 0 while calls are refused",
            registry=self.registry,
        )
        self.approvals_pending = Gauge(
            "gatekeeper_approvals_pending",
            "Approvals waiting for operators (refreshed every sweep)",
            registry=self.registry,
        )
        self.approval_wait_seconds = Histogram(
            "gatekeeper_approval_wait_seconds",
            "Time from an approval's creation to its decision or expiry",
            ["result"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 86400),
            registry=self.registry,
        )
        self.policy_info = Gauge(
            "gatekeeper_policy_version_info", "The live policy version", ["version"], registry=self.registry
        )

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

    def render(self) -> bytes:
        return generate_latest(self.registry)
