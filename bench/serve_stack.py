"""The server side of the baseline benchmark, in its own process.

Starts, in one event loop on 127.0.0.1 (every port chosen by the OS):

- the demo upstream (plain HTTP tools and MCP tools), as ``Gatekeeper`` starts it on defaults;
- a bare aiohttp pass-through proxy (``bench.bare_proxy``) in front of the demo HTTP tools;
- a real Gatekeeper (the repository's ``policies/`` pack, a fresh data folder in a temp dir).

Prints one JSON line on stdout — the URLs and an agent token — then serves until stdin closes,
SIGTERM/SIGINT arrives, or ``--max-seconds`` pass (a bound, so a forgotten server still ends).
Decision logging stays ON (the structlog pipeline runs for every call) but is written to
/dev/null so terminal printing does not dominate the numbers.

``--profile FILE`` runs the whole serving loop under cProfile and dumps the stats to FILE on exit.
``--upstream-process`` runs the demo upstream in a child process of its own (Gatekeeper's ``demo``
upstream points there), so the upstream's CPU is not taken from Gatekeeper's event loop; the JSON
line then names that process as ``upstream_pid``. Off by default: one process, as before.
``--trim-received S`` empties the demo upstream's record of received calls every S seconds (off by
default). The demo keeps every call it received, for tests; under long or large-body load that
list only grows, and with it the server's heap (memory, and the collector's full passes).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bare_proxy import start_bare_proxy
from bench.children import start_json_child, stop_child, watch_stdin
from gatekeeper.app import Gatekeeper
from gatekeeper.config import Config, DemoSettings, Listener, PolicyFiles, Upstream, default_config
from gatekeeper.demo.runner import DemoUpstream
from gatekeeper.identity import issue_token
from gatekeeper.logs import configure_logging

POLICY_DIR = REPO / "policies"


def bench_config(
    data_dir: Path, upstream: dict[str, Any] | None = None, *, durable_answers: bool = True
) -> Config:
    """Embedded defaults with every port picked by the OS (the same shape the tests use).

    With ``upstream`` (the URLs of a demo upstream in another process), the in-process demo is off
    and the ``demo`` upstream points there instead.
    """
    config = replace(
        default_config(),
        data_dir=data_dir,
        agent_listener=Listener("127.0.0.1", 0),
        operator_listener=Listener("127.0.0.1", 0),
        demo=DemoSettings(enabled=True, host="127.0.0.1", http_port=0, mcp_port=0),
        policy=PolicyFiles(POLICY_DIR / "model.conf", POLICY_DIR / "policy.csv", POLICY_DIR / "tools.yaml"),
    )
    config = replace(config, audit=replace(config.audit, durable_answers=durable_answers))
    if upstream is None:
        return config
    return replace(
        config,
        demo=replace(config.demo, enabled=False),
        upstreams={"demo": Upstream("demo", url=upstream["direct_url"], mcp_url=upstream["mcp_direct_url"])},
    )


def mint(gk: Gatekeeper) -> str:
    ident = gk.config.identity
    assert ident.dev_key_path is not None
    return issue_token(
        Path(ident.dev_key_path),
        subject="bench-agent",
        roles=["agent"],
        issuer=ident.issuer,
        audience=ident.audience,
        ttl_seconds=4 * 3600,
    )


async def _trim_received(demo: DemoUpstream, every: float, stop: asyncio.Event) -> None:
    """Empty the demo's lists of received calls every ``every`` seconds until ``stop`` is set."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=every)
        except TimeoutError:
            demo.http_received.clear()
            demo.mcp_received.clear()


async def _serve_until_stopped(max_seconds: float, demo: DemoUpstream | None, trim_received: float) -> None:
    """Wait for EOF on stdin, SIGTERM/SIGINT or ``max_seconds``; trim the demo's records meanwhile."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watch_stdin(stop)
    trimmer = None
    if demo is not None and trim_received > 0:
        trimmer = asyncio.create_task(_trim_received(demo, trim_received, stop))
    try:
        await asyncio.wait_for(stop.wait(), timeout=max_seconds)
    except TimeoutError:
        pass
    finally:
        stop.set()
        if trimmer is not None:
            await trimmer


def _print_line(info: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()


async def serve_upstream_only(max_seconds: float, trim_received: float) -> None:
    """Only the demo upstream (HTTP and MCP tools), for ``--upstream-process``."""
    demo = DemoUpstream("127.0.0.1", 0, 0)
    await demo.start()
    try:
        _print_line({"direct_url": demo.http_url, "mcp_direct_url": demo.mcp_url, "pid": os.getpid()})
        await _serve_until_stopped(max_seconds, demo, trim_received)
    finally:
        await demo.stop()


def _start_upstream_process(max_seconds: float, trim_received: float) -> tuple[subprocess.Popen[bytes], Any]:
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--upstream-only",
        "--max-seconds",
        str(max_seconds),
        "--trim-received",
        str(trim_received),
    ]
    return start_json_child(argv, "the upstream process")


async def serve(
    max_seconds: float,
    trim_received: float = 0.0,
    upstream_process: bool = False,
    durable_answers: bool = True,
) -> None:
    upstream_proc, upstream = (None, None)
    if upstream_process:
        upstream_proc, upstream = _start_upstream_process(max_seconds + 30, trim_received)
    try:
        with tempfile.TemporaryDirectory(prefix="gk-bench-") as tmp:
            gk = Gatekeeper(bench_config(Path(tmp) / "gk-home", upstream, durable_answers=durable_answers))
            await gk.start()
            if upstream is None:
                assert gk.demo is not None
                urls = {"direct_url": gk.demo.http_url, "mcp_direct_url": gk.demo.mcp_url}
                upstream = {**urls, "pid": os.getpid()}
            bare_runner, bare_url = await start_bare_proxy("127.0.0.1", 0, upstream["direct_url"])
            try:
                _print_line(
                    {
                        "direct_url": upstream["direct_url"],
                        "bare_url": bare_url,
                        "agent_url": gk.agent_url,
                        "mcp_direct_url": upstream["mcp_direct_url"],
                        "mcp_gatekeeper_url": f"{gk.agent_url}/mcp/demo",
                        "token": mint(gk),
                        "pid": os.getpid(),
                        "upstream_pid": upstream["pid"],
                        "policy_version": gk.gate.policy_set.version if gk.gate.policy_set else None,
                    }
                )
                await _serve_until_stopped(max_seconds, gk.demo, trim_received)
            finally:
                await bare_runner.cleanup()
                await gk.stop()
    finally:
        if upstream_proc is not None:
            stop_child(upstream_proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="hard bound on serving time")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile the serving loop into FILE")
    parser.add_argument("--log-level", default="info", help="decision lines are info: keep logging on")
    parser.add_argument(
        "--trim-received", type=float, default=0.0, help="empty the demo's lists of received calls every S s"
    )
    parser.add_argument(
        "--upstream-process", action="store_true", help="run the demo upstream in its own child process"
    )
    parser.add_argument(
        "--no-durable-answers",
        action="store_true",
        help="audit.durable_answers off: answers do not wait for their record's commit",
    )
    parser.add_argument("--upstream-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    devnull = open(os.devnull, "w")  # lives as long as the process
    configure_logging(args.log_level, devnull)
    if args.upstream_only:
        asyncio.run(serve_upstream_only(args.max_seconds, args.trim_received))
        return
    if args.profile is None:
        asyncio.run(
            serve(args.max_seconds, args.trim_received, args.upstream_process, not args.no_durable_answers)
        )
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        asyncio.run(
            serve(args.max_seconds, args.trim_received, args.upstream_process, not args.no_durable_answers)
        )
    finally:
        profiler.disable()
        profiler.dump_stats(str(args.profile))


if __name__ == "__main__":
    main()
