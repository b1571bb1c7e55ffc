"""Throughput of one allowed ``file.read`` under ``wrk``: direct, a bare proxy, Gatekeeper with
1..N workers; each server in a process of its own, CPU per call for every process.

    python3 bench/wrk_bench.py [--duration S] [--connections N] [--rounds R] [--workers 1,2]
        [--audit-writers inline,process]
                               [--chart PNG] [--json FILE]

Servers: the demo upstream (``serve_stack.py --upstream-only``), the bare aiohttp proxy
(``bare_proxy.py``) and one ``gatekeeper serve --workers W`` per worker count, all started once
and left running; an idle one costs next to nothing. Load: Debian's ``wrk`` (C, 2 threads, keep-
alive connections), so the load generator is not the Python it measures (install it with
``apt-get install wrk``). Rows are interleaved (order rotated each round); figures are the
minimum / median / maximum over rounds. CPU per call is read from ``/proc/PID/stat`` (utime +
stime) before and after each run, for each server process, and from ``RUSAGE_CHILDREN`` for wrk.
Any non-2xx answer voids the row. Gatekeeper runs with the repository's policy pack, budgets
off (``policy.budgets: null``, so no Redis), decision lines written to a log file. See
docs/benchmarks.md. All traffic stays on 127.0.0.1; every run is bounded by time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.children import start_json_child, stop_child
from gatekeeper.identity import ensure_dev_key
from gatekeeper.identity.minting import issue_token

POLICY_DIR = HERE.parent / "policies"
ARGUMENTS = {"path": "README.md"}
START_SECONDS = 180.0


@dataclass
class Server:
    name: str
    url: str  # where wrk sends its POSTs
    body: str
    pids: list[int]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Run:
    rate: float
    p50_ms: float
    p99_ms: float
    cpu_us: dict[str, float]  # per call, per process (and "wrk")
    errors: int


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def family(pid: int) -> list[int]:
    """``pid`` and all its descendants (workers, audit writer processes), parents first."""
    out = [pid]
    for child in children_of(pid):
        out.extend(family(child))
    return out


def lua_script(folder: Path, server: Server) -> Path:
    path = folder / f"{server.name}.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(server.body)}"]
    for name, value in {"Content-Type": "application/json", **server.headers}.items():
        lines.append(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}")
    path.write_text("\n".join(lines) + "\n")
    return path


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _wrk_field(out: str, pattern: str) -> str:
    """One figure of wrk's report; a report without it is a failed run, said so (not a None crash)."""
    m = re.search(pattern, out)
    if m is None:
        raise SystemExit(f"wrk's output has no {pattern!r}; its output was:\n{out[-2000:]}")
    return m.group(1)


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"wrk latency not understood: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(server: Server, script: Path, connections: int, seconds: float) -> Run:
    threads = min(2, connections)
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--latency",
        "-s",
        str(script),
        server.url,
    ]
    before = {pid: cpu_seconds(pid) for pid in server.pids}
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = {pid: cpu_seconds(pid) for pid in server.pids}
    requests = int(_wrk_field(out, r"(\d+) requests in"))
    rate = float(_wrk_field(out, r"Requests/sec:\s+([\d.]+)"))
    p50 = _ms(_wrk_field(out, r"\s50%\s+(\S+)"))
    p99 = _ms(_wrk_field(out, r"\s99%\s+(\S+)"))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    per_call = 1e6 / max(1, requests)
    cpu = {str(pid): (after[pid] - before[pid]) * per_call for pid in server.pids}
    cpu["wrk"] = (
        (wrk_after.ru_utime + wrk_after.ru_stime) - (wrk_before.ru_utime + wrk_before.ru_stime)
    ) * per_call
    return Run(rate, p50, p99, cpu, errors)


def start_gatekeeper(
    folder: Path, workers: int, upstream: dict[str, Any], writer: str = "inline"
) -> tuple[subprocess.Popen[bytes], Server]:
    name = f"gatekeeper-w{workers}" + ("" if writer == "inline" else f"-{writer}")
    home = folder / name
    config = folder / f"{name}.yaml"
    config.write_text(
        f"data_dir: {home}\n"
        "listeners:\n  agent: {port: 0}\n  operator: {port: 0}\n"
        "demo: {enabled: false}\n"
        f"upstreams:\n  demo: {{url: {upstream['direct_url']}, mcp_url: {upstream['mcp_direct_url']}}}\n"
        f"policy:\n  model: {POLICY_DIR / 'model.conf'}\n  policy: {POLICY_DIR / 'policy.csv'}\n"
        f"  tools: {POLICY_DIR / 'tools.yaml'}\n  budgets: null\n"
        f"workers: {workers}\n"
        f"audit: {{writer: {writer}}}\n"
    )
    token = issue_token(ensure_dev_key(home), subject="bench-agent", roles=["agent"], ttl_seconds=4 * 3600)
    log_path = folder / f"{name}.log"
    log = open(log_path, "wb")  # the child keeps its own copy of the descriptor
    proc = subprocess.Popen(
        [sys.executable, "-m", "gatekeeper", "serve", "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    ready = "workers_ready" if workers > 1 else "gatekeeper_started"
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        for line in log_path.read_text().splitlines():
            if f'"{ready}"' in line:
                entry = json.loads(line)
                time.sleep(1.0)  # every worker's audit writer process has started by now
                pids = family(proc.pid)
                body = json.dumps({"tool": "file.read", "arguments": ARGUMENTS})
                url = f"{entry['agent']}/v1/invoke"
                return proc, Server(name, url, body, pids, {"Authorization": f"Bearer {token}"})
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"gatekeeper --workers {workers} did not start; see {log_path}")


def stop_gatekeeper(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()


def summary(values: list[float]) -> tuple[float, float, float]:
    return min(values), statistics.median(values), max(values)


def table(results: dict[str, list[Run]], servers: dict[str, Server], connections: int) -> str:
    base = statistics.median(r.rate for r in results["bare-proxy"])
    out = [
        f"## wrk -c{connections}: calls/s min/median/max; p50/p99 ms (median); "
        "CPU µs per call per process (median)",
        "| row | calls/s | × bare proxy | p50 ms | p99 ms | CPU µs/call: server processes | wrk |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, runs in results.items():
        lo, mid, hi = summary([r.rate for r in runs])
        pids = [str(p) for p in servers[name].pids]
        cpus = [statistics.median(r.cpu_us[p] for r in runs) for p in pids]
        shown = " + ".join(f"{c:.0f}" for c in cpus if c >= 1 or len(cpus) == 1)
        total = sum(cpus)
        cpu_text = f"{shown} = {total:.0f}" if len(cpus) > 1 else f"{total:.0f}"
        errors = sum(r.errors for r in runs)
        out.append(
            f"| {name}{f' (ERRORS: {errors})' if errors else ''} | {lo:.0f} / {mid:.0f} / {hi:.0f} "
            f"| {mid / base:.2f} | {statistics.median(r.p50_ms for r in runs):.2f} "
            f"| {statistics.median(r.p99_ms for r in runs):.2f} | {cpu_text} "
            f"| {statistics.median(r.cpu_us['wrk'] for r in runs):.0f} |"
        )
    return "\n".join(out)


def chart(
    path: Path, results: dict[str, list[Run]], workers: list[int], connections: int, title: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    xs = workers
    stats = [summary([r.rate for r in results[f"gatekeeper-w{w}"]]) for w in xs]
    mids = [s[1] for s in stats]
    ax.errorbar(
        xs,
        mids,
        yerr=[
            [m - s[0] for m, s in zip(mids, stats, strict=True)],
            [s[2] - m for m, s in zip(mids, stats, strict=True)],
        ],
        marker="o",
        capsize=4,
        label="Gatekeeper /v1/invoke (min/median/max)",
    )
    for name, style in (("bare-proxy", "--"), ("direct", ":")):
        mid = summary([r.rate for r in results[name]])[1]
        ax.axhline(mid, linestyle=style, color="grey", label=f"{name} (1 process), median")
    ax.set_xticks(xs)
    ax.set_xlabel("Gatekeeper workers")
    ax.set_ylabel("allowed calls per second")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per row per round")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument(
        "--audit-writers",
        default="inline",
        help="comma-separated audit.writer values to run each worker count with (inline, process)",
    )
    parser.add_argument("--chart", type=Path, default=None, help="draw throughput against workers (PNG)")
    parser.add_argument("--json", type=Path, default=None, help="write every run here")
    args = parser.parse_args()
    workers = sorted({int(w) for w in args.workers.split(",")})
    writers = [w for w in args.audit_writers.split(",") if w]
    if not set(writers) <= {"inline", "process"} or "inline" not in writers:
        parser.error("--audit-writers: inline, optionally with process")
    if not (0 < args.duration <= 120 and 1 <= args.connections <= 1024 and 1 <= args.rounds <= 10):
        parser.error("duration in (0, 120], connections in [1, 1024], rounds in [1, 10]")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (Debian's package)")
    load = os.getloadavg()[0]
    bound = str(args.duration * args.rounds * (2 + len(workers) * len(writers)) * 3 + 300)
    up_proc, upstream = start_json_child(
        [
            sys.executable,
            str(HERE / "serve_stack.py"),
            "--upstream-only",
            "--max-seconds",
            bound,
            "--trim-received",
            "1",
        ],
        "the upstream",
    )
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="gk-wrk-") as tmp:
        folder = Path(tmp)
        try:
            bare_proc, bare = start_json_child(
                [
                    sys.executable,
                    str(HERE / "bare_proxy.py"),
                    "--upstream",
                    upstream["direct_url"],
                    "--max-seconds",
                    bound,
                ],
                "the bare proxy",
            )
            servers = {
                "direct": Server(
                    "direct",
                    f"{upstream['direct_url']}/tools/file.read",
                    json.dumps(ARGUMENTS),
                    [upstream["pid"]],
                ),
                "bare-proxy": Server(
                    "bare-proxy",
                    f"{bare['bare_url']}/v1/invoke",
                    json.dumps({"tool": "file.read", "arguments": ARGUMENTS}),
                    [bare["pid"], upstream["pid"]],
                ),
            }
            for w in workers:
                for writer in writers:
                    proc, server = start_gatekeeper(folder, w, upstream, writer)
                    procs.append(proc)
                    server.pids.append(upstream["pid"])
                    servers[server.name] = server
            scripts = {name: lua_script(folder, s) for name, s in servers.items()}
            for name, server in servers.items():  # warm-up, not recorded
                warm = run_wrk(server, scripts[name], args.connections, 1.0)
                if warm.errors:
                    raise SystemExit(f"{name}: {warm.errors} failed calls in the warm-up")
            results: dict[str, list[Run]] = {name: [] for name in servers}
            names = list(servers)
            for round_no in range(args.rounds):
                order = names[round_no % len(names) :] + names[: round_no % len(names)]
                for name in order:
                    results[name].append(
                        run_wrk(servers[name], scripts[name], args.connections, args.duration)
                    )
        finally:
            for proc in procs:
                stop_gatekeeper(proc)
            if "bare_proc" in locals():
                stop_child(bare_proc)
            stop_child(up_proc)
    print(
        f"# wrk_bench: file.read {json.dumps(ARGUMENTS)}, allowed; {args.rounds} rounds x "
        f"{args.duration:g}s per row, interleaved; {os.cpu_count()} CPUs, load average {load:.2f} at "
        f"start; {platform.python_implementation()} {platform.python_version()}; wrk -t2 -c{args.connections}"
    )
    print(
        "# CPU columns: the row's own processes first (Gatekeeper: the supervisor if any, then each "
        "worker followed by its audit writer process, if any), the demo upstream's last"
    )
    print(table(results, servers, args.connections))
    print(
        f"# load average at the end: {os.getloadavg()[0]:.2f} (another program running meanwhile shows here)"
    )
    w1 = statistics.median(r.rate for r in results[f"gatekeeper-w{workers[0]}"])
    for w in workers[1:]:
        ratio = statistics.median(r.rate for r in results[f"gatekeeper-w{w}"]) / w1
        print(f"# {w} workers / {workers[0]}: {ratio:.2f}x (medians)")
    for w in workers if "process" in writers else []:
        inline = statistics.median(r.rate for r in results[f"gatekeeper-w{w}"])
        process = statistics.median(r.rate for r in results[f"gatekeeper-w{w}-process"])
        print(f"# {w} worker(s), audit.writer process / inline: {process / inline:.2f}x (medians)")
    if args.json is not None:
        args.json.write_text(json.dumps({k: [vars(r) for r in v] for k, v in results.items()}, indent=1))
    if args.chart is not None:
        title = f"wrk -c{args.connections}, {os.cpu_count()} cores shared with wrk and the upstream"
        chart(args.chart, results, workers, args.connections, title)
        print(f"# chart: {args.chart}")


if __name__ == "__main__":
    main()
