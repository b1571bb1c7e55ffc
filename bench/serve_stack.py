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
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import signal
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bare_proxy import start_bare_proxy
from gatekeeper.app import Gatekeeper
from gatekeeper.config import Config, DemoSettings, Listener, PolicyFiles, default_config
from gatekeeper.identity import issue_token
from gatekeeper.logs import configure_logging

POLICY_DIR = REPO / "policies"


def bench_config(data_dir: Path) -> Config:
    """Embedded defaults with every port picked by the OS (the same shape the tests use)."""
    return replace(
        default_config(),
        data_dir=data_dir,
        agent_listener=Listener("127.0.0.1", 0),
        operator_listener=Listener("127.0.0.1", 0),
        demo=DemoSettings(enabled=True, host="127.0.0.1", http_port=0, mcp_port=0),
        policy=PolicyFiles(POLICY_DIR / "model.conf", POLICY_DIR / "policy.csv", POLICY_DIR / "tools.yaml"),
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


def _watch_stdin(stop: asyncio.Event) -> None:
    """Stop when stdin reaches end of file (the load generator closed its pipe or died)."""
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()

    def readable() -> None:
        if not os.read(fd, 4096):
            loop.remove_reader(fd)
            stop.set()

    loop.add_reader(fd, readable)


async def serve(max_seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="gk-bench-") as tmp:
        gk = Gatekeeper(bench_config(Path(tmp) / "gk-home"))
        await gk.start()
        assert gk.demo is not None
        bare_runner, bare_url = await start_bare_proxy("127.0.0.1", 0, gk.demo.http_url)
        try:
            info = {
                "direct_url": gk.demo.http_url,
                "bare_url": bare_url,
                "agent_url": gk.agent_url,
                "mcp_direct_url": gk.demo.mcp_url,
                "mcp_gatekeeper_url": f"{gk.agent_url}/mcp/demo",
                "token": mint(gk),
                "pid": os.getpid(),
                "policy_version": gk.gate.policy_set.version if gk.gate.policy_set else None,
            }
            sys.stdout.write(json.dumps(info) + "\n")
            sys.stdout.flush()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            _watch_stdin(stop)
            try:
                await asyncio.wait_for(stop.wait(), timeout=max_seconds)
            except TimeoutError:
                pass
        finally:
            await bare_runner.cleanup()
            await gk.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="hard bound on serving time")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile the serving loop into FILE")
    parser.add_argument("--log-level", default="info", help="decision lines are info: keep logging on")
    args = parser.parse_args()
    devnull = open(os.devnull, "w")  # lives as long as the process
    configure_logging(args.log_level, devnull)
    if args.profile is None:
        asyncio.run(serve(args.max_seconds))
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        asyncio.run(serve(args.max_seconds))
    finally:
        profiler.disable()
        profiler.dump_stats(str(args.profile))


if __name__ == "__main__":
    main()
