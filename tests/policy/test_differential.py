"""Our indexed matcher must agree with casbin's own Enforcer on every request.

Gatekeeper loads policies with casbin's tokenizer but matches them through an index (pycasbin
re-evaluates every line's condition from source on every request). These tests generate
thousands of random rule sets (exact names, keyMatch patterns with ``*`` anywhere, role chains
up to and beyond casbin's ten-level limit, ``*`` and ``user:`` subjects, every effect including
``escalate:N`` and ``unlisted``, conditions, some that cannot be evaluated) and compare, request
by request, the rule each side says matched: ``reference_match`` asks a plain casbin ``Enforcer``
loaded with the same model and the same lines.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable
from pathlib import Path

import casbin
import pytest
import simpleeval
from casbin.persist.adapters import FileAdapter

from gatekeeper.errors import PolicyError
from gatekeeper.models import Capability, Outcome, Principal
from gatekeeper.policy.casbin_engine import CasbinPolicy, ConditionContext, RuleRef

MODEL = Path(__file__).resolve().parents[2] / "policies" / "model.conf"
ROLES = [f"r{i}" for i in range(14)]
USERS = ["user:u1", "user:u2"]
PATTERNS = [
    *("a:x", "a:y", "b:x", "a:", "proc.exec:git", "net.tunnel", "(x)", "tool:t"),  # exact
    *("a:*", "b*", "*", "a:x*", "proc.exec:*", "net.*", "tool:*", "a*b", "*x", "a:*:y", "**", "a:x**"),
]
OBJECTS = [
    *("a:x", "a:y", "a:", "a", "a:xx", "a:x:y", "ab", "axb", "b:x", "bz", "b", "c", "", "x", "*"),
    *("a*b", "proc.exec:git", "proc.exec:gitx", "proc.exec", "net.tunnel", "net.", "net", "(x)", "tool:t"),
]
CONDITIONS = [
    *("True", "True", "True", "r.ctx.gpus > 1", "r.ctx.gpus <= 4", "r.ctx.gpus > 1 and r.ctx.gpus < 6"),
    "(r.ctx.gpus > 2) and (r.ctx.gpus < 7)",  # brackets: casbin's nesting-aware tokenizer
]
# what every object carries, tool or capability: for whole decisions
CALL_CONDITIONS = ["True", "True", "r.ctx.subject == 'u1'", "r.ctx.tool != 'x'", "r.ctx.capability != 'b:x'"]
RAISING = "r.ctx.missing > 1"  # cannot be evaluated: both sides must fail
EFFECTS = ["allow", "deny", "escalate", "escalate:2", "unlisted"]
ASKED = ["allow", "deny", "escalate", "unlisted"]


def _random_policy(
    rng: random.Random,
    *,
    raising: bool,
    asked: list[tuple[str, str]] | None = None,
    conditions: list[str] = CONDITIONS,
) -> str:
    """A random policy; ``asked`` collects (object, effect) pairs near its rules, to ask about."""
    lines = []
    for i in range(rng.randint(1, 18)):
        sub = rng.choice([*ROLES[:6], *ROLES[:3], "*", "*", *USERS])
        cond = RAISING if raising and rng.random() < 0.08 else rng.choice(conditions)
        pattern, effect = rng.choice(PATTERNS), rng.choice(EFFECTS)
        lines.append(f"p, {sub}, {pattern}, {effect}, {cond}, note {i}")
        if asked is not None:
            near = pattern.replace("*", rng.choice(["", "x", "zz", ":y", "*"]), 1)
            asked.append((rng.choice([near, near[:-1], near + "x"]), effect.partition(":")[0]))
    shape = rng.random()
    if shape < 0.15:  # one long chain: casbin follows g(r.sub, p.sub) at most ten levels deep
        chain = list(ROLES)
        rng.shuffle(chain)
        lines += [f"g, {child}, {parent}" for child, parent in itertools.pairwise(chain)]
    else:
        for _ in range(rng.randint(0, 7)):
            child, parent = rng.sample(ROLES[:8], 2)  # cycles allowed: casbin copes, so must we
            lines.append(f"g, {child}, {parent}")
        if rng.random() < 0.3:
            lines.append(f"g, {rng.choice(USERS)}, {rng.choice(ROLES[:6])}")
    rng.shuffle(lines)
    return "\n".join(lines) + "\n"


def _loc(ref: RuleRef | None) -> str | None:
    return ref.location if ref is not None else None


def _reference(
    engine: CasbinPolicy, subjects: tuple[str, ...], obj: str, effect: str, ctx: ConditionContext
) -> str | None:
    """casbin, subject by subject: the engine's documented meaning for several subjects."""
    for subject in subjects:
        ref = engine.reference_match(subject, obj, effect, ctx)
        if ref is not None:
            return ref.location
    return None


def _outcome(call: Callable[..., object], *args: object) -> tuple[str, object]:
    """("ok", answer), or ("raises", None) when a condition cannot be evaluated."""
    try:
        return ("ok", call(*args))
    except (PolicyError, simpleeval.AttributeDoesNotExist):  # ours, casbin's
        return ("raises", None)


def _ours(
    engine: CasbinPolicy, subjects: tuple[str, ...], obj: str, effect: str, ctx: ConditionContext
) -> str | None:
    return _loc(engine._match(subjects, obj, effect, ctx))


def _every(
    engine: CasbinPolicy, subjects: tuple[str, ...], obj: str, effect: str, ctx: ConditionContext
) -> str | None:
    every = engine._all_matches(subjects, obj, effect, ctx)
    return every[0].location if every else None


def test_indexed_matcher_agrees_with_casbin(tmp_path: Path) -> None:
    rng = random.Random(20261126)
    compared = raised = matched = 0
    for case in range(1000):
        asked: list[tuple[str, str]] = []
        text = _random_policy(rng, raising=case % 3 == 0, asked=asked)
        policy = tmp_path / f"policy-{case}.csv"
        policy.write_text(text)
        engine = CasbinPolicy(MODEL, policy)
        for _ in range(12):
            if rng.random() < 0.25:
                subjects: tuple[str, ...] = (rng.choice(USERS), *rng.sample(ROLES, rng.randint(1, 2)))
            else:
                subjects = (rng.choice([*ROLES[:8], *ROLES[:8], *ROLES, *USERS, "nobody"]),)
            obj, effect = (
                rng.choice(asked) if rng.random() < 0.6 else (rng.choice(OBJECTS), rng.choice(ASKED))
            )
            ctx = ConditionContext("u1", "t", obj, {"gpus": float(rng.randint(0, 8))})
            ours = _outcome(_ours, engine, subjects, obj, effect, ctx)
            theirs = _outcome(_reference, engine, subjects, obj, effect, ctx)
            assert ours == theirs, (text, subjects, obj, effect, ctx.gpus)
            every = _outcome(_every, engine, subjects, obj, effect, ctx)
            if len(subjects) == 1 and every[0] == "ok":  # every match starts with casbin's first
                assert every == ours, (text, subjects, obj, effect)
            compared += 1
            raised += ours[0] == "raises"
            matched += ours[1] is not None
    assert compared == 1000 * 12
    assert raised > 30 and matched > 2000, (raised, matched)  # the generator exercises both sides


def test_rule_tokens_are_casbins(tmp_path: Path) -> None:
    """The lines we index are the lines casbin's own FileAdapter reads (same tokenizer)."""
    rng = random.Random(7)
    for case in range(200):
        text = _random_policy(rng, raising=False).replace("escalate:2", "escalate")
        policy = tmp_path / f"policy-{case}.csv"
        policy.write_text(text)
        engine = CasbinPolicy(MODEL, policy)
        plain = casbin.Enforcer(str(MODEL), FileAdapter(str(policy)))
        ours = [[r.subject, r.pattern, r.effect, r.condition, r.note] for r in engine.rules()]
        assert ours == plain.get_policy()
        assert engine.role_links() == [(c, p) for c, p, *_ in plain.get_grouping_policy()]
        for role in ROLES:
            # casbin's enforcement follows at most ten levels; its implicit-roles walk has no limit
            assert engine.implicit_roles(role) <= {role, *plain.get_implicit_roles_for_user(role)}


def _reference_decide(
    engine: CasbinPolicy, subjects: tuple[str, ...], objects: list[tuple[str, ConditionContext]]
) -> tuple[Outcome, str | None, str | None]:
    """Gatekeeper's combination (deny > escalate > allow/unlisted > default deny) over casbin's answers."""

    def first_over_subjects(obj: str, effect: str, ctx: ConditionContext) -> str | None:
        # the earliest line for any of the subjects (escalations report the first in file order)
        found = [engine.reference_match(s, obj, effect, ctx) for s in subjects]
        lines = [r.location for r in found if r is not None]
        return min(lines, key=lambda loc: int(loc.rsplit(":", 1)[1])) if lines else None

    for obj, ctx in objects:
        if (rule := _reference(engine, subjects, obj, "deny", ctx)) is not None:
            return (Outcome.DENY, obj, rule)
    for obj, ctx in objects:
        if (rule := first_over_subjects(obj, "escalate", ctx)) is not None:
            return (Outcome.ESCALATE, obj, rule)
    unlisted: list[tuple[str, str]] = []
    first_allow: str | None = None
    for obj, ctx in objects:
        rule = _reference(engine, subjects, obj, "allow", ctx)
        if rule is None and (fallback := _reference(engine, subjects, obj, "unlisted", ctx)) is not None:
            unlisted.append((obj, fallback))
            continue
        if rule is None:
            return (Outcome.DENY, obj, None)
        first_allow = first_allow or rule
    if unlisted:
        return (Outcome.ESCALATE, unlisted[0][0], unlisted[0][1])
    return (Outcome.ALLOW, None, first_allow)


def test_decisions_agree_with_casbin(tmp_path: Path) -> None:
    """Whole decisions (tool plus capabilities, every effect) against casbin's answers, combined."""
    rng = random.Random(6)
    outcomes: set[Outcome] = set()
    for case in range(250):
        text = _random_policy(rng, raising=False, conditions=CALL_CONDITIONS).replace("tool:t", "tool:a:x")
        policy = tmp_path / f"policy-{case}.csv"
        policy.write_text(text)
        engine = CasbinPolicy(MODEL, policy)
        for _ in range(4):
            principal = Principal(
                rng.choice(["u1", "u2", "u3"]), tuple(rng.sample(ROLES[:8], rng.randint(0, 2))), "i", 0
            )
            tool = rng.choice(["a:x", "t", "x"])
            caps = [
                Capability(rng.choice(OBJECTS), amounts=(("gpus", float(rng.randint(0, 8))),))
                for _ in range(rng.randint(0, 3))
            ]
            decision = engine.decide(principal, tool, caps)
            subjects = (f"user:{principal.subject}", *principal.roles)
            objects = [(f"tool:{tool}", ConditionContext(principal.subject, tool, f"tool:{tool}", {}))]
            seen = set()
            for cap in caps:
                if (cap.name, cap.amounts) not in seen:
                    seen.add((cap.name, cap.amounts))
                    objects.append(
                        (cap.name, ConditionContext(principal.subject, tool, cap.name, dict(cap.amounts)))
                    )
            expected = _reference_decide(engine, subjects, objects)
            assert (decision.outcome, decision.capability, decision.rule) == expected, (
                text,
                principal,
                tool,
                caps,
            )
            outcomes.add(decision.outcome)
    assert outcomes == {Outcome.ALLOW, Outcome.DENY, Outcome.ESCALATE}


@pytest.mark.parametrize("depth", [8, 9, 10, 11])
def test_role_chains_stop_where_casbins_do(tmp_path: Path, depth: int) -> None:
    """casbin's role manager follows nine inherited levels; a rule further up does not apply."""
    chain = [f"l{i}" for i in range(depth + 1)]
    lines = [f"g, {child}, {parent}" for child, parent in itertools.pairwise(chain)]
    policy = tmp_path / "chain.csv"
    policy.write_text("\n".join([f"p, {chain[-1]}, tool:t, allow, True, top", *lines]) + "\n")
    engine = CasbinPolicy(MODEL, policy)
    ctx = ConditionContext("u", "t", "tool:t", {})
    ours = _loc(engine._match(("l0",), "tool:t", "allow", ctx))
    assert ours == _loc(engine.reference_match("l0", "tool:t", "allow", ctx))
    assert (ours is not None) == (depth <= 9)


def test_a_model_with_another_matcher_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "model.conf"
    model.write_text(re.sub(r"keyMatch\(r\.obj, p\.obj\)", "r.obj == p.obj", MODEL.read_text()))
    policy = tmp_path / "policy.csv"
    policy.write_text("p, agent, tool:t, allow, True, ok\n")
    with pytest.raises(PolicyError, match="matcher implements exactly this model"):
        CasbinPolicy(model, policy)
