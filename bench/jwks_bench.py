"""JWKS refresh benchmark: does refreshing a slow, large JWKS disturb the event loop or authentications?

    python3 bench/jwks_bench.py                  # about 30 seconds
    python3 bench/jwks_bench.py --quick          # about 15
    python3 bench/jwks_bench.py --delay 0.2 --keys 500 --duration 4 --rounds 2

A JWKS server in a child process on 127.0.0.1 answers every fetch after ``--delay`` seconds with a
document of ``--keys`` RSA keys (distinct kids) plus the signing key. In this process one
``TokenVerifier`` with a ``JwksKeySource`` runs a closed loop of authentications (``verify``, one
at a time, yielding to the loop between calls), with either one cached token or a pool of tokens
and the token cache off (every call a full RS256 verification), next to an event-loop lag probe (a
task sleeping 1 ms and recording how late it wakes). Three phases per token mode, each
``--duration`` seconds in total, run in ``--rounds`` interleaved rounds (so that the noise of a
shared machine falls on all of them), each round bounded by ``--max-calls`` calls:

- baseline: ``cache_seconds`` 3600, so no refresh at all;
- refresh ahead: ``cache_seconds`` 1, ``refresh_ahead`` 0.4: a background refresh every ~0.65 s
  (fetch + parse), forced over and over; samples are split by whether a fetch was in flight;
- at expiry: ``refresh_ahead`` 1 (refresh only once the cache has expired: how every refresh
  worked before refresh-ahead), ``cache_seconds`` 0.3: the first caller after expiry waits.

Plus how long parsing the document takes on the loop (what each refresh stalled the event loop
for before the parse moved to a worker thread). Ratios are within this run. Cold RS256 and
cached-token verification without JWKS are in ``bench/decision_bench.py`` (Identity rows).
Loopback only. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from structlog.testing import capture_logs

from gatekeeper.identity import (
    IdentitySettings,
    JwksKeySource,
    KeySet,
    TokenVerifier,
    issue_token,
    jwk_thumbprint,
    public_jwk,
)
from gatekeeper.identity.keys import PublicKey, _parse_jwks, _parse_jwks_body  # the refresh's own parse

PROBE_S = 0.001
ENDS = frozenset({"jwks_refreshed", "jwks_fetch_failed"})
COLD_POOL = 256


# --------------------------------------------------------------------------------------------
# The JWKS server (child process)


async def serve(document: Path, delay: float) -> None:
    from aiohttp import web

    body = await asyncio.to_thread(document.read_bytes)

    async def jwks(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/jwks.json", jwks)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    await runner.cleanup()


def start_server(document: Path, delay: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(document), "--delay", str(delay)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/jwks.json"


def stop_server(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------------------------
# Keys, document, tokens


def make_document(signing: PublicKey, count: int) -> dict[str, Any]:
    materials = [
        rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key() for _ in range(8)
    ]
    entries = [{**public_jwk(materials[i % len(materials)]), "kid": f"bulk-{i:04d}"} for i in range(count)]
    return {"keys": [*entries, public_jwk(signing)]}


def mint_tokens(key: rsa.RSAPrivateKey, n: int) -> list[str]:
    """Tokens as ``gatekeeper token issue`` makes them (``issue_token`` reloads the key every call)."""
    now = int(time.time())
    kid = jwk_thumbprint(key.public_key())
    return [
        jwt.encode(
            {
                "iss": "gatekeeper-dev",
                "sub": f"agent-{i}",
                "aud": "gatekeeper",
                "roles": ["agent"],
                "iat": now,
                "nbf": now,
                "exp": now + 3600,
                "jti": secrets.token_urlsafe(16),
            },
            key,
            algorithm="RS256",
            headers={"kid": kid, "typ": "JWT"},
        )
        for i in range(n)
    ]


def parse_on_loop_ms(body: bytes, runs: int) -> list[float]:
    """What the refresh did on the event loop before: JSON decode + key construction."""
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        KeySet.from_jwks(json.loads(body))
        out.append((time.perf_counter() - start) * 1000)
    return out


PARSES: dict[str, Callable[[bytes], Awaitable[object]]] = {
    "none (baseline: 20 ms sleep)": lambda body: asyncio.sleep(0.02),
    "on the event loop (before)": lambda body: asyncio.sleep(0, _parse_jwks(json.loads(body))),
    "worker thread, GIL not shared": lambda body: asyncio.to_thread(lambda: _parse_jwks(json.loads(body))),
    "worker thread, as shipped": lambda body: asyncio.to_thread(_parse_jwks_body, body),
}


async def parse_lag(body: bytes, how: str, runs: int) -> tuple[list[float], list[float]]:
    """Loop lag while the document is parsed ``runs`` times, beside a task that keeps the loop busy.

    A probe sample counts when its sleep overlaps a parse (an on-loop parse runs between two
    samples, so it shows up as the lateness of the sample it delays).
    """
    samples: list[tuple[int, int]] = []  # (slept at, woke at), ns
    parses: list[tuple[int, int]] = []
    done = False
    clock = time.perf_counter_ns

    async def probe() -> None:
        while not done:
            start = clock()
            await asyncio.sleep(PROBE_S)
            samples.append((start, clock()))

    async def busy() -> None:
        spins = 0
        while not done:
            spins += 1  # one loop iteration: another request's turn
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(probe()), asyncio.create_task(busy())]
    await asyncio.sleep(0.05)
    for _ in range(runs):
        start = clock()
        await PARSES[how](body)
        parses.append((start, clock()))
        await asyncio.sleep(0.005)
    done = True
    await asyncio.gather(*tasks)
    lags = [
        woke - slept - PROBE_S * 1e9
        for slept, woke in samples
        if any(slept < end and woke > begin for begin, end in parses)
    ]
    return lags, [float(end - begin) for begin, end in parses]


# --------------------------------------------------------------------------------------------
# Measuring


@dataclass
class Phase:
    mode: str
    name: str
    cache_seconds: float
    refresh_ahead: float
    lag_ns: list[float] = field(default_factory=list)  # all samples
    lag_busy_ns: list[float] = field(default_factory=list)  # a fetch was in flight during the sample
    lag_idle_ns: list[float] = field(default_factory=list)  # none was
    auth_ns: list[float] = field(default_factory=list)
    auth_busy_ns: list[float] = field(default_factory=list)
    auth_idle_ns: list[float] = field(default_factory=list)
    waited_ns: list[float] = field(default_factory=list)  # calls a fetch ended during: they waited for it
    refreshes: int = 0
    failures: int = 0
    refused: int = 0
    seconds: float = 0.0


async def run_phase(
    phase: Phase,
    url: str,
    tokens: Sequence[str],
    *,
    cache_seconds: float,
    refresh_ahead: float,
    duration: float,
    max_calls: int,
) -> None:
    """One stretch of ``duration`` seconds with a new verifier; samples are added to ``phase``."""
    jwks = JwksKeySource(
        url, cache_seconds=cache_seconds, min_refresh_interval=0.1, refresh_ahead=refresh_ahead
    )
    settings = IdentitySettings(
        jwks_url=url,
        algorithms=("RS256",),
        jwks_cache_seconds=cache_seconds,
        jwks_min_refresh_interval=0.1,
        jwks_refresh_ahead=refresh_ahead,
        token_cache_size=0 if phase.mode == "cold" else 10_000,
    )
    verifier = TokenVerifier(settings, keys=KeySet(), jwks=jwks)
    try:
        with capture_logs() as logs:  # also keeps the refresh log lines off stdout
            await jwks.refresh()
            for token in tokens[:50]:
                await verifier.verify(token)  # warm: the token cache and the code paths
            warm_events = len(logs)
            done = False

            async def probe() -> None:
                clock = time.perf_counter_ns
                while not done:
                    busy = jwks.refreshing
                    start = clock()
                    await asyncio.sleep(PROBE_S)
                    lag = clock() - start - PROBE_S * 1e9
                    phase.lag_ns.append(lag)
                    (phase.lag_busy_ns if busy or jwks.refreshing else phase.lag_idle_ns).append(lag)

            async def worker() -> None:
                nonlocal done
                clock = time.perf_counter_ns
                deadline = time.monotonic() + duration
                i = 0
                while i < max_calls and time.monotonic() < deadline:
                    token = tokens[i % len(tokens)]
                    busy = jwks.refreshing
                    events = len(logs)
                    start = clock()
                    try:
                        await verifier.verify(token)
                    except Exception:
                        phase.refused += 1
                    elapsed = clock() - start
                    if len(logs) != events and any(e["event"] in ENDS for e in logs[events:]):
                        phase.waited_ns.append(elapsed)  # a fetch ended while this call was suspended
                    phase.auth_ns.append(elapsed)
                    (phase.auth_busy_ns if busy or jwks.refreshing else phase.auth_idle_ns).append(elapsed)
                    i += 1
                    await asyncio.sleep(0)  # as between two requests: let the loop run other tasks
                done = True

            started = time.perf_counter()
            await asyncio.gather(probe(), worker())
            phase.seconds += time.perf_counter() - started
            events = [e["event"] for e in logs[warm_events:]]
        phase.refreshes += events.count("jwks_refreshed")
        phase.failures += events.count("jwks_fetch_failed")
    finally:
        await verifier.aclose()


def pct(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] / 1000


def cells(samples: Sequence[float]) -> tuple[str, str, str]:
    if not samples:
        return ("—", "—", "—")
    return (f"{pct(samples, 0.5):,.0f}", f"{pct(samples, 0.99):,.0f}", f"{max(samples) / 1000:,.0f}")


def ratio(a: Sequence[float], b: Sequence[float], q: float) -> str:
    if not a or not b or pct(b, q) <= 0:
        return "—"
    return f"{pct(a, q) / pct(b, q):.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds the JWKS server waits per fetch")
    parser.add_argument("--keys", type=int, default=500, help="keys in the JWKS document")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per phase (all rounds)")
    parser.add_argument("--rounds", type=int, default=2, help="phases interleaved in rounds, against drift")
    parser.add_argument("--max-calls", type=int, default=200_000, help="authentications per round, at most")
    parser.add_argument("--parses", type=int, default=40, help="parses per row of the parse-alone table")
    parser.add_argument("--quick", action="store_true", help="2 s per phase, 20 parses")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.delay))
        return
    duration = 2.0 if args.quick else args.duration
    if args.quick:
        args.parses = 20
    rounds = max(1, args.rounds)

    print(f"# jwks_bench: CPython {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}")
    print(f"# GIL switch interval {sys.getswitchinterval() * 1000:.0f} ms")
    print("# closed loop of verify() calls, one at a time, beside a probe task sleeping 1 ms; µs")
    print("# lag = how late the probe wakes; auth = one verify(); 'during a fetch' = a refresh in flight")
    print("# cold = token cache off, every call a full RS256 verification; cached = one token, cache on")
    print("# waited = calls suspended until a fetch ended (otherwise a known-kid call never suspends)")
    print("# cold RS256 / cached-token verification without JWKS: bench/decision_bench.py (## Identity)")

    with tempfile.TemporaryDirectory() as tmp:
        print("... keys and tokens", file=sys.stderr, flush=True)
        signing = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_path = Path(tmp) / "signing.pem"
        key_path.write_bytes(
            signing.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        body = json.dumps(make_document(signing.public_key(), args.keys)).encode()
        document = Path(tmp) / "jwks.json"
        document.write_bytes(body)
        tokens = {"cached": [issue_token(key_path, subject="agent-0", roles=["agent"])]}
        tokens["cold"] = mint_tokens(signing, COLD_POOL)
        print(
            f"# JWKS: {args.keys + 1} keys, {len(body) / 1024:,.0f} KiB, answered after "
            f"{args.delay * 1000:.0f} ms by a child process on 127.0.0.1"
        )
        print(
            f"# {duration:g} s per phase in {rounds} interleaved rounds, "
            f"at most {args.max_calls:,} calls per round"
        )
        stall = parse_on_loop_ms(body, 20)
        parse_rows: dict[str, tuple[list[float], list[float]]] = {how: ([], []) for how in PARSES}
        for r in range(rounds):
            for how, (lags, walls) in parse_rows.items():
                print(f"... round {r + 1}/{rounds}: parse {how}", file=sys.stderr, flush=True)
                more_lags, more_walls = asyncio.run(parse_lag(body, how, max(1, args.parses // rounds)))
                lags += more_lags
                walls += more_walls
        proc, url = start_server(document, args.delay)
        phases = [
            Phase(mode, name, cache, ahead)
            for mode in ("cached", "cold")
            for name, cache, ahead in (
                ("baseline (no refresh)", 3600.0, 0.8),
                ("refresh ahead (0.4 of 1 s)", 1.0, 0.4),
                ("at expiry (ahead 1, 0.3 s)", 0.3, 1.0),
            )
        ]
        try:
            for r in range(rounds):
                for phase in phases:
                    print(
                        f"... round {r + 1}/{rounds}: {phase.mode}, {phase.name}", file=sys.stderr, flush=True
                    )
                    asyncio.run(
                        run_phase(
                            phase,
                            url,
                            tokens[phase.mode],
                            cache_seconds=phase.cache_seconds,
                            refresh_ahead=phase.refresh_ahead,
                            duration=duration / rounds,
                            max_calls=args.max_calls,
                        )
                    )
        finally:
            stop_server(proc)

    print("\n## Event-loop lag and authentication during JWKS refreshes, µs")
    head = ("token", "phase", "samples", "fetches", "lag p50", "lag p99", "lag max")
    head2 = ("auth p50", "auth p99", "auth max", "calls", "waited", "refused")
    print(
        "{:<7} {:<29} {:<15} {:>7} {:>8} {:>8} {:>8}".format(*head)
        + " {:>9} {:>9} {:>9} {:>8} {:>6} {:>7}".format(*head2)
    )
    for p in phases:
        rows = [("all", p.lag_ns, p.auth_ns)]
        if p.refresh_ahead < 1 and (p.refreshes or p.failures):
            rows += [
                ("during a fetch", p.lag_busy_ns, p.auth_busy_ns),
                ("between fetches", p.lag_idle_ns, p.auth_idle_ns),
            ]
        for label, lag, auth in rows:
            first = label == "all"
            fetches = (f"{p.refreshes}" + (f"+{p.failures}!" if p.failures else "")) if first else ""
            print(
                f"{p.mode:<7} {p.name if first else '':<29} {label:<15} {fetches:>7} "
                + " ".join(f"{c:>8}" for c in cells(lag))
                + " "
                + " ".join(f"{c:>9}" for c in cells(auth))
                + f" {len(auth):>8,} {len(p.waited_ns) if first else '':>6} {p.refused if first else '':>7}"
            )

    print("\n## Ratios, same run (1.00x = no effect)")
    print("# refresh ahead: samples during a fetch / between fetches (same phase, interleaved in time),")
    print("# and / the baseline phase; at expiry: the calls that waited for a fetch, / baseline auth p99")
    print(f"{'token':<7} {'vs':<16} {'lag p50':>8} {'lag p99':>8} {'auth p50':>9} {'auth p99':>9}")
    by = {(p.mode, p.name.split(" (")[0]): p for p in phases}
    for mode in ("cached", "cold"):
        base, ahead, expiry = by[(mode, "baseline")], by[(mode, "refresh ahead")], by[(mode, "at expiry")]
        for label, lag_ref, auth_ref in (
            ("between fetches", ahead.lag_idle_ns, ahead.auth_idle_ns),
            ("baseline", base.lag_ns, base.auth_ns),
        ):
            print(
                f"{mode:<7} {label:<16} {ratio(ahead.lag_busy_ns, lag_ref, 0.5):>8} "
                f"{ratio(ahead.lag_busy_ns, lag_ref, 0.99):>8} {ratio(ahead.auth_busy_ns, auth_ref, 0.5):>9} "
                f"{ratio(ahead.auth_busy_ns, auth_ref, 0.99):>9}"
            )
        if expiry.auth_ns and base.auth_ns:
            waited = f"{len(expiry.waited_ns)} calls waited for a fetch"
            if expiry.waited_ns:
                median = statistics.median(expiry.waited_ns) / 1000
                base_p99 = pct(base.auth_ns, 0.99)
                waited += f", p50 {median:,.0f} µs = {median / base_p99:,.0f}x baseline auth p99"
            print(f"{mode:<7} at expiry: {waited}; refresh ahead: {len(ahead.waited_ns)} waited")
    print(
        f"\nparse of the {args.keys + 1}-key document (JSON + key construction) on one thread: "
        f"p50 {statistics.median(stall):.1f} ms, max {max(stall):.1f} ms (n={len(stall)}):\n"
        "how long each refresh held the event loop while the parse ran on it; it now runs in a worker thread"
    )

    print(f"\n## The parse alone: loop lag while the document is parsed ({args.parses}x in {rounds} rounds)")
    print("# µs, beside a task that keeps the loop busy (sleep(0) in a loop); wall = one parse, ms")
    print("# 'GIL not shared' = a plain to_thread: the loop thread, which drops the GIL at every poll,")
    print("# gets it back about once per switch interval; 'as shipped' gives it back every 0.5 ms of work")
    print(f"{'parse':<32} {'lag p50':>8} {'lag p99':>8} {'lag max':>8} {'p99 / base':>10} {'wall p50':>9}")
    base_lags = next(iter(parse_rows.values()))[0]
    base_p99 = pct(base_lags, 0.99) if base_lags else 0.0
    for how, (lags, walls) in parse_rows.items():
        rel = f"{pct(lags, 0.99) / base_p99:.2f}x" if lags and base_p99 > 0 else "—"
        wall = pct(walls, 0.5) / 1000
        print(f"{how:<32} " + " ".join(f"{c:>8}" for c in cells(lags)) + f" {rel:>10} {wall:>9.1f}")


if __name__ == "__main__":
    main()
