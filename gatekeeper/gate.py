"""Understand and decide: the sans-IO heart shared by /v1/invoke, MCP and the policy tools.

``PolicySet`` is one immutable snapshot (manifests + policy + version); the gate
holds one reference to it and swaps it whole, so no call is ever decided by
half-old, half-new policy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import structlog

from gatekeeper import codes

from . import strictjson
from .budgets import BudgetRules, load_budget_rules
from .config import PolicyFiles
from .errors import GatekeeperError, InspectionError, PolicyError, SchemaError, UnknownTool
from .inspectors import INSPECTORS, InspectContext, Inspector
from .manifest import WHOLE_ARGUMENTS, ToolManifest, load_manifests
from .mcp_methods import is_method_tool, method_capabilities
from .models import Capability, Decision, Outcome, Principal, ToolCall
from .policy import CasbinPolicy, PolicyEngine

log = structlog.get_logger("gatekeeper.gate")


@dataclass(frozen=True, slots=True)
class PolicySet:
    manifests: Mapping[str, ToolManifest]
    engine: PolicyEngine
    version: str
    shadow: PolicySet | None = None  # decided beside the live set, recorded as "would ...", never enforced
    budgets: BudgetRules | None = None


def files_version(files: PolicyFiles) -> str:
    """A content hash of the three files: every decision records the version that made it."""
    digest = hashlib.sha256()
    for path in (files.model, files.policy, files.tools, files.budgets):
        if path is None or (path == files.budgets and not Path(path).exists()):
            continue
        try:
            digest.update(Path(path).read_bytes())
        except OSError as exc:
            raise PolicyError(f"cannot read {path}: {exc.strerror}") from None
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def load_policy_set(
    files: PolicyFiles, upstreams: Collection[str] | None = None, *, shadow: PolicyFiles | None = None
) -> PolicySet:
    """Load model, policy and manifests, plus the shadow set: a candidate directory when one is
    configured, else the live files with their ``!shadow`` rules switched on (if they have any)."""
    version = files_version(files)
    manifests = load_manifests(files.tools, inspectors=INSPECTORS.keys(), upstreams=upstreams)
    engine = CasbinPolicy(files.model, files.policy)
    budgets = load_budget_rules(files.budgets) if files.budgets and Path(files.budgets).exists() else None
    candidate: PolicySet | None = None
    if shadow is not None:
        candidate = load_policy_set(shadow, upstreams)
    elif engine.has_shadow_rules:
        with_shadow = CasbinPolicy(files.model, files.policy, include_shadow=True)
        candidate = PolicySet(
            manifests=manifests, engine=with_shadow, version=f"{version}+shadow", budgets=budgets
        )
    return PolicySet(manifests=manifests, engine=engine, version=version, shadow=candidate, budgets=budgets)


@dataclass(frozen=True, slots=True)
class Verdict:
    call: ToolCall | None
    decision: Decision
    shadow: Decision | None = None  # what the shadow policy would have decided


def build_call(
    principal: Principal,
    tool: str,
    arguments: dict[str, Any],
    capabilities: list[Capability],
    upstream: str = "",
) -> ToolCall:
    """An understood call with its canonical bytes and digest. The digest binds tool, arguments
    and who asked (issuer and subject): an approval for one principal never matches another's."""
    canonical_arguments = strictjson.dumps_canonical(arguments)
    canonical = strictjson.canonical_call(tool, canonical_arguments)
    who = f"{principal.issuer}\0{principal.subject}".encode()
    digest = hashlib.sha256(canonical + b"\0" + who).hexdigest()
    return ToolCall(
        principal=principal,
        tool=tool,
        arguments=arguments,
        canonical=canonical,
        capabilities=tuple(sorted(set(capabilities))),
        digest=digest,
        upstream=upstream,
        canonical_arguments=canonical_arguments,
    )


def _refusal(code: str, reason: str, version: str) -> Decision:
    return Decision(Outcome.DENY, code, reason, None, policy_version=version)


class Gate:
    """Turns (principal, tool, arguments) into a ToolCall and a Decision. Never does I/O."""

    def __init__(
        self,
        policy_set: PolicySet | None,
        *,
        workspace: str = "/workspace",
        inspectors: Mapping[str, Inspector] = INSPECTORS,
        protected: Sequence[str] = (),
    ) -> None:
        self.policy_set = policy_set
        # Gatekeeper's own folders (its data folder: keys, stores, journals): a path an agent names
        # in them is cred.secret, wherever the operator put them (/tmp too, which the pack allows).
        self.protected = tuple(p.rstrip("/") for p in protected if p.rstrip("/") not in ("", workspace))
        self._protected_trees = tuple(p + "/" for p in self.protected)
        self.inspectors = inspectors
        self.load_error: str | None = None
        self.reloader: Any = None  # set by the app: readiness reports its last reload error
        self.context = InspectContext(workspace=workspace)

    def understand(
        self, principal: Principal, tool: str, arguments: Any, policy_set: PolicySet | None = None
    ) -> ToolCall:
        """Validate and inspect; raises UnknownTool, SchemaError or InspectionError."""
        policy_set = policy_set or self.policy_set
        if policy_set is None:
            raise PolicyError("no policy is loaded")
        if is_method_tool(tool):  # an MCP method: its parameters read by the method table
            try:
                found = method_capabilities(tool, arguments, self.inspectors, self.context)
            except (InspectionError, SchemaError):
                raise
            except Exception as exc:  # an inspector bug must never become a pass
                raise InspectionError(f"{tool} could not be inspected: {type(exc).__name__}") from exc
            return build_call(principal, tool, arguments, self._guarded(found), arguments["upstream"])
        manifest = policy_set.manifests.get(tool)
        if manifest is None:
            raise UnknownTool(f"no tool named {tool!r} is configured", tool=tool)
        arguments = manifest.with_defaults(arguments)
        manifest.validate(arguments)
        capabilities: list[Capability] = []
        for argument, inspector_name in manifest.inspect:
            if argument == WHOLE_ARGUMENTS:
                value: Any = arguments
            elif argument in arguments:
                value = arguments[argument]
            else:
                continue
            try:
                capabilities.extend(self.inspectors[inspector_name](value, self.context))
            except InspectionError:
                raise
            except Exception as exc:  # an inspector bug must never become a pass
                raise InspectionError(
                    f"inspector {inspector_name} failed on {argument}: {type(exc).__name__}"
                ) from exc
        return build_call(principal, tool, arguments, self._guarded(capabilities), manifest.upstream)

    def _guarded(self, capabilities: Sequence[Capability]) -> list[Capability]:
        """``cred.secret`` for a read or write inside one of Gatekeeper's own folders."""
        out = list(capabilities)
        for cap in capabilities if self.protected else ():
            kind, _, path = cap.name.partition(":")
            if kind in ("fs.read", "fs.write") and (
                path in self.protected or path.startswith(self._protected_trees)
            ):
                out.append(Capability("cred.secret", f"Gatekeeper's own data folder: {path}"[:200]))
                break
        return out

    def decide(
        self, call: ToolCall, policy_set: PolicySet | None = None, *, tool_object: bool = True
    ) -> Decision:
        """``tool_object=False``: an effect that is no tool call (a stdio server's own connection)
        is decided on its capabilities alone."""
        policy_set = policy_set or self.policy_set
        if policy_set is None:
            return _refusal(codes.POLICY_ERROR, "no policy is loaded; every call is refused", "")
        try:
            decision = policy_set.engine.decide(
                call.principal, call.tool, call.capabilities, tool_object=tool_object
            )
        except PolicyError as exc:
            log.error("policy_error", tool=call.tool, error=exc.message)
            return _refusal(
                codes.POLICY_ERROR, f"the policy could not be evaluated: {exc.message}", policy_set.version
            )
        except Exception as exc:  # fail closed on anything unexpected
            log.error("policy_error", tool=call.tool, error=type(exc).__name__)
            return _refusal(codes.POLICY_ERROR, "the policy could not be evaluated", policy_set.version)
        return replace(decision, policy_version=policy_set.version)

    def evaluate(self, principal: Principal, tool: str, arguments: Any) -> Verdict:
        """Understand then decide against ONE policy snapshot (a reload mid-call cannot mix two);
        inspection and policy failures become refusals, not errors."""
        policy_set = self.policy_set
        verdict = self._evaluate(principal, tool, arguments, policy_set)
        if policy_set is not None and policy_set.shadow is not None:
            shadow = policy_set.shadow
            if verdict.call is not None and shadow.manifests is policy_set.manifests:
                would = self.decide(verdict.call, shadow)
            else:
                try:
                    would = self._evaluate(principal, tool, arguments, shadow).decision
                except GatekeeperError as exc:  # the candidate does not know this tool, say
                    would = _refusal(exc.code, exc.message, shadow.version)
            verdict = replace(verdict, shadow=would)
        return verdict

    def _evaluate(
        self, principal: Principal, tool: str, arguments: Any, policy_set: PolicySet | None
    ) -> Verdict:
        try:
            call = self.understand(principal, tool, arguments, policy_set)
        except (InspectionError, PolicyError) as exc:
            log.error(exc.code, tool=tool, error=exc.message)
            return Verdict(None, _refusal(exc.code, exc.message, policy_set.version if policy_set else ""))
        return Verdict(call, self.decide(call, policy_set))

    def method_visible(self, principal: Principal, tool: str, arguments: dict[str, Any]) -> bool:
        """Whether an MCP list shows an item: its use (``resources/read`` of its URI, say) could
        be allowed, maybe after an operator's approval. What cannot be decided is not shown."""
        try:
            verdict = self._evaluate(principal, tool, arguments, self.policy_set)
        except GatekeeperError:
            return False
        return verdict.decision.outcome is not Outcome.DENY

    def tool_visible(self, principal: Principal, tool: str) -> bool:
        policy_set = self.policy_set
        if policy_set is None or tool not in policy_set.manifests:
            return False
        try:
            return policy_set.engine.tool_visible(principal, tool)
        except GatekeeperError:
            return False
