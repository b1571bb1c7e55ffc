"""Our indexed matcher must agree with casbin's own Enforcer on every request.

Gatekeeper loads policies with casbin but matches them through an index (pycasbin
re-evaluates every line's condition from source on every request). This test
generates random rule sets — exact names, keyMatch patterns, role inheritance,
wildcard subjects, all three effects, conditions — and compares, request by
request, the rule each side says matched.
"""

from __future__ import annotations

import random
from pathlib import Path

from gatekeeper.policy.casbin_engine import CasbinPolicy, ConditionContext

MODEL = Path(__file__).resolve().parents[2] / "policies" / "model.conf"
ROLES = ["r0", "r1", "r2", "r3", "r4"]
PATTERNS = ["a:x", "a:y", "b:x", "a:*", "b*", "*", "a:x*", "proc.exec:git", "proc.exec:*", "net.*"]
OBJECTS = ["a:x", "a:y", "a:", "a:xx", "b:x", "bz", "c", "proc.exec:git", "proc.exec:gitx", "net.tunnel"]
CONDITIONS = ["True", "r.ctx.gpus > 1", "r.ctx.gpus <= 4", "r.ctx.gpus > 1 and r.ctx.gpus < 6"]
EFFECTS = ["allow", "deny", "escalate"]


def _random_policy(rng: random.Random) -> str:
    lines = []
    for i in range(rng.randint(1, 25)):
        sub = rng.choice([*ROLES, "*", "user:u1"])
        lines.append(
            f"p, {sub}, {rng.choice(PATTERNS)}, {rng.choice(EFFECTS)}, {rng.choice(CONDITIONS)}, note {i}"
        )
    for _ in range(rng.randint(0, 5)):
        child, parent = sorted(rng.sample(ROLES, 2))  # child < parent: never a cycle
        lines.append(f"g, {child}, {parent}")
    rng.shuffle(lines)
    return "\n".join(lines) + "\n"


def test_indexed_matcher_agrees_with_casbin(tmp_path: Path) -> None:
    rng = random.Random(20261126)
    compared = 0
    for case in range(150):
        policy = tmp_path / f"policy-{case}.csv"
        policy.write_text(_random_policy(rng))
        engine = CasbinPolicy(MODEL, policy)
        for _ in range(12):
            subject = rng.choice([*ROLES, "user:u1", "nobody"])
            obj = rng.choice(OBJECTS)
            effect = rng.choice(EFFECTS)
            ctx = ConditionContext("u1", "t", obj, {"gpus": float(rng.randint(0, 8))})
            ours = engine._match((subject,), obj, effect, ctx)
            theirs = engine.reference_match(subject, obj, effect, ctx)
            assert (ours and ours.location) == (theirs and theirs.location), (
                policy.read_text(),
                subject,
                obj,
                effect,
                ctx.gpus,
            )
            compared += 1
    assert compared == 1800
