"""casbin behind our own typed boundary.

casbin answers yes/no for one (subject, object, action); Gatekeeper needs three
outcomes and the rule behind each. So we ask casbin once per effect
(deny, escalate, allow) for the tool and for every capability, and combine the
answers ourselves: deny > escalate > allow, and no answer means deny.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import casbin
import simpleeval
from casbin.persist import Adapter

from gatekeeper import codes

from ..errors import PolicyError
from ..models import Capability, Decision, Outcome, Principal, policy_object
from .policy_csv import RuleProblem, is_shadow, parse_rule, read_lines

logging.getLogger("casbin").setLevel(logging.WARNING)


class RuleRef:
    """Where a policy line came from, for decisions people can trace back."""

    __slots__ = ("location", "note", "quorum")

    def __init__(self, location: str, note: str, quorum: int = 1) -> None:
        self.location = location
        self.note = note
        self.quorum = quorum


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


# The one model this engine implements (casbin's own normalised text of policies/model.conf). Any
# other model would silently be matched with the wrong meaning, so it is refused at load.
_MODEL = {
    "r": "sub, obj, act, ctx",
    "p": "sub, obj, act, cond, note",
    "g": "_, _",
    "e": "some(where (p_eft == allow))",
    "m": '(p_sub == "*" || g(r_sub, p_sub)) && keyMatch(r_obj, p_obj) && r_act == p_act && eval(p_cond)',
}
# casbin's default role manager follows at most this many levels in ``g(r.sub, p.sub)``: the
# subject itself plus nine inherited levels. A longer chain does not match in casbin, nor here.
_MAX_HIERARCHY_LEVEL = 10
_ROLE_CACHE_MAX = 10_000  # one entry per principal: keep it bounded

# One lookup key's rules, every effect: a list in file order; or, once a key has many rules, a
# dict of them by subject, so that a request reads only its own roles' share. (A bare list, not
# a wrapper: at 100,000 rules lookups are bound by cache misses, one per object touched.)
_Bucket = list["_Rule"] | dict[str, list["_Rule"]]
_BY_SUBJECT_FROM = 8  # rules under one key before they are also indexed by subject
# A radix tree over keyMatch prefixes. A node is (edge label, first character -> child, the rules
# of the prefix that ends here); the root's label is "". A lookup follows one edge per branching
# point along the object, so its cost follows the object, not the number of prefixes.
_Node = tuple[str, dict[str, "_Node"], _Bucket | None]


def _bucket(rules: list[_Rule]) -> _Bucket:
    if len(rules) < _BY_SUBJECT_FROM:
        return rules
    by_subject: dict[str, list[_Rule]] = {}
    for rule in rules:
        by_subject.setdefault(rule.subject, []).append(rule)
    return by_subject


def _radix_tree(prefixed: dict[str, _Bucket]) -> _Node:
    """The radix tree of every prefix in ``prefixed`` (built without recursion: prefixes may be long)."""
    root: _Node = ("", {}, prefixed.get(""))
    # In sorted order a key never ends inside an existing edge: a prefix sorts before its extensions.
    for key in sorted(prefixed):
        if not key:
            continue
        edges = root[1]
        pos = 0
        while True:
            first = key[pos]
            child = edges.get(first)
            if child is None:
                edges[first] = (key[pos:], {}, prefixed[key])
                break
            label = child[0]
            common = 0
            limit = min(len(label), len(key) - pos)
            while common < limit and label[common] == key[pos + common]:
                common += 1
            if common == len(label):
                pos += common
                if pos == len(key):  # ends on an inner node (not in sorted order, but be safe)
                    edges[first] = (label, child[1], prefixed[key])
                    break
                edges = child[1]
                continue
            # split the edge at ``common``: a new inner node, carrying the key's rules if it ends there
            ends_here = pos + common == len(key)
            lower: _Node = (label[common:], child[1], child[2])
            inner: _Node = (label[:common], {label[common]: lower}, prefixed[key] if ends_here else None)
            edges[first] = inner
            if not ends_here:
                inner[1][key[pos + common]] = (key[pos + common :], {}, prefixed[key])
            break
    return root


class _ParsedPolicy:
    """The policy file as the engine loads it (``policy_csv`` reads it); each rule keeps its file:line."""

    def __init__(self, path: Path, model: Any, *, include_shadow: bool) -> None:
        self.has_shadow = False
        self.policy: list[list[str]] = []  # p lines, as casbin stores them (effect without ":N")
        self.links: list[list[str]] = []  # g lines
        self.rules: dict[tuple[str, ...], RuleRef] = {}
        self.errors: list[str] = []
        name = path.name
        for line in read_lines(path):
            number = line.number
            # A rule whose effect ends in "!shadow" is only in the shadow set: it is decided on
            # live traffic and recorded as "would ...", never enforced.
            if is_shadow(line):
                self.has_shadow = True
                if not include_shadow:
                    continue
            if line.fields is None:
                self.errors.append(f"{name}:{number}: could not parse this line")
                continue
            key = line.key
            if key not in model.model.get(key[:1], {}):
                self.errors.append(f"{name}:{number}: unknown line type {key!r}")
                continue
            if key == "g":
                if len(line.fields) < 2:
                    self.errors.append(
                        f"{name}:{number}: grouping policy elements do not meet role definition"
                    )
                    continue
                self.links.append(list(line.fields))
                continue
            if key != "p":
                continue  # casbin would file it under its own section, where nothing reads it
            rule = parse_rule(line)
            if rule is RuleProblem.FIELD_COUNT:
                self.errors.append(f"{name}:{number}: expected 'p, SUBJECT, OBJECT, EFFECT, CONDITION, NOTE'")
            elif rule is RuleProblem.EFFECT:
                self.errors.append(f"{name}:{number}: effect must be allow, deny, escalate or escalate:N")
            elif rule is RuleProblem.QUORUM:
                self.errors.append(f"{name}:{number}: escalate:N needs 1 to 10 approvers")
            else:
                tokens = rule.casbin_fields()  # casbin sees plain "escalate"; the quorum rides on the rule
                self.policy.append(tokens)
                self.rules[tuple(tokens)] = RuleRef(f"{name}:{number}", rule.note, rule.quorum)


# casbin ships no type hints: its Adapter is Any to mypy, and subclassing Any needs the ignore.
class _ReplayAdapter(Adapter):  # type: ignore[misc]
    """Hands casbin's reference ``Enforcer`` exactly the lines our engine loaded."""

    def __init__(self, policy: list[list[str]], links: list[list[str]]) -> None:
        self._policy = policy
        self._links = links

    def load_policy(self, model: Any) -> None:
        model.model["p"]["p"].policy.extend(list(tokens) for tokens in self._policy)
        model.model["g"]["g"].policy.extend(list(tokens) for tokens in self._links)


class _Rule:
    """One policy line, pre-digested for matching."""

    __slots__ = ("condition", "effect", "index", "ref", "subject")

    def __init__(self, index: int, subject: str, effect: str, condition: Any, ref: RuleRef) -> None:
        self.index = index
        self.subject = subject
        self.effect = effect
        self.condition = condition  # None means "True"; else a parsed simpleeval AST
        self.ref = ref


def _index_of(rule: _Rule) -> int:
    return rule.index


class CasbinPolicy:
    """A loaded casbin model + policy file; immutable once built.

    casbin's tokenizer reads the policy lines; matching re-implements the model's matcher over
    an index, because pycasbin evaluates every line's ``eval()`` condition from source on every
    request (tens of ms per decision at thousands of rules). The meaning is the matcher's:
    ``(p.sub == "*" || g(r.sub, p.sub)) && keyMatch(r.obj, p.obj) && r.act == p.act && eval(p.cond)``,
    first matching line in file order. ``reference_match`` asks a plain casbin ``Enforcer`` (built
    on first use), for differential tests.

    The index: exact objects in a dict and keyMatch prefixes (everything before the first ``*``)
    in a radix tree; each entry holds that key's rules of every effect in file order, grouped by
    subject once there are many. A lookup follows the object only as far as some prefix goes and
    reads only the request's roles' share: its cost follows the object's length and the number
    of roles, not the rule count. Role inheritance follows casbin's role manager, including its
    ten-level limit.
    """

    def __init__(self, model_path: Path, policy_path: Path, *, include_shadow: bool = False) -> None:
        # A big policy is hundreds of thousands of small containers and no cycles: the collector
        # would re-scan them over and over while they are built (half the load time at 100k rules).
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._load(model_path, policy_path, include_shadow)
        finally:
            if collecting:
                gc.enable()

    def _load(self, model_path: Path, policy_path: Path, include_shadow: bool) -> None:
        try:
            model = casbin.Enforcer.new_model(str(model_path))
            parsed = _ParsedPolicy(policy_path, model, include_shadow=include_shadow)
        except FileNotFoundError as exc:
            raise PolicyError(f"policy file not found: {exc.filename}") from None
        except Exception as exc:  # casbin raises bare exceptions on bad models
            raise PolicyError(f"could not load policy {model_path} / {policy_path}: {exc}") from None
        self._check_model(model, model_path)
        if parsed.errors:
            raise PolicyError("; ".join(parsed.errors))
        self._model_path = model_path
        self._reference: casbin.Enforcer | None = None
        self.has_shadow_rules = parsed.has_shadow
        self._policy = parsed.policy
        self._links = parsed.links
        self._rules = parsed.rules
        self._evaluator = simpleeval.SimpleEval()
        self._compiled: dict[str, Any] = {}
        self._parents: dict[str, list[str]] = {}
        for child, parent, *_ in parsed.links:
            parents = self._parents.setdefault(child, [])
            if parent not in parents:
                parents.append(parent)
        self._exact: dict[str, _Bucket] = {}
        self._trie: _Node = ("", {}, None)
        self._has_prefixes = False
        self._subject_roles: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        self._subjects_allowed: dict[tuple[str, ...], frozenset[str]] = {}
        self._build_index(parsed)

    def _build_index(self, parsed: _ParsedPolicy) -> None:
        exact: dict[str, list[_Rule]] = {}
        prefixed: dict[str, list[_Rule]] = {}
        for position, tokens in enumerate(parsed.policy):
            sub, obj, act, cond, _note = tokens
            ref = parsed.rules[tuple(tokens)]
            # Subjects and effects repeat across thousands of lines: one shared string each keeps
            # the index small and makes most comparisons identity checks.
            rule = _Rule(position, sys.intern(sub), sys.intern(act), self._compile(cond, ref), ref)
            star = obj.find("*")
            table, key = (exact, obj) if star == -1 else (prefixed, obj[:star])
            same = table.get(key)
            if same is None:
                table[key] = [rule]
            else:
                same.append(rule)
        self._exact = {key: _bucket(rules) for key, rules in exact.items()}
        self._trie = _radix_tree({key: _bucket(rules) for key, rules in prefixed.items()})
        self._has_prefixes = bool(prefixed)

    @staticmethod
    def _check_model(model: Any, model_path: Path) -> None:
        for sec, expected in _MODEL.items():
            assertion = model.model.get(sec, {}).get(sec)
            found = " ".join(str(assertion.value).split()) if assertion is not None else None
            if found != expected:
                raise PolicyError(
                    f"{model_path}: [{sec}] must be {expected!r} (found {found!r}): "
                    "Gatekeeper's matcher implements exactly this model"
                )

    def _compile(self, cond: str, ref: RuleRef) -> Any:
        text = cond.strip()
        if text == "True":
            return None
        compiled = self._compiled.get(text)
        if compiled is None:
            try:
                compiled = self._evaluator.parse(text.replace("r.ctx.", "r_ctx."))
            except SyntaxError as exc:
                raise PolicyError(f"{ref.location}: condition is not a valid expression: {exc.msg}") from None
            self._compiled[text] = compiled
        return compiled

    def effective_roles(self, roles: Sequence[str]) -> frozenset[str]:
        return frozenset().union(*(self._roles_of(role) for role in roles))

    def _role_sets(self, subject: str) -> tuple[frozenset[str], frozenset[str]]:
        """(the subject and its inherited roles, the same plus "*"): what ``p.sub`` may be."""
        sets = self._subject_roles.get(subject)
        if sets is None:
            # casbin's has_link: breadth first, the subject plus at most nine levels of parents.
            roles = {subject}
            level = [subject]
            for _ in range(_MAX_HIERARCHY_LEVEL - 1):
                upper = [p for name in level for p in self._parents.get(name, ()) if p not in roles]
                if not upper:
                    break
                roles.update(upper)
                level = upper
            sets = (frozenset(roles), frozenset((*roles, "*")))
            if len(self._subject_roles) >= _ROLE_CACHE_MAX:
                self._subject_roles.clear()
            self._subject_roles[subject] = sets
        return sets

    def _roles_of(self, subject: str) -> frozenset[str]:
        return self._role_sets(subject)[0]

    def _buckets(self, obj: str) -> list[_Bucket]:
        """Every index entry whose key matches ``obj``: its exact entry, then each prefix of it."""
        found: list[_Bucket] = []
        exact = self._exact.get(obj)
        if exact is not None:
            found.append(exact)
        if self._has_prefixes:
            _, edges, bucket = self._trie
            if bucket is not None:
                found.append(bucket)
            pos, end = 0, len(obj)
            while pos < end:
                node = edges.get(obj[pos])
                if node is None:
                    break
                label, edges, bucket = node
                if not obj.startswith(label, pos):
                    break
                pos += len(label)
                if bucket is not None:
                    found.append(bucket)
        return found

    def _allowed(self, subjects: Sequence[str]) -> frozenset[str]:
        """Every ``p.sub`` that matches one of ``subjects`` (their roles, inherited roles and "*")."""
        key = tuple(subjects)
        allowed = self._subjects_allowed.get(key)
        if allowed is None:
            allowed = frozenset().union(*(self._role_sets(s)[1] for s in subjects))
            if len(self._subjects_allowed) >= _ROLE_CACHE_MAX:
                self._subjects_allowed.clear()
            self._subjects_allowed[key] = allowed
        return allowed

    def _hits(self, obj: str, allowed: frozenset[str]) -> list[_Rule]:
        """The rules (every effect) whose object matches ``obj`` and whose subject is in ``allowed``.

        In file order; conditions are not evaluated here. A key with many rules is read through
        the request's own subjects, so its cost follows the request's roles, not the rule count.
        """
        found: list[_Rule] = []
        sources = 0
        for bucket in self._buckets(obj):
            if isinstance(bucket, list):
                for rule in bucket:
                    if rule.subject in allowed:
                        found.append(rule)
            else:
                for sub in allowed:
                    more = bucket.get(sub)
                    if more is not None:
                        found += more
                        sources += 1
            sources += 1
        if sources > 1 and len(found) > 1:
            found.sort(key=_index_of)
        return found

    def _pick(
        self, found: list[_Rule], effect: str, subjects: Sequence[str], ctx: ConditionContext
    ) -> RuleRef | None:
        """casbin's answer, subject by subject: the first rule in file order whose condition holds."""
        if not found:
            return None
        for subject in subjects:
            allowed = self._role_sets(subject)[1]
            for rule in found:
                if (
                    rule.effect == effect
                    and rule.subject in allowed
                    and (rule.condition is None or self._holds(rule, ctx))
                ):
                    return rule.ref
        return None

    def _pick_all(self, found: list[_Rule], effect: str, ctx: ConditionContext) -> list[RuleRef]:
        return [
            rule.ref
            for rule in found
            if rule.effect == effect and (rule.condition is None or self._holds(rule, ctx))
        ]

    def _match(self, subjects: Sequence[str], obj: str, effect: str, ctx: ConditionContext) -> RuleRef | None:
        """The first rule (file order) that matches, trying ``subjects`` in turn."""
        return self._pick(self._hits(obj, self._allowed(subjects)), effect, subjects, ctx)

    def _all_matches(
        self, subjects: Sequence[str], obj: str, effect: str, ctx: ConditionContext
    ) -> list[RuleRef]:
        """Every matching rule (not just the first): the strictest escalation quorum must win."""
        return self._pick_all(self._hits(obj, self._allowed(subjects)), effect, ctx)

    def _holds(self, rule: _Rule, ctx: ConditionContext) -> bool:
        self._evaluator.names = {"r_ctx": ctx}
        try:
            return bool(self._evaluator.eval("", previously_parsed=rule.condition))
        except Exception as exc:  # a condition that cannot be evaluated: fail closed
            raise PolicyError(f"{rule.ref.location}: could not evaluate the condition: {exc}") from None

    def reference_match(self, subject: str, obj: str, effect: str, ctx: ConditionContext) -> RuleRef | None:
        """casbin's own answer for one request (slow; for differential tests)."""
        if self._reference is None:
            self._reference = casbin.Enforcer(
                str(self._model_path), _ReplayAdapter(self._policy, self._links)
            )
        ok, explain = self._reference.enforce_ex(subject, obj, effect, ctx)
        return (self._rules.get(tuple(explain)) or RuleRef("?", "")) if ok else None

    def decide(
        self,
        principal: Principal,
        tool: str,
        capabilities: Sequence[Capability],
        *,
        tool_object: bool = True,
    ) -> Decision:
        subjects = (f"user:{principal.subject}", *principal.roles)
        objects: list[tuple[str, ConditionContext]] = []
        if tool_object:
            name = policy_object(tool)
            objects.append((name, ConditionContext(principal.subject, tool, name, {})))
        elif not capabilities:  # nothing to decide is no grant
            nothing = "nothing was asked: refused (default deny)"
            return Decision(Outcome.DENY, codes.NOT_ALLOWED, nothing, None)
        seen: set[tuple[str, tuple[tuple[str, float], ...]]] = set()
        for cap in capabilities:
            if (cap.name, cap.amounts) in seen:
                continue
            seen.add((cap.name, cap.amounts))
            objects.append((cap.name, ConditionContext(principal.subject, tool, cap.name, dict(cap.amounts))))
        allowed = self._allowed(subjects)
        lookups = [(obj, ctx, self._hits(obj, allowed)) for obj, ctx in objects]  # one index read per object
        for obj, ctx, hits in lookups:
            rule = self._pick(hits, "deny", subjects, ctx)
            if rule is not None:
                reason = f"{obj} denied: {rule.note}" if rule.note else f"{obj} denied"
                return Decision(Outcome.DENY, codes.POLICY_DENIED, reason, rule.location, capability=obj)
        escalations = [
            (obj, rule) for obj, ctx, hits in lookups for rule in self._pick_all(hits, "escalate", ctx)
        ]
        if escalations:
            obj, rule = escalations[0]
            verb = "needs an operator's approval"
            reason = f"{obj} {verb}: {rule.note}" if rule.note else f"{obj} {verb}"
            quorum = max(r.quorum for _, r in escalations)  # the strictest rule that spoke
            strictest = next(r for _, r in escalations if r.quorum == quorum)
            return Decision(
                Outcome.ESCALATE,
                codes.APPROVAL_REQUIRED,
                reason,
                rule.location,
                capability=obj,
                matched=tuple(r.location for _, r in escalations),
                quorum=quorum,
                quorum_rule=strictest.location if quorum > 1 else None,
            )
        matched: list[str] = []
        unlisted: list[tuple[str, RuleRef]] = []
        for obj, ctx, hits in lookups:
            rule = self._pick(hits, "allow", subjects, ctx)
            if rule is None and (fallback := self._pick(hits, "unlisted", subjects, ctx)) is not None:
                unlisted.append((obj, fallback))
                continue
            if rule is None:
                roles = ", ".join(principal.roles) or "(no roles)"
                return Decision(
                    Outcome.DENY,
                    codes.NOT_ALLOWED,
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
                codes.APPROVAL_REQUIRED,
                f"{obj} is not on an allow-list: {rule.note}"
                if rule.note
                else f"{obj} is not on an allow-list",
                rule.location,
                capability=obj,
                matched=tuple(r.location for _, r in unlisted),
                quorum=max(r.quorum for _, r in unlisted),
                quorum_rule=max(unlisted, key=lambda u: u[1].quorum)[1].location
                if max(r.quorum for _, r in unlisted) > 1
                else None,
            )
        return Decision(
            Outcome.ALLOW,
            codes.ALLOWED,
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
        for position in range(len(self._policy)):
            yield self._info(position)

    def _info(self, position: int) -> RuleInfo:
        tokens = self._policy[position]
        sub, obj, act, cond, note = tokens
        ref = self._rules[tuple(tokens)]
        return RuleInfo(position, ref.location, sub, obj, act, ref.quorum, cond.strip(), note)

    def matches(
        self, principal: Principal, obj: str, ctx: ConditionContext
    ) -> list[tuple[RuleInfo, bool | str]]:
        """The rules ``decide`` chooses from for ``obj``: found through the engine's own index
        (object and subject match, every effect, file order), each with its condition's result
        (``"error: ..."`` when it cannot be evaluated, which ``decide`` turns into a refusal)."""
        subjects = (f"user:{principal.subject}", *principal.roles)
        found: list[tuple[RuleInfo, bool | str]] = []
        for rule in self._hits(obj, self._allowed(subjects)):
            result: bool | str = True
            if rule.condition is not None:
                try:
                    result = self._holds(rule, ctx)
                except PolicyError as exc:
                    result = f"error: {exc.message}"
            found.append((self._info(rule.index), result))
        return found

    def role_links(self) -> list[tuple[str, str]]:
        """Every ``g`` line as (child, parent)."""
        return [(str(child), str(parent)) for child, parent, *_ in self._links]

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
