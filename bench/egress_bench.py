"""The egress gate against a direct connection, side by side in one run (issue 11's targets).

Three processes on 127.0.0.1: an origin (aiohttp, serving ``/big`` of ``--mb`` MB by sendfile, and
``/small``),
an egress gate (the real ``EgressGate`` with the default pack plus one allow line for the
origin's name, pinned to it, and a credential minted for a bench call), and ``curl`` as the
client (C, not the bottleneck). Reports, as min / median / max of ``--runs`` runs:

- bulk: a ``--mb`` MB download direct, through the gate as absolute-form ``http://`` and through
  a ``CONNECT`` tunnel, and (with bubblewrap installed) from inside a sandbox's network namespace
  the way the runner's commands go: ``sandbox_netns.py`` makes the namespace and hands its
  listener on 127.0.0.1:3128 to the gate, then bubblewrap runs curl there, which connects straight
  to the gate; the ratio gate/direct (target >= 0.8), and the CPU seconds each process
  spent on it (origin and gate from /proc, curl as this process's reaped children);
- connect: time to first byte of ``/small`` on each of those paths (as curl measures it, so a
  sandbox's start is not counted), and the added p50 (target <= 1 ms); in each sandbox curl
  runs twice: ``sandbox CONNECT`` is the first connection in a fresh namespace, ``sandbox, 2nd``
  the next one, the path without the namespace's first-time costs.

    python3 bench/egress_bench.py [--mb 100] [--runs 3] [--small 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.children import start_json_child, stop_child

NAME = "bench.origin"
PACK = Path(__file__).resolve().parent.parent / "policies"
CURL_FORMAT = "%{time_total} %{time_starttransfer} %{size_download}"


async def _origin(mb: int) -> None:
    """Serves ``/big`` with sendfile (aiohttp's FileResponse), so the origin's own CPU does not
    set the pace: with bytes written from Python it was the slowest of the three processes."""
    from aiohttp import web

    big = Path(tempfile.mkdtemp(prefix="egress-bench-origin-")) / "big"
    with big.open("wb") as out:
        for _ in range(mb):
            out.write(b"x" * (1024 * 1024))

    async def serve_big(request: web.Request) -> web.FileResponse:
        return web.FileResponse(big)

    async def serve_small(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_get("/big", serve_big)
    app.router.add_get("/small", serve_small)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(json.dumps({"port": runner.addresses[0][1]}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def _gate(origin_port: int, handoff: str | None = None) -> None:
    from gatekeeper.approvals.queue import ApprovalQueue
    from gatekeeper.approvals.settings import ApprovalSettings
    from gatekeeper.approvals.stores import open_store
    from gatekeeper.config import PolicyFiles
    from gatekeeper.egress.credentials import EgressCredentials
    from gatekeeper.egress.proxy import EgressGate
    from gatekeeper.gate import Gate, load_policy_set
    from gatekeeper.models import Principal
    from gatekeeper.runner.handoff import receive_listener
    from gatekeeper.runner.sandbox import EGRESS_PORT
    from gatekeeper.runner.settings import EgressSettings

    pack = PACK
    folder = Path(tempfile.mkdtemp(prefix="egress-bench-"))
    for name in ("model.conf", "tools.yaml"):
        shutil.copy(pack / name, folder / name)
    policy = (pack / "policy.csv").read_text()
    for port in (80, 443):
        policy += f"p, agent, net.egress:{NAME}:{port}, allow, True, the bench origin\n"
    (folder / "policy.csv").write_text(policy)
    files = PolicyFiles(folder / "model.conf", folder / "policy.csv", folder / "tools.yaml", None)
    gate = Gate(load_policy_set(files))
    queue = ApprovalQueue(open_store("sqlite", folder), ApprovalSettings())
    await queue.start()
    credentials = EgressCredentials()
    pins = {f"{NAME}:80": ("127.0.0.1", origin_port), f"{NAME}:443": ("127.0.0.1", origin_port)}
    egress = EgressGate(EgressSettings(pin=pins), gate, credentials, queue, lambda record: None)
    await egress.start("127.0.0.1", 0)
    principal = Principal("bench-agent", ("agent",), "bench", expires_at=2**40)
    token = credentials.mint(principal, "shell.exec", "0" * 32, 3600.0)
    # A sandbox's credential is good on its own listener only: the sandboxes get their own.
    inside_token = credentials.mint(principal, "shell.exec", "1" * 32, 3600.0)

    async def sandbox(channel: socket.socket) -> None:
        """One sandbox's handoff: serve the listener it sends until the bench hangs up."""
        with channel:
            channel.setblocking(False)
            served = egress.serve_sandbox(await receive_listener(channel, EGRESS_PORT), inside_token)
            await asyncio.get_running_loop().sock_recv(channel, 1)
            await served.close()

    async def handoffs(server: socket.socket) -> None:
        with server:
            while True:
                channel, _ = await asyncio.get_running_loop().sock_accept(server)
                tasks.add(asyncio.ensure_future(sandbox(channel)))

    tasks: set[asyncio.Future[None]] = set()
    if handoff:  # bound before the gate says it is ready
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(handoff)
        server.listen(16)
        server.setblocking(False)
        tasks.add(asyncio.ensure_future(handoffs(server)))
    print(json.dumps({"url": egress.url, "token": token, "inside_token": inside_token}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for task in tasks:
        task.cancel()
    await egress.stop()
    await queue.stop()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _sandboxed(handoff: int) -> list[str]:
    """The runner's network path without the rest of its sandbox: the runner's own namespace step
    (a new network namespace with only loopback, its listener on 127.0.0.1:3128 sent to the gate
    over ``handoff``), then bubblewrap in that namespace."""
    netns = Path(__file__).resolve().parent.parent / "gatekeeper" / "runner" / "sandbox_netns.py"
    return [
        "/usr/bin/python3", "-I", "-S", "-c", netns.read_text(), str(handoff), "3128", "--",
        shutil.which("bwrap") or "bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
        "--unshare-user", "--die-with-parent", "--",
    ]  # fmt: skip


def _curl(*args: str, handoff: str | None = None, times: int = 1) -> list[dict[str, float]]:
    """curl on the host, or (``handoff``: the bench gate's handoff socket) in a sandbox; ``times``
    curls one after the other in that one sandbox."""
    prefix: list[str] = []
    channel = None
    if handoff is not None:
        channel = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        channel.connect(handoff)
        prefix = _sandboxed(channel.fileno())
    curl = ["curl", "-sS", "-m", "60", "-o", "/dev/null", "-w", f"{CURL_FORMAT}\\n", *args]
    if times > 1:
        curl = ["/bin/sh", "-c", f'for i in $(seq {times}); do "$@" || exit; done', "sh", *curl]
    try:
        out = subprocess.run(
            [*prefix, *curl],
            capture_output=True,
            text=True,
            check=True,
            pass_fds=(channel.fileno(),) if channel else (),
        ).stdout.splitlines()
    finally:
        if channel is not None:
            channel.close()  # the gate closes that sandbox's listener
    return [
        {"total": float(line.split()[0]), "ttfb": float(line.split()[1]), "bytes": float(line.split()[2])}
        for line in out
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--small", type=int, default=200, help="requests for the connect latency")
    parser.add_argument("--role", choices=["origin", "gate"], help=argparse.SUPPRESS)
    parser.add_argument("--origin-port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--handoff", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "origin":
        asyncio.run(_origin(args.mb))
        return
    if args.role == "gate":
        from gatekeeper.logs import configure_logging

        # One log line per connection, as in production, but not into the pipe the parent stops
        # reading (it reads only the first line: a full pipe would stall the gate).
        with open(os.devnull, "w") as devnull:
            configure_logging("info", devnull)
            asyncio.run(_gate(args.origin_port, args.handoff))
        return
    if shutil.which("curl") is None:
        raise SystemExit("the egress bench drives curl: apt-get install -y curl")
    me = [sys.executable, __file__]
    origin, info = start_json_child([*me, "--role", "origin", "--mb", str(args.mb)], "origin")
    handoff = str(Path(tempfile.mkdtemp(prefix="egress-bench-sock-")) / "handoff.sock")
    gate, g = start_json_child(
        [*me, "--role", "gate", "--origin-port", str(info["port"]), "--handoff", handoff], "egress gate"
    )
    sandbox = handoff if shutil.which("bwrap") else None
    try:
        direct_url = f"http://127.0.0.1:{info['port']}"
        via = ["-x", g["url"], "-U", f"gatekeeper:{g['token']}"]
        fetch: dict[str, tuple[str | None, list[str]]] = {
            "direct": (None, [f"{direct_url}/big"]),
            "gate http": (None, [*via, f"http://{NAME}/big"]),
            "gate CONNECT": (None, [*via, "--proxytunnel", f"http://{NAME}/big"]),
        }
        if sandbox:
            inside = ["-x", "http://127.0.0.1:3128", "-U", f"gatekeeper:{g['inside_token']}", "--proxytunnel"]
            fetch["sandbox CONNECT"] = (sandbox, [*inside, f"http://{NAME}/big"])
        else:
            print("bubblewrap is not installed: no sandbox row (apt-get install -y bubblewrap)")
        rows: dict[str, list[float]] = {name: [] for name in fetch}
        cpu: dict[str, list[tuple[float, float, float]]] = {name: [] for name in rows}
        for _ in range(args.runs):
            for name, (where, argv) in fetch.items():
                before = (_cpu_seconds(origin.pid), _cpu_seconds(gate.pid), _children_cpu())
                rows[name].append(_curl(*argv, handoff=where)[0]["total"])
                after = (_cpu_seconds(origin.pid), _cpu_seconds(gate.pid), _children_cpu())
                cpu[name].append((after[0] - before[0], after[1] - before[1], after[2] - before[2]))
        size = args.mb * 1024 * 1024
        print(f"bulk download of {args.mb} MB (MB/s: min / median / max of {args.runs} runs)")
        direct_rate = statistics.median(size / t / 1e6 for t in rows["direct"])
        for name, times in rows.items():
            rates = sorted(size / t / 1e6 for t in times)
            ratio = statistics.median(rates) / direct_rate
            low, mid, high = rates[0], statistics.median(rates), rates[-1]
            o, g, c = (statistics.median(run[i] for run in cpu[name]) for i in range(3))
            print(
                f"  {name:15} {low:8.0f} / {mid:8.0f} / {high:8.0f}  ratio {ratio:.2f}x"
                f"   CPU s: origin {o:.2f}  gate {g:.2f}  curl {c:.2f}"
            )
        # Interleaved, one of each per round: a shared machine's drift hits all three alike. A
        # sandbox runs curl twice: its first connection is a fresh namespace's, the second is
        # the path alone.
        first_byte: dict[str, list[float]] = {name: [] for name in fetch}
        for _ in range(args.small):
            for name, (where, argv) in fetch.items():
                runs = _curl(
                    *argv[:-1], argv[-1].replace("/big", "/small"), handoff=where, times=2 if where else 1
                )
                first_byte[name].append(runs[0]["ttfb"])
                if where:
                    first_byte.setdefault("sandbox, 2nd", []).append(runs[1]["ttfb"])
        p50 = statistics.median
        print(f"time to first byte of /small, {args.small} requests each (p50, p99 in ms)")
        for name, values in first_byte.items():
            ordered = sorted(values)
            p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
            added = (p50(values) - p50(first_byte["direct"])) * 1000
            print(f"  {name:15} p50 {p50(values) * 1000:6.2f}  p99 {p99 * 1000:6.2f}  added p50 {added:+.2f}")
    finally:
        stop_child(gate)
        stop_child(origin)


if __name__ == "__main__":
    main()
