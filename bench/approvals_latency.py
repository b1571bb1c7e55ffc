"""Approval queue latency: approve → forward, and listing a queue of 10,000 pending approvals.

    python3 bench/approvals_latency.py [--rounds 50] [--pending 10000] [--requests 20]
                                       [--dsn postgresql://postgres@127.0.0.1:5432/test] [--no-postgres]

Prints, in one run:

1. **approve → forward**: an agent calls ``compute.provision`` (2 × H100, which escalates under
   the repository's policy pack) with ``Prefer: wait=30``; once the approval shows as pending on
   the operator listener, the bench POSTs ``/v1/approvals/{id}/approve`` and times, with
   ``perf_counter`` in this process, from just before that POST is sent to the moment the
   agent's HTTP response (the forwarded call's answer from the demo tool) has been read.
   Every round uses different arguments (``hours`` varies), so approvals never collapse.

   - SQLite, one process: Gatekeeper runs inside this process (ports chosen by the OS).
   - PostgreSQL, one process: the same, on a throwaway schema (for comparison).
   - PostgreSQL, two processes: replicas A and B are separate ``python3 -m gatekeeper serve
     --config FILE`` processes sharing one store (a throwaway schema) and one data folder (so one
     development signing key). The agent calls A; the approval is POSTed to B's operator
     listener, so it reaches A's held call through PostgreSQL LISTEN/NOTIFY.

2. **listing with N pending**: N pending approvals are inserted through the store API
   (``create_pending``; 100 principals, distinct digests), then ``GET /v1/approvals?state=pending``
   is timed over the operator listener: ``limit=100`` (first page), ``limit=100&offset=N-100``
   (the last page) and ``limit=1000``; ``--requests`` timed requests each after one warm-up.
   SQLite and PostgreSQL, each behind an in-process Gatekeeper.

Every PostgreSQL schema this run creates is named ``gk_bench_<random>`` and dropped at the end.
All traffic stays on 127.0.0.1; every loop is bounded by count and by time. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.serve_stack import POLICY_DIR, bench_config
from gatekeeper.app import Gatekeeper
from gatekeeper.approvals.models import Approval, State, new_id
from gatekeeper.approvals.settings import ApprovalSettings
from gatekeeper.approvals.store import ApprovalStore
from gatekeeper.identity import IdentitySettings, issue_token
from gatekeeper.identity.keys import ensure_dev_key
from gatekeeper.logs import configure_logging

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
AGENT = "bench-agent"
OPERATOR = "bench-operator"
WARMUP_ROUNDS = 3  # approve→forward rounds run first and not counted
SETTLE_SECONDS = 0.05  # after the approval is listed: let the held call park on its wait
PENDING_POLL_SECONDS = 0.005
PENDING_DEADLINE_SECONDS = 10.0
CALL_TIMEOUT_SECONDS = 30.0
REPLICA_START_SECONDS = 30.0
INSERT_BATCH = 20  # concurrent create_pending calls per batch
PRINCIPALS = 100  # the pending approvals are spread over this many principals


# --------------------------------------------------------------------------------------------
# Figures


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in (0, 1]); with 20 samples p99 is the maximum."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.2f}"


# --------------------------------------------------------------------------------------------
# Tokens and requests


def tokens(key_path: Path, ident: IdentitySettings) -> tuple[str, str]:
    """(agent token, operator token), both signed with the development key of the data folder."""
    agent = issue_token(
        key_path,
        subject=AGENT,
        roles=["agent"],
        issuer=ident.issuer,
        audience=ident.audience,
        ttl_seconds=3600,
    )
    operator = issue_token(
        key_path,
        subject=OPERATOR,
        roles=["oncall"],
        operator=True,
        issuer=ident.issuer,
        audience=ident.operator_audience,
        ttl_seconds=3600,
    )
    return agent, operator


def provision_args(i: int) -> dict[str, Any]:
    """Two H100s (more than one GPU: one approver); ``hours`` differs every round, at most 26.

    2 × hours stays under 64 GPU-hours, so the two-person rule never applies.
    """
    return {"gpu_type": "H100", "count": 2, "hours": 1 + 0.125 * i}


@dataclass(frozen=True)
class Stack:
    """Where to call: the agent listener (replica A) and the operator listener (replica B)."""

    name: str
    agent_url: str
    operator_url: str
    agent_token: str
    operator_token: str


async def agent_call(
    http: aiohttp.ClientSession, stack: Stack, args: dict[str, Any]
) -> tuple[int, bytes, float]:
    body = json.dumps({"tool": "compute.provision", "arguments": args})
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {stack.agent_token}",
        "Prefer": "wait=30",
    }
    async with http.post(f"{stack.agent_url}/v1/invoke", data=body, headers=headers) as resp:
        raw = await resp.read()
        arrived = time.perf_counter()
        return resp.status, raw, arrived


async def find_pending(http: aiohttp.ClientSession, stack: Stack, args: dict[str, Any]) -> str:
    """Poll the operator listener until the approval for exactly ``args`` is pending; its id."""
    headers = {"Authorization": f"Bearer {stack.operator_token}"}
    deadline = time.perf_counter() + PENDING_DEADLINE_SECONDS
    for _ in range(int(PENDING_DEADLINE_SECONDS / PENDING_POLL_SECONDS) + 1):
        async with http.get(
            f"{stack.operator_url}/v1/approvals?state=pending&limit=100", headers=headers
        ) as r:
            listing = await r.json()
        for approval in listing["approvals"]:
            if approval["principal"] == AGENT and approval["arguments"] == args:
                return str(approval["id"])
        if time.perf_counter() > deadline:
            break
        await asyncio.sleep(PENDING_POLL_SECONDS)
    raise RuntimeError(f"{stack.name}: no pending approval for {args} after {PENDING_DEADLINE_SECONDS:g} s")


@dataclass(frozen=True)
class Round:
    to_forward: float  # approve POST sent → the agent's answer read
    vote_rtt: float  # approve POST sent → its own answer read


async def approve_to_forward(stack: Stack, rounds: int) -> list[Round]:
    out: list[Round] = []
    timeout = aiohttp.ClientTimeout(total=CALL_TIMEOUT_SECONDS + 10)
    # Two sessions: the agent's and the operator's calls never share a connection.
    async with (
        aiohttp.ClientSession(timeout=timeout) as agent_http,
        aiohttp.ClientSession(timeout=timeout) as op_http,
    ):
        op_headers = {"Authorization": f"Bearer {stack.operator_token}"}
        for i in range(WARMUP_ROUNDS + rounds):
            args = provision_args(i)
            call = asyncio.create_task(agent_call(agent_http, stack, args))
            try:
                approval_id = await find_pending(op_http, stack, args)
                await asyncio.sleep(SETTLE_SECONDS)
                url = f"{stack.operator_url}/v1/approvals/{approval_id}/approve"
                sent = time.perf_counter()
                async with op_http.post(url, json={"comment": "bench"}, headers=op_headers) as r:
                    voted = await r.read()
                    vote_done = time.perf_counter()
                    if r.status != 200 or json.loads(voted)["state"] != "approved":
                        raise RuntimeError(f"{stack.name}: approve answered {r.status}: {voted[:200]!r}")
                status, raw, arrived = await asyncio.wait_for(call, CALL_TIMEOUT_SECONDS)
            finally:
                if not call.done():
                    call.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await call
            answer = json.loads(raw)
            if status != 200 or answer.get("outcome") != "allowed":
                raise RuntimeError(f"{stack.name}: the held call answered {status}: {raw[:300]!r}")
            if i >= WARMUP_ROUNDS:
                out.append(Round(arrived - sent, vote_done - sent))
            label = "warm-up" if i < WARMUP_ROUNDS else f"{i + 1 - WARMUP_ROUNDS:>3}/{rounds}"
            print(
                f"  {stack.name:<34} round {label:>7} approve→forward {(arrived - sent) * 1e3:7.2f} ms",
                file=sys.stderr,
                flush=True,
            )
    return out


# --------------------------------------------------------------------------------------------
# Gatekeepers: in this process, or as replica processes


def settings(store: str, schema: str, cap: int) -> ApprovalSettings:
    return ApprovalSettings(store=store, postgres_schema=schema, max_pending_per_principal=cap)


@contextlib.asynccontextmanager
async def in_process(
    name: str, data_dir: Path, approvals: ApprovalSettings
) -> AsyncIterator[tuple[Gatekeeper, Stack]]:
    gk = Gatekeeper(replace(bench_config(data_dir), approvals=approvals))
    await gk.start()
    try:
        key = gk.config.identity.dev_key_path
        assert key is not None
        agent, operator = tokens(Path(key), gk.config.identity)
        yield gk, Stack(name, gk.agent_url, gk.operator_url, agent, operator)
    finally:
        await gk.stop()


def replica_yaml(data_dir: Path, dsn: str, schema: str) -> str:
    """A complete ``gatekeeper.yaml`` for one replica: every port chosen by the OS."""
    config = {
        "data_dir": str(data_dir),
        "listeners": {
            "agent": {"host": "127.0.0.1", "port": 0},
            "operator": {"host": "127.0.0.1", "port": 0},
        },
        "demo": {"enabled": True, "host": "127.0.0.1", "http_port": 0, "mcp_port": 0},
        "policy": {
            "model": str(POLICY_DIR / "model.conf"),
            "policy": str(POLICY_DIR / "policy.csv"),
            "tools": str(POLICY_DIR / "tools.yaml"),
        },
        "logging": {"level": "info"},  # the gatekeeper_started line carries the real ports
        "approvals": {"store": dsn, "postgres_schema": schema, "max_pending_per_principal": 1000},
    }
    return json.dumps(config, indent=2)  # JSON is YAML


@dataclass
class Replica:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    agent_url: str = ""
    operator_url: str = ""


def start_replica(name: str, config_path: Path, log_path: Path, max_seconds: float) -> Replica:
    """``python3 -m gatekeeper serve --config FILE``, bounded by coreutils ``timeout``; logs to a file."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                "timeout",
                str(int(max_seconds)),
                sys.executable,
                "-m",
                "gatekeeper",
                "serve",
                "--config",
                str(config_path),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    return Replica(name, proc, log_path)


async def wait_started(replica: Replica) -> None:
    """Read the replica's log until its ``gatekeeper_started`` line (bounded in time)."""
    deadline = time.monotonic() + REPLICA_START_SECONDS
    while time.monotonic() < deadline:
        if replica.proc.poll() is not None:
            break
        for line in replica.log_path.read_text(errors="replace").splitlines():
            if '"gatekeeper_started"' in line:
                entry = json.loads(line)
                replica.agent_url, replica.operator_url = entry["agent"], entry["operator"]
                return
        await asyncio.sleep(0.05)
    tail = replica.log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"replica {replica.name} did not start (exit {replica.proc.poll()}):\n{tail}")


def stop_replica(replica: Replica) -> None:
    if replica.proc.poll() is None:
        replica.proc.send_signal(signal.SIGTERM)  # timeout(1) passes it on; Gatekeeper stops cleanly
    try:
        replica.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        replica.proc.kill()
        replica.proc.wait(timeout=10)


@contextlib.asynccontextmanager
async def two_replicas(tmp: Path, dsn: str, schema: str, max_seconds: float) -> AsyncIterator[Stack]:
    data_dir = tmp / "gk-home-shared"
    config_path = tmp / "replica.yaml"
    config_path.write_text(replica_yaml(data_dir, dsn, schema))
    replicas: list[Replica] = []
    try:
        for name in ("A", "B"):  # one after the other: A creates the shared signing key first
            replica = start_replica(name, config_path, tmp / f"replica-{name}.log", max_seconds)
            replicas.append(replica)
            await wait_started(replica)
        a, b = replicas
        agent, operator = tokens(ensure_dev_key(data_dir), IdentitySettings())
        yield Stack("PostgreSQL, two processes (A→B)", a.agent_url, b.operator_url, agent, operator)
    finally:
        for replica in replicas:
            stop_replica(replica)


async def drop_schemas(dsn: str, schemas: Sequence[str]) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        for schema in schemas:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


# --------------------------------------------------------------------------------------------
# Listing with many pending approvals


async def fill(store: ApprovalStore, count: int, cap: int) -> float:
    """Insert ``count`` pending approvals through the store API; seconds taken."""
    now = time.time()

    def approval(i: int) -> Approval:
        args = {"gpu_type": "H100", "count": 2, "hours": 1 + i}
        digest = hashlib.sha256(json.dumps(["compute.provision", args], sort_keys=True).encode()).hexdigest()
        return Approval(
            id=new_id("apr"),
            state=State.PENDING,
            principal=f"bench-agent-{i % PRINCIPALS:03d}",
            roles=("agent",),
            tool="compute.provision",
            arguments=args,
            digest=digest,
            capabilities=("compute.gpu:H100",),
            rule="policy.csv:bench",
            reason="more than one GPU or eight GPU-hours is a large spend",
            created_at=time.time(),
            expires_at=now + 86_400,
        )

    started = time.perf_counter()
    for first in range(0, count, INSERT_BATCH):
        batch = [approval(i) for i in range(first, min(count, first + INSERT_BATCH))]
        results = await asyncio.gather(
            *(store.create_pending(a, max_pending_per_principal=cap) for a in batch)
        )
        if not all(created for _, created in results):
            raise RuntimeError("an inserted approval collapsed into an existing one")
    return time.perf_counter() - started


@dataclass(frozen=True)
class ListingRow:
    store: str
    query: str
    p50: float
    p99: float
    max: float
    kib: float


async def time_listing(stack: Stack, pending: int, requests: int, store_name: str) -> list[ListingRow]:
    headers = {"Authorization": f"Bearer {stack.operator_token}"}
    queries = [
        ("limit=100", 100),
        (f"limit=100&offset={pending - 100}", 100),
        ("limit=1000", 1000),
    ]
    rows: list[ListingRow] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        for query, expected in queries:
            url = f"{stack.operator_url}/v1/approvals?state=pending&{query}"
            took: list[float] = []
            size = 0
            for i in range(requests + 1):  # the first is a warm-up
                started = time.perf_counter()
                async with http.get(url, headers=headers) as r:
                    raw = await r.read()
                    done = time.perf_counter()
                body = json.loads(raw)
                if r.status != 200 or len(body["approvals"]) != expected or body["total"] != pending:
                    raise RuntimeError(
                        f"{store_name} {query}: {r.status}, {len(body.get('approvals', []))} rows"
                    )
                if i:
                    took.append(done - started)
                size = len(raw)
            rows.append(
                ListingRow(store_name, query, pct(took, 0.5), pct(took, 0.99), max(took), size / 1024)
            )
            print(
                f"  listing {store_name:<10} {query:<24} p50 {pct(took, 0.5) * 1e3:7.2f} ms", file=sys.stderr
            )
    return rows


# --------------------------------------------------------------------------------------------
# The run


def latency_table(results: dict[str, list[Round]]) -> str:
    head = f"{'store / topology':<36}{'n':>4}{'p50 ms':>9}{'p90 ms':>9}{'max ms':>9}   approve POST p50 ms"
    lines = [head, "-" * len(head)]
    for name, rounds in results.items():
        fwd = [r.to_forward for r in rounds]
        vote = [r.vote_rtt for r in rounds]
        lines.append(
            f"{name:<36}{len(rounds):>4}{ms(pct(fwd, 0.5)):>9}{ms(pct(fwd, 0.9)):>9}{ms(max(fwd)):>9}"
            f"   {ms(pct(vote, 0.5))}"
        )
    return "\n".join(lines)


def listing_table(rows: list[ListingRow], requests: int) -> str:
    head = f"{'store':<12}{'query (state=pending&…)':<26}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'KiB':>8}"
    lines = [head, "-" * len(head)]
    for row in rows:
        lines.append(
            f"{row.store:<12}{row.query:<26}{ms(row.p50):>9}{ms(row.p99):>9}{ms(row.max):>9}{row.kib:>8.0f}"
        )
    lines.append(f"# {requests} timed requests per row after 1 warm-up; p99 of {requests} samples = max")
    return "\n".join(lines)


async def amain(args: argparse.Namespace) -> None:
    print(
        f"# approvals_latency: {args.rounds} approve→forward rounds (+{WARMUP_ROUNDS} warm-up), "
        f"{args.pending} pending for listing, {args.requests} requests per listing row",
        flush=True,
    )
    print(
        f"# machine: {os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}, "
        f"aiohttp {aiohttp.__version__}, asyncpg {asyncpg.__version__}; client = this process",
        flush=True,
    )
    schemas: list[str] = []
    latency: dict[str, list[Round]] = {}
    listing: list[ListingRow] = []
    cap = max(1000, args.pending // PRINCIPALS + 1)
    try:
        with tempfile.TemporaryDirectory(prefix="gk-bench-approvals-") as tmp_name:
            tmp = Path(tmp_name)
            async with in_process(
                "SQLite, one process", tmp / "sq1", settings("sqlite", "gatekeeper", cap)
            ) as (
                _,
                stack,
            ):
                latency[stack.name] = await approve_to_forward(stack, args.rounds)
            if not args.no_postgres:
                schema = f"gk_bench_{secrets.token_hex(5)}"
                schemas.append(schema)
                async with in_process(
                    "PostgreSQL, one process", tmp / "pg1", settings(args.dsn, schema, cap)
                ) as (
                    _,
                    stack,
                ):
                    latency[stack.name] = await approve_to_forward(stack, args.rounds)
                schema = f"gk_bench_{secrets.token_hex(5)}"
                schemas.append(schema)
                async with two_replicas(tmp, args.dsn, schema, max_seconds=args.rounds * 5 + 120) as stack:
                    latency[stack.name] = await approve_to_forward(stack, args.rounds)
            print()
            print("approve → forward (POST approve sent → the held agent call's answer read)")
            print(latency_table(latency), flush=True)

            backends = [("SQLite", settings("sqlite", "gatekeeper", cap))]
            if not args.no_postgres:
                schema = f"gk_bench_{secrets.token_hex(5)}"
                schemas.append(schema)
                backends.append(("PostgreSQL", settings(args.dsn, schema, cap)))
            for name, approvals in backends:
                async with in_process(name, tmp / f"list-{name}", approvals) as (gk, stack):
                    seconds = await fill(gk.approvals.store, args.pending, cap)
                    print(
                        f"  inserted {args.pending} pending into {name} in {seconds:.1f} s "
                        f"({args.pending / seconds:.0f}/s, {INSERT_BATCH} concurrent)",
                        file=sys.stderr,
                        flush=True,
                    )
                    listing += await time_listing(stack, args.pending, args.requests, name)
            print()
            print(f"GET /v1/approvals with {args.pending} pending (operator listener)")
            print(listing_table(listing, args.requests), flush=True)
    finally:
        if schemas:
            await drop_schemas(args.dsn, schemas)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50, help="approve→forward rounds per setup")
    parser.add_argument("--pending", type=int, default=10_000, help="pending approvals for the listing")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per listing row")
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="PostgreSQL DSN (a throwaway schema is used)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 200:
        parser.error("rounds in [1, 200]")
    if not 1000 <= args.pending <= 100_000:
        parser.error("pending in [1000, 100000]")
    if not 1 <= args.requests <= 1000:
        parser.error("requests in [1, 1000]")
    devnull = open(os.devnull, "w")  # lives as long as the process
    configure_logging("info", devnull)  # decision lines on, printed nowhere (as in gate_baseline)
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
