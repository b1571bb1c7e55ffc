"""Budget rules: how much of a tool or capability a principal or a role may use per time window.

Loaded from ``policies/budgets.yaml``::

    budgets:
      - id: agent-gpu-hours-daily          # unique; letters, digits, '.', '_', '-'
        subject: agent                     # a role, user:<sub>, or * for everyone
        match: "compute.gpu:*"             # keyMatch over tool:<name> or capability names
        metric: gpu_hours                  # 'calls', or an amount capabilities carry
        limit: 24                          # a finite number >= 0
        window: 1d                         # seconds, or <n>s / <n>m / <n>h / <n>d / <n>w
        per: principal                     # principal | role
        on_exceed: escalate                # deny | escalate
        note: more than 24 GPU-hours a day # optional; the reason people read

Any problem is a ``ConfigError`` naming the file, the rule and the key, as manifests do.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from ..errors import ConfigError
from ..yamlfile import read_yaml

__all__ = ["BudgetRule", "BudgetRules", "load_budget_rules", "parse_window"]

CALLS: Final = "calls"
_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_METRIC_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
_WINDOW_RE: Final = re.compile(r"([1-9][0-9]{0,9})([smhdw]?)")
_UNITS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_KEYS: Final = ("id", "subject", "match", "metric", "limit", "window", "per", "on_exceed", "note")
_REQUIRED: Final = ("id", "subject", "match", "metric", "limit", "window", "per", "on_exceed")
MAX_WINDOW: Final = 366 * 86400


@dataclass(frozen=True, slots=True)
class BudgetRule:
    """One budget: ``limit`` of ``metric`` over ``match`` per ``window_seconds``, per principal or role."""

    id: str
    subject: str  # a role name, "user:<sub>", or "*"
    match: str  # keyMatch pattern: everything before the first "*" is a prefix
    metric: str  # "calls" or an amount name such as "gpu_hours"
    limit: float
    window_seconds: int
    per: Literal["principal", "role"]
    on_exceed: Literal["deny", "escalate"]
    note: str = ""
    location: str = ""  # "budgets.yaml:budgets[2]", for decisions people can trace back

    def matches(self, obj: str) -> bool:
        """casbin's keyMatch: an exact name, or a prefix when the pattern has a ``*``."""
        star = self.match.find("*")
        return obj == self.match if star == -1 else obj.startswith(self.match[:star])


@dataclass(frozen=True, slots=True)
class BudgetRules:
    """Every budget rule of one file, in file order; immutable once loaded."""

    rules: tuple[BudgetRule, ...] = ()
    source: str = ""
    version: str = ""  # sha256 of the file, like the policy version
    # The order charges are planned in (deny rules first, then escalate rules, each in file
    # order), sorted once here instead of on every call.
    ordered: tuple[BudgetRule, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ordered", deny_first(self.rules))

    def __iter__(self) -> Iterator[BudgetRule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def get(self, rule_id: str) -> BudgetRule | None:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        return None


def deny_first(rules: Iterable[BudgetRule]) -> tuple[BudgetRule, ...]:
    """Deny rules first, then escalate rules, each in file order (the sort is stable)."""
    return tuple(sorted(rules, key=lambda r: r.on_exceed != "deny"))


def parse_window(value: object) -> int:
    """Whole seconds from ``3600`` or ``"3600"``, ``"90s"``, ``"15m"``, ``"1h"``, ``"1d"``, ``"1w"``.

    Raises ValueError with a message for people.
    """
    if isinstance(value, bool):
        raise ValueError("must be whole seconds or <n>s/m/h/d/w, not a boolean")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and (m := _WINDOW_RE.fullmatch(value.strip())):
        seconds = int(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(f"must be whole seconds or <n>s/m/h/d/w (such as 1h or 1d), not {value!r}")
    if not 0 < seconds <= MAX_WINDOW:
        raise ValueError(f"must be between 1 second and 366 days, not {seconds} seconds")
    return seconds


def load_budget_rules(path: Path) -> BudgetRules:
    """Load and check every budget rule in ``path``."""
    source = str(path)
    raw = read_yaml(path, what="budget file")
    if not isinstance(raw, dict) or not isinstance(raw.get("budgets"), list):
        raise ConfigError(f"{source}: expected a mapping with a 'budgets' list", file=source, key="budgets")
    unknown = set(raw) - {"budgets"}
    if unknown:
        key = str(sorted(map(str, unknown))[0])
        raise ConfigError(f"{source}: {key}: unknown key (known: budgets)", file=source, key=key)
    rules: list[BudgetRule] = []
    seen: set[str] = set()
    for position, spec in enumerate(raw["budgets"]):
        rule = _one(source, Path(path).name, position, spec)
        if rule.id in seen:
            raise ConfigError(
                f"{source}: budgets.{rule.id}.id: duplicate rule id",
                file=source,
                rule=rule.id,
                key=f"budgets.{rule.id}.id",
            )
        seen.add(rule.id)
        rules.append(rule)
    version = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return BudgetRules(tuple(rules), source, version)


def _one(source: str, filename: str, position: int, spec: Any) -> BudgetRule:
    label = f"budgets[{position}]"
    if isinstance(spec, dict) and isinstance(spec.get("id"), str) and _ID_RE.fullmatch(spec["id"]):
        label = f"budgets.{spec['id']}"

    def fail(key: str, problem: str) -> ConfigError:
        where = f"{label}.{key}" if key else label
        rule_id = label.removeprefix("budgets.")
        return ConfigError(f"{source}: {where}: {problem}", file=source, rule=rule_id, key=where)

    if not isinstance(spec, dict):
        raise fail("", "must be a mapping")
    unknown = sorted(str(k) for k in set(spec) - set(_KEYS))
    if unknown:
        raise fail(unknown[0], f"unknown key (known: {', '.join(_KEYS)})")
    for key in _REQUIRED:
        if key not in spec:
            raise fail(key, "required")

    rule_id = spec["id"]
    if not isinstance(rule_id, str) or not _ID_RE.fullmatch(rule_id):
        raise fail("id", "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")

    subject = spec["subject"]
    if not isinstance(subject, str) or not subject or subject != subject.strip() or "," in subject:
        raise fail("subject", "must be a role name, user:<sub>, or *")
    if subject.startswith("user:") and len(subject) == len("user:"):
        raise fail("subject", "user: needs a subject, as in user:alice")
    if "*" in subject and subject != "*":
        raise fail("subject", "only a lone * (everyone) may contain *")

    match = spec["match"]
    if not isinstance(match, str) or not match or match != match.strip() or "," in match:
        raise fail("match", "must be a tool:<name> or capability pattern (keyMatch: prefix*)")

    metric = spec["metric"]
    if not isinstance(metric, str) or not _METRIC_RE.fullmatch(metric):
        raise fail("metric", "must be 'calls' or an amount name such as gpu_hours")
    if metric != CALLS and match.startswith("tool:"):
        raise fail("metric", f"tools carry no amounts; count 'calls' or match capabilities for {metric!r}")

    limit = spec["limit"]
    if isinstance(limit, bool) or not isinstance(limit, int | float) or not math.isfinite(limit) or limit < 0:
        raise fail("limit", f"must be a finite number >= 0, not {limit!r}")

    try:
        window = parse_window(spec["window"])
    except ValueError as exc:
        raise fail("window", str(exc)) from None

    per = spec["per"]
    if per not in ("principal", "role"):
        raise fail("per", f"must be 'principal' or 'role', not {per!r}")
    if per == "role" and subject.startswith("user:"):
        raise fail("per", "a user: subject has no role to share a budget; use per: principal")

    on_exceed = spec["on_exceed"]
    if on_exceed not in ("deny", "escalate"):
        raise fail("on_exceed", f"must be 'deny' or 'escalate', not {on_exceed!r}")

    note = spec.get("note", "")
    if note is None:
        note = ""
    if not isinstance(note, str):
        raise fail("note", "must be text")

    return BudgetRule(
        id=rule_id,
        subject=subject,
        match=match,
        metric=metric,
        limit=float(limit),
        window_seconds=window,
        per=per,
        on_exceed=on_exceed,
        note=note,
        location=f"{filename}:{rule_id}",
    )
