"""``gatekeeper policy test``: policy unit tests as data (``policies/tests/*.yaml``).

A test file is ``{cases: [...]}``; each case is::

    {name: str, roles: [str], sub?: str, tool: str, arguments: {...},
     expect: allow | deny | escalate | error, code?: str, rule?: "policy.csv:LINE"}

Every case runs through ``Gate.evaluate``, the same pure decision the proxy makes. A failure
shows expected against actual, the capabilities derived, and the rule and reason that decided.
``expect: error`` is for calls refused before policy is consulted (unknown tool, arguments the
schema rejects); ``code`` then names which (``unknown_tool``, ``invalid_arguments``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, GatekeeperError
from ..gate import Gate, PolicySet
from ..models import Principal
from ..yamlfile import StrictLoader, load_yaml, yaml_error_line, yaml_error_message

DEFAULT_SUBJECT = "test-agent"
DEFAULT_ISSUER = "gatekeeper-dev"
_OUTCOMES = {
    "allow": "allow",
    "allowed": "allow",
    "deny": "deny",
    "denied": "deny",
    "escalate": "escalate",
    "pending": "escalate",
    "error": "error",
}
_CASE_KEYS = {"name", "roles", "sub", "tool", "arguments", "expect", "code", "rule"}
_LINE_KEY = "__line__"


@dataclass(frozen=True, slots=True)
class PolicyCase:
    name: str
    roles: tuple[str, ...]
    tool: str
    arguments: Any
    expect: str  # allow | deny | escalate | error
    sub: str = DEFAULT_SUBJECT
    code: str | None = None
    rule: str | None = None
    file: str = ""
    line: int = 0

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: PolicyCase
    outcome: str
    code: str
    rule: str | None
    reason: str
    capabilities: tuple[str, ...] = ()
    capability: str | None = None
    problems: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        """One failure, as a person wants to read it."""
        c = self.case
        expected = c.expect + (f" ({c.code})" if c.code else "") + (f" by {c.rule}" if c.rule else "")
        actual = f"{self.outcome} ({self.code})" + (f" by {self.rule}" if self.rule else "")
        lines = [
            f"FAIL {c.where}: {c.name}",
            f"  call:         {c.tool} {_short(c.arguments)} as {c.sub} (roles: {', '.join(c.roles) or '-'})",
            f"  expected:     {expected}",
            f"  actual:       {actual}",
            f"  why:          {self.reason}",
            f"  capabilities: {', '.join(self.capabilities) or '(none)'}",
        ]
        if self.capability:
            lines.append(f"  decided on:   {self.capability}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.case.name,
            "where": self.case.where,
            "passed": self.passed,
            "expected": {"outcome": self.case.expect, "code": self.case.code, "rule": self.case.rule},
            "actual": {"outcome": self.outcome, "code": self.code, "rule": self.rule, "reason": self.reason},
            "capabilities": list(self.capabilities),
            "capability": self.capability,
            "problems": list(self.problems),
        }


@dataclass(slots=True)
class TestReport:
    results: list[CaseResult] = field(default_factory=list)

    __test__ = False  # not a pytest class

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.passed)

    @property
    def failed(self) -> int:
        return len(self.results) - self.passed

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed"


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _LineLoader(StrictLoader):
    """Strict safe YAML that remembers the line every mapping starts on."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping[_LINE_KEY] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != _LINE_KEY}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


def load_cases(path: Path) -> list[PolicyCase]:
    """Parse one test file; a malformed case is a ConfigError naming ``file:line``."""
    source = str(path)
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"), source, loader=_LineLoader)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the test file: {exc.strerror}", file=source) from None
    except yaml.YAMLError as exc:
        line = yaml_error_line(exc)
        raise ConfigError(f"{source}:{line}: {yaml_error_message(exc)}", file=source) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cases"), list):
        raise ConfigError(f"{source}:1: expected a mapping with a 'cases' list", file=source)
    cases: list[PolicyCase] = []
    for position, item in enumerate(raw["cases"], start=1):
        if not isinstance(item, dict):
            raise ConfigError(f"{source}: case {position} must be a mapping", file=source)
        line = int(item.get(_LINE_KEY, 0))
        where = f"{source}:{line}"
        unknown = sorted(set(item) - _CASE_KEYS - {_LINE_KEY})
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_CASE_KEYS))})")
        for key in ("name", "tool", "expect"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise ConfigError(f"{where}: {key!r} is required and must be a string", file=source)
        expect = _OUTCOMES.get(item["expect"])
        if expect is None:
            raise ConfigError(f"{where}: expect must be allow, deny, escalate or error", file=source)
        roles = item.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise ConfigError(f"{where}: roles must be a list of role names", file=source)
        for key in ("sub", "code", "rule"):
            if key in item and not isinstance(item[key], str):
                raise ConfigError(f"{where}: {key!r} must be a string", file=source)
        cases.append(
            PolicyCase(
                name=item["name"],
                roles=tuple(roles),
                tool=item["tool"],
                arguments=_strip_lines(item.get("arguments", {})),
                expect=expect,
                sub=item.get("sub", DEFAULT_SUBJECT),
                code=item.get("code"),
                rule=item.get("rule"),
                file=source,
                line=line,
            )
        )
    return cases


def discover(directory: Path) -> list[Path]:
    """The test files of a policy directory: ``*.yaml`` and ``*.yml`` under ``tests/``, sorted."""
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def run_case(gate: Gate, case: PolicyCase) -> CaseResult:
    principal = Principal(case.sub, case.roles, DEFAULT_ISSUER, 0.0)
    try:
        verdict = gate.evaluate(principal, case.tool, case.arguments)
    except GatekeeperError as exc:  # refused before policy: unknown tool, schema
        outcome, code, rule, reason = "error", exc.code, None, exc.message
        capabilities: tuple[str, ...] = ()
        capability = None
    else:
        decision = verdict.decision
        outcome, code, rule, reason = str(decision.outcome), decision.code, decision.rule, decision.reason
        capabilities = tuple(c.name for c in verdict.call.capabilities) if verdict.call else ()
        capability = decision.capability
    problems: list[str] = []
    if outcome != case.expect:
        problems.append(f"expected {case.expect}, got {outcome}")
    if case.code is not None and code != case.code:
        problems.append(f"expected code {case.code}, got {code}")
    if case.rule is not None and not _same_rule(case.rule, rule):
        problems.append(f"expected rule {case.rule}, got {rule}")
    return CaseResult(case, outcome, code, rule, reason, capabilities, capability, tuple(problems))


def _same_rule(expected: str, actual: str | None) -> bool:
    """``policy.csv:7`` and ``7`` both name line 7 of the policy file."""
    if actual is None:
        return expected in ("", "none", "None")
    return actual == expected or actual.rpartition(":")[2] == expected


def run_cases(
    policy_set: PolicySet, cases: Iterable[PolicyCase], *, workspace: str = "/workspace"
) -> TestReport:
    gate = Gate(policy_set, workspace=workspace)
    return TestReport([run_case(gate, case) for case in cases])


def run_files(policy_set: PolicySet, files: Sequence[Path], *, workspace: str = "/workspace") -> TestReport:
    cases = [case for path in files for case in load_cases(path)]
    return run_cases(policy_set, cases, workspace=workspace)
