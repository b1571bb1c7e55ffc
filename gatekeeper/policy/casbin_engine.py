"""casbin behind our own typed boundary.

casbin answers yes/no for one (subject, object, action); Gatekeeper needs three
outcomes and the rule behind each. So we ask casbin once per effect
(deny, escalate, allow) for the tool and for every capability, and combine the
answers ourselves: deny > escalate > allow, and no answer means deny.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import casbin
import simpleeval
from casbin.persist import Adapter, load_policy_line

from ..errors import PolicyError
from ..models import Capability, Decision, Outcome, Principal

logging.getLogger("casbin").setLevel(logging.WARNING)

# "unlisted" is a fallback, not a grant: it escalates an object that no allow rule covers (for
# example egress to a host not on the allow-list) instead of the default deny.
_EFFECTS = ("allow", "deny", "escalate", "unlisted")


class RuleRef:
    """Where a policy line came from, for decisions people can trace back."""

    __slots__ = ("location", "note", "quorum")

    def __init__(self, location: str, note: str, quorum: int = 1) -> None:
        self.location = location
        self.note = note
        self.quorum = quorum


class _LineAdapter(Adapter):  # type: ignore[misc]
    """Loads a casbin CSV policy file and remembers each rule's file:line."""

    def __init__(self, path: Path, *, include_shadow: bool = False) -> None:
        self.path = path
        self.include_shadow = include_shadow
        self.has_shadow = False
        self.rules: dict[tuple[str, ...], RuleRef] = {}
        self.errors: list[str] = []

    def load_policy(self, model: Any) -> None:
        for number, raw in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            # A rule whose effect ends in "!shadow" is only in the shadow set: it is decided on
            # live traffic and recorded as "would ...", never enforced.
            parts = line.split(",")
            if len(parts) > 3 and parts[3].strip().endswith("!shadow"):
                self.has_shadow = True
                if not self.include_shadow:
                    continue
                parts[3] = " " + parts[3].strip().removesuffix("!shadow")
                line = ",".join(parts)
            key = line.split(",", 1)[0].strip()
            section = model.model.get(key[:1], {})
            if key not in section:
                self.errors.append(f"{self.path.name}:{number}: unknown line type {key!r}")
                continue
            assertion = section[key]
            before = len(assertion.policy)
            load_policy_line(line, model)
            if len(assertion.policy) != before + 1:
                self.errors.append(f"{self.path.name}:{number}: could not parse this line")
                continue
            tokens = tuple(assertion.policy[-1])
            if key == "p":
                if len(tokens) != 5:
                    self.errors.append(
                        f"{self.path.name}:{number}: expected 'p, SUBJECT, OBJECT, EFFECT, CONDITION, NOTE'"
                    )
                    continue
                effect, _, quorum_text = tokens[2].partition(":")
                if effect not in _EFFECTS or (
                    quorum_text and (effect != "escalate" or not quorum_text.isdigit())
                ):
                    self.errors.append(
                        f"{self.path.name}:{number}: effect must be allow, deny, escalate or escalate:N"
                    )
                    continue
                quorum = int(quorum_text) if quorum_text else 1
                if not 1 <= quorum <= 10:
                    self.errors.append(f"{self.path.name}:{number}: escalate:N needs 1 to 10 approvers")
                    continue
                if quorum_text:  # casbin sees plain "escalate"; the quorum rides along on the rule
                    assertion.policy[-1][2] = effect
                    tokens = tuple(assertion.policy[-1])
                self.rules[tokens] = RuleRef(f"{self.path.name}:{number}", tokens[4], quorum)


class ConditionContext:
    """What a rule's condition may look at: ``r.ctx.tool``, ``r.ctx.gpus`` ...

    An attribute the capability does not carry raises, so a condition that cannot be
    evaluated fails closed instead of quietly matching.
    """

    __slots__ = ("_amounts", "capability", "subject", "tool")

    def __init__(self, subject: str, tool: str, capability: str, amounts: dict[str, float]) -> None:
        self.subject = subject
        self.tool = tool
        self.capability = capability
        self._amounts = amounts

    def __getattr__(self, name: str) -> float:
        try:
            return self._amounts[name]
        except KeyError:
            raise AttributeError(f"capability {self.capability} has no attribute {name!r}") from None


class _Rule:
    """One policy line, pre-digested for matching."""

    __slots__ = ("condition", "index", "ref", "subject")

    def __init__(self, index: int, subject: str, condition: Any, ref: RuleRef) -> None:
        self.index = index
        self.subject = subject
        self.condition = condition  # None means "True"; else a parsed simpleeval AST
        self.ref = ref


class _EffectIndex:
    """Rules of one effect: exact objects in a dict, keyMatch patterns by prefix."""

    __slots__ = ("exact", "prefixed")

    def __init__(self) -> None:
        self.exact: dict[str, list[_Rule]] = {}
        self.prefixed: list[tuple[str, _Rule]] = []

    def candidates(self, obj: str) -> list[_Rule]:
        found = list(self.exact.get(obj, ()))
        for prefix, rule in self.prefixed:
            if obj.startswith(prefix):
                found.append(rule)
        if len(found) > 1:
            found.sort(key=lambda r: r.index)
        return found


class CasbinPolicy:
    """A loaded casbin model + policy file; immutable once built.

    casbin parses the model and the policy, and owns role inheritance. Matching
    re-implements this model's matcher over an index, because pycasbin evaluates
    every line's ``eval()`` condition from source on every request (tens of ms
    per decision). The meaning is the matcher's: ``(p.sub == "*" || g(r.sub, p.sub))
    && keyMatch(r.obj, p.obj) && r.act == p.act && eval(p.cond)``, first matching
    line in file order; ``reference_match`` asks casbin itself, for differential tests.
    """

    def __init__(self, model_path: Path, policy_path: Path, *, include_shadow: bool = False) -> None:
        try:
            adapter = _LineAdapter(policy_path, include_shadow=include_shadow)
            self._enforcer = casbin.Enforcer(str(model_path), adapter)
        except FileNotFoundError as exc:
            raise PolicyError(f"policy file not found: {exc.filename}") from None
        except Exception as exc:  # casbin raises bare exceptions on bad models
            raise PolicyError(f"could not load policy {model_path} / {policy_path}: {exc}") from None
        if adapter.errors:
            raise PolicyError("; ".join(adapter.errors))
        self.has_shadow_rules = adapter.has_shadow
        self._rules = adapter.rules
        self._evaluator = simpleeval.SimpleEval()
        self._index: dict[str, _EffectIndex] = {effect: _EffectIndex() for effect in _EFFECTS}
        self._subject_roles: dict[str, frozenset[str]] = {}
        for position, tokens in enumerate(self._enforcer.get_policy()):
            sub, obj, act, cond, _note = tokens
            ref = self._rules[tuple(tokens)]
            rule = _Rule(position, sub, self._compile(cond, ref), ref)
            index = self._index[act]
            star = obj.find("*")
            if star == -1:
                index.exact.setdefault(obj, []).append(rule)
            else:
                index.prefixed.append((obj[:star], rule))

    def _compile(self, cond: str, ref: RuleRef) -> Any:
        text = cond.strip()
        if text == "True":
            return None
        try:
            return self._evaluator.parse(text.replace("r.ctx.", "r_ctx."))
        except SyntaxError as exc:
            raise PolicyError(f"{ref.location}: condition is not a valid expression: {exc.msg}") from None

    def effective_roles(self, roles: Sequence[str]) -> frozenset[str]:
        return frozenset().union(*(self._roles_of(role) for role in roles))

    def _roles_of(self, subject: str) -> frozenset[str]:
        roles = self._subject_roles.get(subject)
        if roles is None:
            roles = frozenset({subject, *self._enforcer.get_implicit_roles_for_user(subject)})
            if len(self._subject_roles) >= 10_000:  # one entry per principal: keep it bounded
                self._subject_roles.clear()
            self._subject_roles[subject] = roles
        return roles

    def _match(self, subjects: Sequence[str], obj: str, effect: str, ctx: ConditionContext) -> RuleRef | None:
        candidates = self._index[effect].candidates(obj)
        if not candidates:
            return None
        for subject in subjects:
            roles = self._roles_of(subject)
            for rule in candidates:
                if rule.subject != "*" and rule.subject not in roles:
                    continue
                if rule.condition is None or self._holds(rule, ctx):
                    return rule.ref
        return None

    def _all_matches(
        self, subjects: Sequence[str], obj: str, effect: str, ctx: ConditionContext
    ) -> list[RuleRef]:
        """Every matching rule (not just the first): the strictest escalation quorum must win."""
        found: list[RuleRef] = []
        for rule in self._index[effect].candidates(obj):
            if rule.subject != "*" and not any(rule.subject in self._roles_of(s) for s in subjects):
                continue
            if rule.condition is None or self._holds(rule, ctx):
                found.append(rule.ref)
        return found

    def _holds(self, rule: _Rule, ctx: ConditionContext) -> bool:
        self._evaluator.names = {"r_ctx": ctx}
        try:
            return bool(self._evaluator.eval("", previously_parsed=rule.condition))
        except Exception as exc:  # a condition that cannot be evaluated: fail closed
            raise PolicyError(f"{rule.ref.location}: could not evaluate the condition: {exc}") from None

    def reference_match(self, subject: str, obj: str, effect: str, ctx: ConditionContext) -> RuleRef | None:
        """casbin's own answer for one request (slow; for differential tests)."""
        ok, explain = self._enforcer.enforce_ex(subject, obj, effect, ctx)
        return (self._rules.get(tuple(explain)) or RuleRef("?", "")) if ok else None

    def decide(self, principal: Principal, tool: str, capabilities: Sequence[Capability]) -> Decision:
        subjects = (f"user:{principal.subject}", *principal.roles)
        objects: list[tuple[str, ConditionContext]] = [
            (f"tool:{tool}", ConditionContext(principal.subject, tool, f"tool:{tool}", {}))
        ]
        seen: set[tuple[str, tuple[tuple[str, float], ...]]] = set()
        for cap in capabilities:
            if (cap.name, cap.amounts) in seen:
                continue
            seen.add((cap.name, cap.amounts))
            objects.append((cap.name, ConditionContext(principal.subject, tool, cap.name, dict(cap.amounts))))
        for obj, ctx in objects:
            rule = self._match(subjects, obj, "deny", ctx)
            if rule is not None:
                reason = f"{obj} denied: {rule.note}" if rule.note else f"{obj} denied"
                return Decision(Outcome.DENY, "policy_denied", reason, rule.location, capability=obj)
        escalations = [
            (obj, rule) for obj, ctx in objects for rule in self._all_matches(subjects, obj, "escalate", ctx)
        ]
        if escalations:
            obj, rule = escalations[0]
            verb = "needs an operator's approval"
            reason = f"{obj} {verb}: {rule.note}" if rule.note else f"{obj} {verb}"
            quorum = max(r.quorum for _, r in escalations)  # the strictest rule that spoke
            return Decision(
                Outcome.ESCALATE,
                "approval_required",
                reason,
                rule.location,
                capability=obj,
                matched=tuple(r.location for _, r in escalations),
                quorum=quorum,
            )
        matched: list[str] = []
        unlisted: list[tuple[str, RuleRef]] = []
        for obj, ctx in objects:
            rule = self._match(subjects, obj, "allow", ctx)
            if rule is None and (fallback := self._match(subjects, obj, "unlisted", ctx)) is not None:
                unlisted.append((obj, fallback))
                continue
            if rule is None:
                roles = ", ".join(principal.roles) or "(no roles)"
                return Decision(
                    Outcome.DENY,
                    "not_allowed",
                    f"{obj} is not allowed: no rule grants it to {roles} (default deny)",
                    None,
                    capability=obj,
                    matched=tuple(matched),
                )
            matched.append(rule.location)
        if unlisted:
            obj, rule = unlisted[0]
            return Decision(
                Outcome.ESCALATE,
                "approval_required",
                f"{obj} is not on an allow-list: {rule.note}"
                if rule.note
                else f"{obj} is not on an allow-list",
                rule.location,
                capability=obj,
                matched=tuple(r.location for _, r in unlisted),
                quorum=max(r.quorum for _, r in unlisted),
            )
        return Decision(
            Outcome.ALLOW,
            "allowed",
            "the tool and every capability are allowed",
            matched[0],
            matched=tuple(matched),
        )

    def tool_visible(self, principal: Principal, tool: str) -> bool:
        subjects = (f"user:{principal.subject}", *principal.roles)
        obj = f"tool:{tool}"
        ctx = ConditionContext(principal.subject, tool, obj, {})
        try:
            if self._match(subjects, obj, "deny", ctx) is not None:
                return False
            return self._match(subjects, obj, "allow", ctx) is not None or (
                self._match(subjects, obj, "escalate", ctx) is not None
            )
        except PolicyError:
            return False

    # --- Introspection for the policy author's tools (lint, explain). Read-only; not on the hot path. ---

    def rules(self) -> Iterator[RuleInfo]:
        """Every ``p`` line in file order, with where it came from and its condition's text."""
        for position, tokens in enumerate(self._enforcer.get_policy()):
            sub, obj, act, cond, note = tokens
            ref = self._rules[tuple(tokens)]
            yield RuleInfo(position, ref.location, sub, obj, act, ref.quorum, cond.strip(), note)

    def role_links(self) -> list[tuple[str, str]]:
        """Every ``g`` line as (child, parent)."""
        return [(str(child), str(parent)) for child, parent, *_ in self._enforcer.get_grouping_policy()]

    def implicit_roles(self, subject: str) -> frozenset[str]:
        """The subject itself and every role it inherits through ``g`` lines."""
        return self._roles_of(subject)

    def condition_holds(self, rule: RuleInfo, ctx: ConditionContext) -> bool:
        """Evaluate one rule's condition for ``ctx``; raises PolicyError when it cannot be evaluated."""
        if rule.condition == "True":
            return True
        compiled = self._compile(rule.condition, RuleRef(rule.location, rule.note, rule.quorum))
        self._evaluator.names = {"r_ctx": ctx}
        try:
            return bool(self._evaluator.eval("", previously_parsed=compiled))
        except Exception as exc:
            raise PolicyError(f"{rule.location}: could not evaluate the condition: {exc}") from None


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """One ``p`` line as the policy author wrote it (effect without the ``:N`` quorum suffix)."""

    index: int  # position in file order
    location: str  # policy.csv:LINE
    subject: str
    pattern: str
    effect: str
    quorum: int
    condition: str
    note: str

    def matches_object(self, obj: str) -> bool:
        """casbin's keyMatch: everything before the first ``*`` is a prefix."""
        star = self.pattern.find("*")
        return obj == self.pattern if star == -1 else obj.startswith(self.pattern[:star])
