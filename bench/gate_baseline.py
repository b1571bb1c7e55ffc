"""Baseline: what one allowed ``file.read`` costs direct, through a bare proxy, and through Gatekeeper.

    python3 bench/gate_baseline.py [--duration S] [--connections N] [--rounds R] [--no-mcp]

The servers run in child processes started from ``bench/serve_stack.py``: the demo upstream in
a process of its own (``--upstream-process``; ``--in-process-upstream`` restores the old single
process, which flattered the proxies: the upstream's CPU was taken from their loop and counted
in their CPU per call), the bare proxy and Gatekeeper in another (only one of them is measured
at a time). The throughput comparison of record is ``bench/wrk_bench.py`` (a C load generator,
each server in its own process); this one's Python load generator shares the cores and holds
the faster rows back. This process is only the load generator (an aiohttp client: closed
loop, N keep-alive connections, fixed duration, warm-up excluded). Targets are measured in turn
and interleaved (A, B, C, A, B, C, ... with the order rotated every round), and each figure is
the median over rounds, so machine drift hits every target alike. See docs/benchmarks.md.

All traffic goes to 127.0.0.1; every loop is bounded by time and by count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.children import start_json_child, stop_child

CALL_ARGUMENTS: dict[str, Any] = {"path": "README.md"}
READ_OK = '"content"'  # a successful file.read answer carries the content
MCP_ACCEPT = "application/json, text/event-stream"
MCP_PROTOCOL = "2025-06-18"
MAX_CALLS_PER_WORKER = 1_000_000  # a count bound on top of the time bound

Call = Callable[[], Awaitable[bool]]


# --------------------------------------------------------------------------------------------
# Targets: each builds, per connection, a coroutine that makes one call and says if it succeeded.


@dataclass(frozen=True)
class Target:
    name: str
    reference: str  # the row this one is compared with in the "ratio" column
    kind: str  # "http" or "mcp"
    url: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    check: str = ""  # a byte string a successful answer must contain
    pid: int = 0  # the server process to charge CPU to, when not the main stack's


def http_targets(info: dict[str, Any]) -> list[Target]:
    args = json.dumps(CALL_ARGUMENTS).encode()
    invoke = json.dumps({"tool": "file.read", "arguments": CALL_ARGUMENTS}).encode()
    ctype = {"Content-Type": "application/json"}
    return [
        Target("direct", "bare-proxy", "http", f"{info['direct_url']}/tools/file.read", args, ctype, READ_OK),
        Target("bare-raw", "bare-proxy", "http", f"{info['bare_url']}/tools/file.read", args, ctype, READ_OK),
        Target("bare-proxy", "bare-proxy", "http", f"{info['bare_url']}/v1/invoke", invoke, ctype, "allowed"),
        Target(
            "gatekeeper",
            "bare-proxy",
            "http",
            f"{info['agent_url']}/v1/invoke",
            invoke,
            {**ctype, "Authorization": f"Bearer {info['token']}"},
            '"outcome": "allowed"',
        ),
    ]


def mcp_targets(info: dict[str, Any]) -> list[Target]:
    return [
        Target("mcp-direct", "mcp-direct", "mcp", info["mcp_direct_url"]),
        Target(
            "gatekeeper-mcp",
            "mcp-direct",
            "mcp",
            info["mcp_gatekeeper_url"],
            headers={"Authorization": f"Bearer {info['token']}"},
        ),
    ]


async def make_http_call(session: aiohttp.ClientSession, target: Target) -> Call:
    needle = target.check.encode()

    async def call() -> bool:
        async with session.post(target.url, data=target.body, headers=target.headers) as resp:
            answer = await resp.read()
            return resp.status == 200 and needle in answer

    return call


def _rpc_messages(content_type: str, raw: bytes) -> list[dict[str, Any]]:
    """JSON-RPC messages from a streamable-HTTP answer: plain JSON or an SSE stream."""
    if content_type.startswith("application/json"):
        return [json.loads(raw)] if raw.strip() else []
    out = []
    for line in raw.decode().splitlines():
        if line.startswith("data:") and line[5:].strip():
            out.append(json.loads(line[5:]))
    return out


async def make_mcp_call(session: aiohttp.ClientSession, target: Target) -> Call:
    """One MCP session per connection: initialize, notifications/initialized, then tools/call."""
    base = {**target.headers, "Accept": MCP_ACCEPT, "Content-Type": "application/json"}
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": MCP_PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "gate-baseline", "version": "0"},
        },
    }
    async with session.post(target.url, json=init, headers=base) as resp:
        raw = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{target.name}: initialize answered {resp.status}: {raw[:200]!r}")
        session_id = resp.headers.get("Mcp-Session-Id")
        version = _rpc_messages(resp.headers.get("Content-Type", ""), raw)[0]["result"]["protocolVersion"]
    headers = {**base, "MCP-Protocol-Version": version}
    if session_id:
        headers["Mcp-Session-Id"] = session_id
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    async with session.post(target.url, json=note, headers=headers) as resp:
        await resp.read()
        if resp.status not in (200, 202):
            raise RuntimeError(f"{target.name}: notifications/initialized answered {resp.status}")
    next_id = 1

    async def call() -> bool:
        nonlocal next_id
        next_id += 1
        msg = {
            "jsonrpc": "2.0",
            "id": next_id,
            "method": "tools/call",
            "params": {"name": "file.read", "arguments": CALL_ARGUMENTS},
        }
        async with session.post(target.url, data=json.dumps(msg).encode(), headers=headers) as resp:
            raw = await resp.read()
            if resp.status != 200:
                return False
            for m in _rpc_messages(resp.headers.get("Content-Type", ""), raw):
                if m.get("id") == next_id:
                    result = m.get("result")
                    return isinstance(result, dict) and not result.get("isError", False)
            return False

    return call


# --------------------------------------------------------------------------------------------
# The load generator.


@dataclass
class Sample:
    """One target, one round."""

    calls: int
    errors: int
    seconds: float
    latencies: list[float]
    server_cpu: float  # seconds of server-process CPU during the measured window
    client_cpu: float  # seconds of load-generator CPU during the measured window

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    def pct(self, q: float) -> float:
        lat = sorted(self.latencies)
        if not lat:
            return float("nan")
        return lat[min(len(lat) - 1, int(q * len(lat)))]


def process_cpu(pid: int) -> float:
    """utime + stime of a process, in seconds, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(target: Target, conns: int, warmup: float, duration: float, server_pid: int) -> Sample:
    connector = aiohttp.TCPConnector(limit=conns, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:
        maker = make_mcp_call if target.kind == "mcp" else make_http_call
        calls = [await maker(session, target) for _ in range(conns)]
        if not await calls[0]():
            raise RuntimeError(f"{target.name}: the first call did not succeed; refusing to benchmark it")
        latencies: list[float] = []
        counts = {"calls": 0, "errors": 0}
        loop_start = time.perf_counter()
        window_start = loop_start + warmup
        window_end = window_start + duration
        cpu_marks: dict[str, float] = {}

        async def mark_window() -> None:
            await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
            cpu_marks["srv0"], cpu_marks["cli0"] = process_cpu(server_pid), time.process_time()
            await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
            cpu_marks["srv1"], cpu_marks["cli1"] = process_cpu(server_pid), time.process_time()

        async def worker(call: Call) -> None:
            for _ in range(MAX_CALLS_PER_WORKER):
                t0 = time.perf_counter()
                if t0 >= window_end:
                    return
                try:
                    ok = await call()
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                t1 = time.perf_counter()
                if t0 >= window_start and t1 <= window_end:
                    if ok:
                        counts["calls"] += 1
                        latencies.append(t1 - t0)
                    else:
                        counts["errors"] += 1

        await asyncio.gather(mark_window(), *(worker(c) for c in calls))
    return Sample(
        counts["calls"],
        counts["errors"],
        duration,
        latencies,
        cpu_marks["srv1"] - cpu_marks["srv0"],
        cpu_marks["cli1"] - cpu_marks["cli0"],
    )


@dataclass
class Row:
    target: Target
    conns: int
    samples: list[Sample] = field(default_factory=list)

    def med(self, fn: Callable[[Sample], float]) -> float:
        return statistics.median(fn(s) for s in self.samples)


async def run_set(
    targets: list[Target], conns: int, rounds: int, warmup: float, duration: float, pid: int
) -> list[Row]:
    rows = [Row(t, conns) for t in targets]
    for r in range(rounds):
        order = rows[r % len(rows) :] + rows[: r % len(rows)]  # rotate: no target is always first
        for row in order:
            row.samples.append(await measure(row.target, conns, warmup, duration, row.target.pid or pid))
            s = row.samples[-1]
            print(
                f"  round {r + 1}/{rounds} conc {conns:>3} {row.target.name:<20} {s.rate:8.0f}/s "
                f"p50 {s.pct(0.5) * 1e3:6.2f} ms  errors {s.errors}",
                file=sys.stderr,
                flush=True,
            )
    return rows


def per_round_ratio(row: Row, ref: Row, fn: Callable[[Sample, Sample], float]) -> float:
    return statistics.median(fn(a, b) for a, b in zip(row.samples, ref.samples, strict=True))


def table(rows: list[Row]) -> str:
    by_name = {row.target.name: row for row in rows}
    head = (
        f"{'target':<21}{'conc':>5}{'calls/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'srv µs/call':>13}{'cli µs/call':>13}{'errors':>8}   ratio"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        ref = by_name.get(row.target.reference)
        ratio = ""
        if ref is not None:
            value = per_round_ratio(row, ref, lambda a, b: a.rate / b.rate)
            ratio = f"{value:5.2f} vs {ref.target.name}"
        lines.append(
            f"{row.target.name:<21}{row.conns:>5}{row.med(lambda s: s.rate):>10.0f}"
            f"{row.med(lambda s: s.pct(0.50)) * 1e3:>9.2f}{row.med(lambda s: s.pct(0.99)) * 1e3:>9.2f}"
            f"{row.med(lambda s: s.server_cpu / max(1, s.calls)) * 1e6:>13.0f}"
            f"{row.med(lambda s: s.client_cpu / max(1, s.calls)) * 1e6:>13.0f}"
            f"{sum(s.errors for s in row.samples):>8}   {ratio}"
        )
    return "\n".join(lines)


def added_latency(rows: list[Row]) -> str:
    """Single connection: p50 added over the direct call (per-round difference, then median)."""
    by_name = {row.target.name: row for row in rows}
    out = [f"{'target':<21}{'p50 ms':>9}{'p99 ms':>9}   added p50 over direct"]
    for row in rows:
        direct = by_name["mcp-direct" if row.target.kind == "mcp" else "direct"]
        added = per_round_ratio(row, direct, lambda a, b: a.pct(0.5) - b.pct(0.5)) * 1e6
        out.append(
            f"{row.target.name:<21}{row.med(lambda s: s.pct(0.50)) * 1e3:>9.3f}"
            f"{row.med(lambda s: s.pct(0.99)) * 1e3:>9.3f}   {added:+8.0f} µs vs {direct.target.name}"
        )
    return "\n".join(out)


def start_servers(
    max_seconds: float, profile: Path | None = None, extra_args: Sequence[str] = (), tree: Path | None = None
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start ``serve_stack.py`` (``extra_args`` are passed on) and read its URLs and token;
    ``tree``: another checkout's, so its Gatekeeper is measured beside this one's."""
    argv = [
        sys.executable,
        str((tree / "bench" if tree is not None else HERE) / "serve_stack.py"),
        "--max-seconds",
        str(max_seconds),
        *([] if profile is None else ["--profile", str(profile)]),
        *extra_args,
    ]
    proc, info = start_json_child(argv, "serve_stack.py")
    return proc, dict(info)


def stop_servers(proc: subprocess.Popen[bytes]) -> None:
    stop_child(proc)  # serve_stack stops on EOF


async def profile_gatekeeper(args: argparse.Namespace) -> None:
    """Only the gatekeeper row, with the server process under cProfile; then the top functions."""
    out: Path = args.profile
    extra = ["--upstream-process", *(["--no-durable-answers"] if args.no_durable_answers else [])]
    proc, info = start_servers(args.warmup + args.duration + 120, out, extra)
    try:
        targets = [*http_targets(info), *mcp_targets(info)]
        target = next(t for t in targets if t.name == args.profile_target)
        s = await measure(target, args.connections, args.warmup, args.duration, info["pid"])
        print(f"# profiled {target.name}, conc {args.connections}: {s.rate:.0f} calls/s under cProfile")
    finally:
        stop_servers(proc)
    stats = pstats.Stats(str(out))
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats("gatekeeper|structlog|jwt|casbin|jsonschema", 45)


async def amain(args: argparse.Namespace) -> None:
    if args.profile is not None:
        await profile_gatekeeper(args)
        return
    per_set = (args.warmup + args.duration + 1) * args.rounds * 6
    # Side by side, both stacks drop the demo's record of received calls every second: otherwise the
    # stack that serves more rows grows a larger heap and pays for it on every call (an A/A run of
    # one tree against itself showed the difference).
    extra = ["--trim-received", "1"] if args.baseline_tree is not None else []
    if not args.in_process_upstream:  # the demo upstream in a process of its own (honest layout)
        extra.append("--upstream-process")
    mine = [*extra, "--no-durable-answers"] if args.no_durable_answers else extra  # this tree's only
    proc, info = start_servers(per_set * 3 + 120, extra_args=mine)
    base_proc = None
    try:
        targets = http_targets(info) + ([] if args.no_mcp else mcp_targets(info))
        if args.baseline_tree is not None:  # the same rows served by another checkout, side by side
            base_proc, base = start_servers(per_set * 3 + 120, extra_args=extra, tree=args.baseline_tree)
            for target in http_targets(base)[-1:] + ([] if args.no_mcp else mcp_targets(base)[-1:]):
                ref = "bare-proxy" if target.kind == "http" else "mcp-direct"
                targets.append(replace(target, name=f"{target.name}@base", reference=ref, pid=base["pid"]))
        print(
            f"# gate_baseline: file.read {json.dumps(CALL_ARGUMENTS)}, allowed; {args.rounds} rounds x "
            f"{args.duration:g}s (+{args.warmup:g}s warm-up excluded) per target, interleaved; "
            "medians over rounds",
            flush=True,
        )
        print(
            f"# machine: {os.cpu_count()} CPUs, {platform.python_implementation()} "
            f"{platform.python_version()}, aiohttp {aiohttp.__version__}; client = Python aiohttp "
            "(this process), servers = "
            + (
                "one separate process (demo + bare proxy + Gatekeeper)"
                if args.in_process_upstream
                else "the demo upstream in its own process, bare proxy + Gatekeeper in another"
            )
            + "; they share the cores",
            flush=True,
        )
        print(
            f"# Gatekeeper: policy {info['policy_version']}, decision logging ON but sent to /dev/null",
            flush=True,
        )
        rows = await run_set(targets, args.connections, args.rounds, args.warmup, args.duration, info["pid"])
        print()
        print(table(rows))
        if not args.no_single:
            single = await run_set(targets, 1, args.rounds, args.warmup, args.duration, info["pid"])
            print()
            print(table(single))
            print()
            print(added_latency(single))
        print()
        print(
            "# srv µs/call: CPU of the server process per call (the demo upstream's too with "
            "--in-process-upstream); "
            "cli µs/call: CPU of this load generator per call"
        )
    finally:
        stop_servers(proc)
        if base_proc is not None:
            stop_servers(base_proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per target per round")
    parser.add_argument("--warmup", type=float, default=1.0, help="excluded seconds before each measurement")
    parser.add_argument("--connections", type=int, default=32, help="concurrent keep-alive connections")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (figures are medians)")
    parser.add_argument("--no-mcp", action="store_true", help="skip the MCP rows")
    parser.add_argument(
        "--profile", type=Path, default=None, help="cProfile the server on the gatekeeper row only, into FILE"
    )
    parser.add_argument(
        "--profile-target",
        default="gatekeeper",
        choices=("gatekeeper", "gatekeeper-mcp", "bare-proxy", "direct", "mcp-direct"),
        help="the row --profile measures",
    )
    parser.add_argument("--no-single", action="store_true", help="skip the 1-connection row set")
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        default=None,
        help="another checkout (a git archive of main, say): its Gatekeeper rows beside these, as NAME@base",
    )
    parser.add_argument(
        "--no-durable-answers",
        action="store_true",
        help="this tree's Gatekeeper with audit.durable_answers off (a --baseline-tree from before "
        "durable answers is then compared on the same terms)",
    )
    parser.add_argument(
        "--in-process-upstream",
        action="store_true",
        help="the demo upstream in the servers' own process (flatters the proxies; for comparison only)",
    )
    args = parser.parse_args()
    if not (0 < args.duration <= 600 and 0 <= args.warmup <= 60 and 1 <= args.connections <= 512):
        parser.error("duration in (0, 600], warmup in [0, 60], connections in [1, 512]")
    if not 1 <= args.rounds <= 20:
        parser.error("rounds in [1, 20]")
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
