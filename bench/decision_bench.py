"""Decision engine benchmark: Gatekeeper's casbin engine beside pycasbin, FastEnforcer, Cedar and Rego.

    python3 bench/decision_bench.py                 # everything (about two minutes)
    python3 bench/decision_bench.py --quick         # fewer samples, no 100,000-rule anchors
    python3 bench/decision_bench.py --sizes 10,1000 --no-anchors

Prints, in one run: per-decision p50/p99 at 10 / 1,000 / 10,000 / 100,000 rules for Gatekeeper
(``CasbinPolicy.decide``: the tool and every capability, every effect) and per query (one
subject, object, effect: what one ``enforce`` answers) for Gatekeeper and the anchors on the same
rules; load time and resident memory with 100,000 rules (in a fresh child process); cold and
cached RS256 token verification; JSON-schema validation and the inspectors for typical calls;
and how the gate's cost grows with the arguments (1 KB -> 1 MB bodies, 10 -> 10,000-token
commands, uncached). In process, loopback only, no network. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from gatekeeper.models import Capability, Principal
from gatekeeper.policy.casbin_engine import CasbinPolicy, ConditionContext

MODEL = ROOT / "policies" / "model.conf"
SIZES = (10, 1_000, 10_000, 100_000)


@dataclass(frozen=True)
class Request:
    roles: tuple[str, ...]
    user: str
    tool: str
    capabilities: tuple[tuple[str, tuple[tuple[str, float], ...]], ...]


def _word(rng: random.Random, low: int, high: int) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(low, high)))


KINDS = ("tool", "net", "files", "deny-host", "tool", "escalate", "files", "deny-secret", "gpu", "user")
# one line in 40 is a "*" deny on a pattern (exec hooks); it replaces a "tool" line
HOOK_EVERY = 40


def make_policy(n: int, seed: int = 6) -> tuple[str, list[Request]]:
    """``n`` p lines mixing exact names, keyMatch patterns, role inheritance and deny rules.

    Roles form a 4-ary tree (``g, role{k}, role{(k-1)//4}``: 3 levels at 1,000 rules, 5 at
    100,000), so a request from a deep role inherits the rules of every ancestor. The ``g`` lines
    come on top of the ``n`` rules. Requests are built from the rules (mostly allowed calls, which
    walk every effect for every object), with some that hit deny and escalate rules.
    """
    rng = random.Random(seed * 1_000_003 + n)
    n_roles = max(4, n // 100)
    n_svc = max(3, n // 20)
    dirs = [_word(rng, 1, 12) for _ in range(64)]  # sub-directories of every length: many prefix lengths
    lines: list[str] = []
    tools: list[tuple[int, str]] = []  # (role, tool) of the allow rules
    allowed: dict[int, list[tuple[str, tuple[tuple[str, float], ...]]]] = {}  # role -> allowed objects
    for i in range(n):
        r = rng.randrange(n_roles)
        role = f"role{r}"
        svc = rng.randrange(n_svc)
        kind = KINDS[i % len(KINDS)]  # the same mix at every size: 10 rules hold one of each
        if i % HOOK_EVERY == HOOK_EVERY - 1:
            kind = "deny-hook"
        if kind == "tool":
            tool = f"svc{svc}.op{rng.randrange(4)}"
            tools.append((r, tool))
            lines.append(f"p, {role}, tool:{tool}, allow, True, tool {i}")
        elif kind == "net":
            allowed.setdefault(r, []).append((f"net.http:host{svc}.example:443", ()))
            lines.append(f"p, {role}, net.http:host{svc}.example:443, allow, True, egress {i}")
        elif kind == "files":
            folder = f"/data/svc{svc}/{rng.choice(dirs)}/"
            allowed.setdefault(r, []).append((f"fs.read:{folder}f{i}.txt", ()))
            lines.append(f"p, {role}, fs.read:{folder}*, allow, True, files {i}")
        elif kind == "user":
            user, tool = f"u{rng.randrange(n_roles)}", f"svc{svc}.op{rng.randrange(4)}"
            lines.append(f"p, user:{user}, tool:{tool}, allow, True, u {i}")
        elif kind == "deny-host":
            lines.append(f"p, *, net.http:bad{svc}.example:443, deny, True, blocked host {i}")
        elif kind == "deny-secret":
            lines.append(
                f"p, {role}, fs.read:/data/svc{svc}/{rng.choice(dirs)}/secret*, deny, True, secrets {i}"
            )
        elif kind == "deny-hook":
            lines.append(f"p, *, proc.exec_hook:{_word(rng, 1, 8)}*, deny, True, hook {i}")
        elif kind == "escalate":
            cond = "r.ctx.gpus > 2 or r.ctx.gpu_hours > 16"
            lines.append(f"p, {role}, compute.gpu:svc{svc}*, escalate, {cond}, gpus {i}")
        else:  # "gpu": an allow rule with a condition
            gpus = (("gpus", float(rng.randint(1, 4))), ("gpu_hours", 4.0))
            allowed.setdefault(r, []).append((f"compute.gpu:svc{svc}", gpus))
            lines.append(f"p, {role}, compute.gpu:svc{svc}*, allow, r.ctx.gpus <= 4, small gpu {i}")
    for k in range(1, n_roles):
        lines.append(f"g, role{k}, role{(k - 1) // 4}")
    if not tools:
        tools.append((0, "svc0.op0"))
    requests: list[Request] = []
    for _ in range(2000):
        r, tool = rng.choice(tools)
        for _ in range(rng.randint(0, 3)):  # a descendant: inherits the rule through g lines
            child = 4 * r + 1 + rng.randrange(4)
            if child < n_roles:
                r = child
        ancestors = [r]
        while ancestors[-1] > 0:
            ancestors.append((ancestors[-1] - 1) // 4)
        caps: list[tuple[str, tuple[tuple[str, float], ...]]] = []
        for _ in range(rng.randint(1, 2)):
            pool = allowed.get(rng.choice(ancestors))
            if pool and rng.random() < 0.85:
                caps.append(rng.choice(pool))
            else:  # something else: a secret, a blocked host, a big GPU request, or nothing
                svc = rng.randrange(n_svc)
                caps.append(
                    rng.choice(
                        [
                            (f"fs.read:/data/svc{svc}/{rng.choice(dirs)}/secret.txt", ()),
                            (f"net.http:bad{svc}.example:443", ()),
                            (f"compute.gpu:svc{svc}", (("gpus", 8.0), ("gpu_hours", 64.0))),
                            (f"net.http:other{svc}.example:443", ()),
                        ]
                    )
                )
        requests.append(Request((f"role{r}",), f"u{rng.randrange(n_roles)}", tool, tuple(caps)))
    return "\n".join(lines) + "\n", requests


# --------------------------------------------------------------------------------------------
# Measuring


def percentiles(samples_ns: Sequence[float]) -> tuple[float, float]:
    """(p50, p99) in microseconds."""
    ordered = sorted(samples_ns)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return ordered[len(ordered) // 2] / 1000, p99 / 1000


def time_each(fn: Callable[[Any], object], items: Sequence[Any], *, passes: int = 1) -> list[float]:
    """Nanoseconds per call, each call timed on its own."""
    clock = time.perf_counter_ns
    out: list[float] = []
    for _ in range(passes):
        for item in items:
            start = clock()
            fn(item)
            out.append(clock() - start)
    return out


def time_bounded(
    fn: Callable[[Any], object], items: Sequence[Any], budget_s: float, max_n: int
) -> list[float]:
    """Like time_each, but stops after ``budget_s`` seconds (at least 3 samples) or ``max_n`` calls."""
    clock = time.perf_counter_ns
    out: list[float] = []
    deadline = time.monotonic() + budget_s
    for item in items[:max_n]:
        start = clock()
        fn(item)
        out.append(clock() - start)
        if len(out) >= 3 and time.monotonic() > deadline:
            break
    return out


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def fmt(p: tuple[float, float] | None, n: int | None = None) -> str:
    if p is None:
        return "—"
    text = f"{p[0]:,.1f} / {p[1]:,.1f}"
    return f"{text} (n={n})" if n is not None and n < 100 else text


# --------------------------------------------------------------------------------------------
# Gatekeeper


@dataclass
class EngineRow:
    size: int
    load_s: float
    decide: tuple[float, float]
    query: tuple[float, float]
    outcomes: Counter[str]


def gatekeeper_row(n: int, policy: Path, requests: list[Request], passes: int) -> EngineRow:
    start = time.perf_counter()
    engine = CasbinPolicy(MODEL, policy)
    load_s = time.perf_counter() - start
    calls = [
        (
            Principal(r.user, r.roles, "bench", 0.0),
            r.tool,
            [Capability(c, amounts=a) for c, a in r.capabilities],
        )
        for r in requests
    ]
    outcomes: Counter[str] = Counter()
    for call in calls:  # warm: principals' role sets are cached after their first call, as in service
        outcomes[engine.decide(*call).outcome.value] += 1
    decide = percentiles(time_each(lambda c: engine.decide(*c), calls, passes=passes))
    queries = query_set(requests)
    match = engine._match
    ctxs = [(q[0], q[1], q[2], ConditionContext("u", "t", q[1], q[3])) for q in queries]
    query = percentiles(time_each(lambda q: match((q[0],), q[1], q[2], q[3]), ctxs, passes=passes))
    return EngineRow(n, load_s, decide, query, outcomes)


def query_set(requests: list[Request]) -> list[tuple[str, str, str, dict[str, float]]]:
    """One (role, object, effect, amounts) query per request: what one casbin ``enforce`` answers."""
    rng = random.Random(3)
    out = []
    for r in requests:
        obj, amounts = rng.choice([(f"tool:{r.tool}", ()), *r.capabilities])
        out.append((r.roles[0], obj, rng.choice(["allow", "allow", "deny", "escalate"]), dict(amounts)))
    return out


# --------------------------------------------------------------------------------------------
# Anchors: pycasbin Enforcer / FastEnforcer, cedarpy, regopy, on the same rules


@dataclass
class AnchorCell:
    load_s: float
    p: tuple[float, float] | None
    samples: int
    note: str = ""


def casbin_anchor(policy: Path, requests: list[Request], budget_s: float, *, fast: bool) -> AnchorCell:
    import casbin

    start = time.perf_counter()
    if fast:
        # FastEnforcer filters the policy by exact values of the listed request columns before
        # matching. Only ``act`` (2) is exact in this model: sub has roles and "*", obj has patterns.
        enforcer: Any = casbin.FastEnforcer(str(MODEL), str(policy), cache_key_order=[2])
    else:
        enforcer = casbin.Enforcer(str(MODEL), str(policy))
    load_s = time.perf_counter() - start
    queries = [(q[0], q[1], q[2], ConditionContext("u", "t", q[1], q[3])) for q in query_set(requests)]
    enforcer.enforce(*queries[0])
    samples = time_bounded(lambda q: enforcer.enforce(*q), queries, budget_s, 400)
    return AnchorCell(load_s, percentiles(samples), len(samples))


def cedar_text(policy_text: str) -> tuple[str, list[dict[str, Any]]]:
    """The same rules in Cedar: one ``permit`` per casbin line, the effect as the action (as in
    casbin's ``r.act == p.act``), roles as a ``Role`` entity hierarchy, the object and the
    amounts in the context (``like`` for keyMatch patterns, which all end in ``*`` here)."""
    policies: list[str] = []
    parents: dict[str, list[str]] = {}
    for line in policy_text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if parts[0] == "g":
            parents.setdefault(parts[1], []).append(parts[2])
            parents.setdefault(parts[2], [])
            continue
        _, sub, obj, act, cond, _note = parts
        if sub == "*":
            who = "principal"
        elif sub.startswith("user:"):
            who = f'principal == User::"{sub[5:]}"'
        else:
            who = f'principal in Role::"{sub}"'
            parents.setdefault(sub, [])
        what = f'context.obj like "{obj}"' if "*" in obj else f'context.obj == "{obj}"'
        if cond != "True":
            what += " && (" + cond.replace("r.ctx.", "context.").replace(" or ", " || ") + ")"
        policies.append(f'permit({who}, action == Action::"{act}", resource) when {{ {what} }};')
    entities = [
        {
            "uid": {"type": "Role", "id": role},
            "attrs": {},
            "parents": [{"type": "Role", "id": p} for p in ups],
        }
        for role, ups in parents.items()
    ]
    return "\n".join(policies), entities


def cedar_anchor(policy_text: str, requests: list[Request], budget_s: float) -> AnchorCell:
    import cedarpy

    start = time.perf_counter()
    text, entity_list = cedar_text(policy_text)
    policies = cedarpy.PolicySet.from_str(text)
    entities = cedarpy.Entities.from_json_str(json.dumps(entity_list))
    load_s = time.perf_counter() - start
    queries = []
    for sub, obj, act, amounts in query_set(requests):
        context: dict[str, Any] = {"obj": obj, **{k: int(v) for k, v in amounts.items()}}
        context.setdefault("gpus", 0)
        context.setdefault("gpu_hours", 0)
        queries.append(
            {
                "principal": f'Role::"{sub}"',
                "action": f'Action::"{act}"',
                "resource": 'Obj::"x"',
                "context": context,
            }
        )
    cedarpy.is_authorized(queries[0], policies, entities)
    samples = time_bounded(lambda q: cedarpy.is_authorized(q, policies, entities), queries, budget_s, 400)
    return AnchorCell(load_s, percentiles(samples), len(samples))


REGO = """package gk

import rego.v1

default allow := false

roles := graph.reachable(data.parents, [input.sub])

sub_ok(s) if s == "*"

sub_ok(s) if roles[s]

obj_ok(r) if {
	not r.prefix
	r.obj == input.obj
}

obj_ok(r) if {
	r.prefix
	startswith(input.obj, r.obj)
}

cond_ok(r) if r.cond == 0

cond_ok(r) if {
	r.cond == 1
	input.gpus > 2
}

cond_ok(r) if {
	r.cond == 1
	input.gpu_hours > 16
}

cond_ok(r) if {
	r.cond == 2
	input.gpus <= 4
}

allow if {
	some r in data.rules
	r.act == input.act
	sub_ok(r.sub)
	obj_ok(r)
	cond_ok(r)
}
"""
REGO_CONDITIONS = {"True": 0, "r.ctx.gpus > 2 or r.ctx.gpu_hours > 16": 1, "r.ctx.gpus <= 4": 2}


def rego_anchor(policy_text: str, requests: list[Request], budget_s: float) -> AnchorCell:
    """The same rules as Rego data, matched by one generic Rego policy (the usual way to hold
    thousands of rules in OPA): keyMatch as ``startswith``, roles through ``graph.reachable``."""
    import regopy

    start = time.perf_counter()
    rules: list[dict[str, Any]] = []
    parents: dict[str, list[str]] = {}
    for line in policy_text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if parts[0] == "g":
            parents.setdefault(parts[1], []).append(parts[2])
            continue
        _, sub, obj, act, cond, _note = parts
        star = obj.find("*")
        rules.append(
            {
                "sub": sub,
                "obj": obj if star == -1 else obj[:star],
                "prefix": star != -1,
                "act": act,
                "cond": REGO_CONDITIONS[cond],
            }
        )
    interpreter = regopy.Interpreter()
    interpreter.add_module("gk", REGO)
    interpreter.add_data_json(json.dumps({"rules": rules, "parents": parents}))
    load_s = time.perf_counter() - start

    def ask(q: tuple[str, str, str, dict[str, float]]) -> bool:
        interpreter.set_input({"sub": q[0], "obj": q[1], "act": q[2], "gpus": 0, "gpu_hours": 0, **q[3]})
        return "true" in str(interpreter.query("data.gk.allow"))

    queries = query_set(requests)
    ask(queries[0])
    samples = time_bounded(ask, queries, budget_s, 400)
    return AnchorCell(load_s, percentiles(samples), len(samples))


def check_anchor_agreement(policy: Path, policy_text: str, requests: list[Request]) -> str:
    """On the small policy, every anchor must give Gatekeeper's yes/no for every query."""
    engine = CasbinPolicy(MODEL, policy)
    queries = query_set(requests)[:200]
    ours = [
        engine._match((q[0],), q[1], q[2], ConditionContext("u", "t", q[1], q[3])) is not None
        for q in queries
    ]
    notes = []
    try:
        import cedarpy

        text, entity_list = cedar_text(policy_text)
        ps, es = cedarpy.PolicySet.from_str(text), cedarpy.Entities.from_json_str(json.dumps(entity_list))
        theirs = []
        for sub, obj, act, amounts in queries:
            ctx: dict[str, Any] = {
                "obj": obj,
                "gpus": 0,
                "gpu_hours": 0,
                **{k: int(v) for k, v in amounts.items()},
            }
            req = {
                "principal": f'Role::"{sub}"',
                "action": f'Action::"{act}"',
                "resource": 'Obj::"x"',
                "context": ctx,
            }
            theirs.append(cedarpy.is_authorized(req, ps, es).allowed)
        notes.append(f"cedar agrees on {sum(a == b for a, b in zip(ours, theirs, strict=True))}/{len(ours)}")
    except ImportError:
        pass
    return "; ".join(notes)


def anchor_cells(
    n: int, text: str, policy: Path, requests: list[Request], budget: float, *, quick: bool
) -> dict[str, AnchorCell | str]:
    runs: list[tuple[str, Callable[[], AnchorCell]]] = [
        ("casbin Enforcer", lambda: casbin_anchor(policy, requests, budget, fast=False)),
        ("casbin FastEnforcer[act]", lambda: casbin_anchor(policy, requests, budget, fast=True)),
        ("cedarpy", lambda: cedar_anchor(text, requests, budget)),
        ("regopy", lambda: rego_anchor(text, requests, budget)),
    ]
    cells: dict[str, AnchorCell | str] = {}
    for name, run in runs:
        if (n >= 100_000 and quick) or (name == "regopy" and n >= 100_000):
            cells[name] = "skipped (minutes per run)"
            continue
        print(f"... {n:,} rules: {name}", file=sys.stderr, flush=True)
        try:
            cells[name] = run()
        except ImportError as exc:
            cells[name] = f"not installed ({exc.name})"
        except Exception as exc:  # an anchor failing must not hide the others
            cells[name] = f"failed: {type(exc).__name__}: {str(exc)[:80]}"
    return cells


# --------------------------------------------------------------------------------------------
# Load + RSS at 100,000 rules, in a fresh process


def proc_status_mb(field: str) -> float:
    """VmRSS / VmHWM of this process from /proc (VmHWM, unlike ru_maxrss, starts afresh at exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child_load(policy: Path) -> None:
    gc.collect()
    before = rss_mb()
    start = time.perf_counter()
    engine = CasbinPolicy(MODEL, policy)
    load_s = time.perf_counter() - start
    gc.collect()
    after = rss_mb()
    peak = proc_status_mb("VmHWM")
    rules = len(list(engine.rules()))
    out = {"load_s": load_s, "rss_before": before, "rss_after": after, "peak": peak, "rules": rules}
    print(json.dumps(out))


def load_in_child(policy: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child-load", str(policy)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


# --------------------------------------------------------------------------------------------
# Identity, schema, inspectors, scaling with the arguments


def identity_rows(n: int) -> list[tuple[str, tuple[float, float], int]]:
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from gatekeeper.identity import jwk_thumbprint
    from gatekeeper.identity.settings import IdentitySettings
    from gatekeeper.identity.verifier import TokenVerifier

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with tempfile.TemporaryDirectory() as tmp:
        pem = Path(tmp) / "pub.pem"
        pem.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        verifier = TokenVerifier(IdentitySettings(public_keys=(str(pem),), algorithms=("RS256",)))
    now = int(time.time())
    kid = jwk_thumbprint(key.public_key())
    tokens = [
        jwt.encode(
            {
                "iss": "gatekeeper-dev",
                "aud": "gatekeeper",
                "sub": f"agent-{i}",
                "roles": ["agent"],
                "iat": now,
                "nbf": now,
                "exp": now + 600,
                "jti": f"jti-{i}",
            },
            key,
            algorithm="RS256",
            headers={"kid": kid},
        )
        for i in range(n)
    ]
    cold = time_each(lambda t: verifier.verify_token(t, operator=False), tokens)  # each token new: full RS256
    cached = time_each(lambda t: verifier.verify_token(t, operator=False), tokens, passes=3)
    return [
        ("RS256 verify, cold (new token)", percentiles(cold), len(cold)),
        ("RS256 verify, cached token", percentiles(cached), len(cached)),
    ]


def gate_and_principal() -> tuple[Any, Principal]:
    from gatekeeper.config import PolicyFiles
    from gatekeeper.gate import Gate, load_policy_set

    pack = ROOT / "policies"
    gate = Gate(load_policy_set(PolicyFiles(pack / "model.conf", pack / "policy.csv", pack / "tools.yaml")))
    return gate, Principal("agent-7", ("agent",), "gatekeeper-dev", time.time() + 600)


def typical_rows(n: int) -> list[tuple[str, tuple[float, float], int]]:
    from gatekeeper.inspectors import InspectContext
    from gatekeeper.inspectors.shell import _inspect
    from gatekeeper.inspectors.url import inspect_url

    gate, principal = gate_and_principal()
    manifests = gate.policy_set.manifests
    read, fetch = manifests["file.read"], manifests["http.fetch"]
    fetch_args = {
        "url": "https://api.github.com/repos/x/y",
        "method": "GET",
        "headers": {"Accept": "application/json"},
    }
    ctx = InspectContext()
    rows = [
        (
            "schema: file.read {path}",
            percentiles(time_each(lambda a: read.validate(a), [{"path": "README.md"}] * n)),
            n,
        ),
        (
            "schema: http.fetch {url, method, headers}",
            percentiles(time_each(lambda a: fetch.validate(a), [fetch_args] * n)),
            n,
        ),
        (
            "url inspector (typical URL)",
            percentiles(
                time_each(lambda u: inspect_url(u, ctx), ["https://api.github.com/repos/x/y?page=2"] * n)
            ),
            n,
        ),
        (
            "shell inspector, uncached: git status && ls -la src | head",
            percentiles(
                time_each(
                    lambda c: _inspect(c, "/workspace"),
                    [f"git status && ls -la src{i} | head" for i in range(n)],
                )
            ),
            n,
        ),
        (
            "Gate.evaluate file.read (schema, fs.read, decide)",
            percentiles(
                time_each(lambda a: gate.evaluate(principal, "file.read", a), [{"path": "README.md"}] * n)
            ),
            n,
        ),
    ]
    return rows


def scaling_rows(quick: bool) -> list[tuple[str, str, float, float]]:
    """(what, size, median µs, µs per unit): bodies via strictjson + Gate.evaluate; commands uncached."""
    from gatekeeper import strictjson
    from gatekeeper.inspectors.shell import _inspect

    gate, principal = gate_and_principal()
    rows: list[tuple[str, str, float, float]] = []
    for size in (1_000, 10_000, 100_000, 1_000_000):
        content = "x" * size
        body = json.dumps(
            {"tool": "file.write", "arguments": {"path": "/workspace/out.txt", "content": content}}
        ).encode()
        reps = 5 if size >= 1_000_000 else 20 if size >= 100_000 else 200
        parse = (
            statistics.median(time_each(lambda b: strictjson.loads(b, max_bytes=2**21), [body] * reps)) / 1000
        )
        full = (
            statistics.median(
                time_each(
                    lambda b: gate.evaluate(
                        principal, "file.write", strictjson.loads(b, max_bytes=2**21)["arguments"]
                    ),
                    [body] * reps,
                )
            )
            / 1000
        )
        rows.append(("body: strictjson.loads", f"{size // 1000:,} KB", parse, parse / (size / 1000)))
        rows.append(
            ("body: loads + Gate.evaluate (file.write)", f"{size // 1000:,} KB", full, full / (size / 1000))
        )
    for target in (10, 100, 1_000, 5_000, 10_000):  # past 6,000 shell tokens the inspector stops: opaque
        segments = max(1, (target + 1) // 7)  # "cat fK.txt | grep -n wK &&": seven words a segment
        reps = 3 if target >= 5_000 else 10 if target >= 1_000 else 100
        commands = [  # every command is new: no cache
            " && ".join(f"cat f{k}.txt | grep -n w{k}{r}" for k in range(segments)) for r in range(reps)
        ]
        tokens = len(commands[0].split())
        caps = ", ".join(sorted({c.name.split(":")[0] for c in _inspect(commands[0], "/workspace")}))
        t = statistics.median(time_each(lambda c: _inspect(c, "/workspace"), commands)) / 1000
        rows.append((f"shell inspector, uncached [{caps}]", f"{tokens:,} words", t, t / tokens))
        t = (
            statistics.median(
                time_each(lambda c: gate.evaluate(principal, "shell.exec", {"cmd": c + " "}), commands)
            )
            / 1000
        )
        rows.append(("Gate.evaluate shell.exec", f"{tokens:,} words", t, t / tokens))
    return rows


# --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--quick", action="store_true", help="fewer samples; anchors stop at 10,000 rules")
    parser.add_argument("--no-anchors", action="store_true", help="Gatekeeper only")
    parser.add_argument("--anchor-budget", type=float, default=4.0, help="seconds of queries per anchor cell")
    parser.add_argument("--child-load", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_load:
        child_load(args.child_load)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    passes = 1 if args.quick else 3
    budget = 1.5 if args.quick else args.anchor_budget
    print(
        f"# decision_bench: CPython {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}"
    )
    try:
        from importlib.metadata import version

        print(f"# pycasbin {version('pycasbin')}", end="")
        for dist in ("cedarpy", "regopy"):
            try:
                print(f", {dist} {version(dist)}", end="")
            except Exception:
                print(f", {dist} not installed", end="")
        print()
    except ImportError:
        pass

    rows: list[EngineRow] = []
    anchors: dict[int, dict[str, AnchorCell | str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        big = max(sizes)  # first, in a fresh small process: load time and memory of the largest policy
        big_policy = Path(tmp) / f"policy-{big}-child.csv"
        big_policy.write_text(make_policy(big)[0])
        print(f"... {big:,} rules: load in a child process", file=sys.stderr, flush=True)
        child = load_in_child(big_policy)
        for n in sizes:
            text, requests = make_policy(n)
            policy = Path(tmp) / f"policy-{n}.csv"
            policy.write_text(text)
            print(f"... {n:,} rules: Gatekeeper", file=sys.stderr, flush=True)
            rows.append(gatekeeper_row(n, policy, requests, passes))
            if args.no_anchors:
                continue
            cells = anchor_cells(n, text, policy, requests, budget, quick=args.quick)
            anchors[n] = cells
        small_text, small_requests = make_policy(1000)
        small = Path(tmp) / "policy-agree.csv"
        small.write_text(small_text)
        agreement = "" if args.no_anchors else check_anchor_agreement(small, small_text, small_requests)

    print("\n## Gatekeeper decision engine, µs")
    print("# decide = CasbinPolicy.decide: the tool and every capability, every effect")
    print("# query = one (subject, object, effect): what one casbin enforce() answers")
    head = ("rules", "load s", "decide p50", "decide p99", "query p50", "query p99")
    print("{:>8} {:>7} {:>11} {:>11} {:>10} {:>10}  outcomes".format(*head))
    for r in rows:
        mix = ", ".join(f"{k} {v}" for k, v in sorted(r.outcomes.items()))
        cols = (r.size, r.load_s, *r.decide, *r.query)
        print("{:>8,} {:>7.2f} {:>11.1f} {:>11.1f} {:>10.1f} {:>10.1f}  ".format(*cols) + mix)
    if len(rows) > 1:
        print(f"largest/smallest decide p50: {rows[-1].decide[0] / rows[0].decide[0]:.2f}x")
    held = child["rss_after"] - child["rss_before"]
    print(
        f"\n{big:,} rules in a fresh process: load {child['load_s']:.2f} s, "
        f"RSS {child['rss_before']:.0f} MB before -> {child['rss_after']:.0f} MB after "
        f"({held:.0f} MB for the policy), peak {child['peak']:.0f} MB"
    )
    if anchors:
        names = ["casbin Enforcer", "casbin FastEnforcer[act]", "cedarpy", "regopy"]
        print("\n## Per query, same rules (µs p50 / p99; load s); ratio = anchor p50 / Gatekeeper query p50")
        print(f"{'rules':>8}  {'Gatekeeper':>18}  " + "  ".join(f"{n:>34}" for n in names))
        for r in rows:
            cells = anchors.get(r.size, {})
            out = []
            for name in names:
                cell = cells.get(name)
                if isinstance(cell, AnchorCell) and cell.p is not None:
                    ratio = cell.p[0] / r.query[0]
                    out.append(f"{fmt(cell.p, cell.samples)} ({cell.load_s:.1f}s) {ratio:,.0f}x".rjust(34))
                else:
                    out.append(str(cell or "—")[:34].rjust(34))
            print(f"{r.size:>8,}  {fmt(r.query):>18}  " + "  ".join(out))
        if agreement:
            print(f"(1,000 rules, 200 queries: {agreement})")

    print("\n## Identity, schema, inspectors (µs p50 / p99)")
    n = 300 if args.quick else 1000
    for name, p, count in identity_rows(n // 2) + typical_rows(n):
        print(f"{name:<55} {p[0]:>8.1f} {p[1]:>8.1f}   n={count}")

    print("\n## Scale with work (median µs per call; per unit = µs per KB or per token)")
    for what, size, t, unit in scaling_rows(args.quick):
        print(f"{what:<52} {size:>14} {t:>12,.1f} {unit:>10.3f}")


if __name__ == "__main__":
    main()
