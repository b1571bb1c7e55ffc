"""A real ``gatekeeper serve --workers N`` process for tests: started, read, signalled, stopped."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from gatekeeper.identity import ensure_dev_key
from gatekeeper.identity.minting import issue_token

POLICY_DIR = Path(__file__).resolve().parents[2] / "policies"
START_SECONDS = 120.0  # a loaded 2-core machine takes a while to import N+1 interpreters


def fleet_config(tmp_path: Path, *, extra: str = "", policy_dir: Path = POLICY_DIR) -> Path:
    """Every port 0 (the supervisor fixes one per listener), budgets shared in Redis."""
    path = tmp_path / "gatekeeper.yaml"
    path.write_text(
        f"data_dir: {tmp_path / 'home'}\n"
        "listeners:\n  agent: {port: 0}\n  operator: {port: 0}\n"
        "demo: {http_port: 0, mcp_port: 0}\n"
        # Its own key prefix: daily GPU-hour counters of earlier runs in the machine's Redis stay theirs.
        f"budgets: {{store: 'redis://127.0.0.1:6379/0', prefix: 'gk-test-{secrets.token_hex(4)}:'}}\n"
        f"policy:\n  model: {policy_dir / 'model.conf'}\n  policy: {policy_dir / 'policy.csv'}\n"
        f"  tools: {policy_dir / 'tools.yaml'}\n  budgets: {policy_dir / 'budgets.yaml'}\n" + extra
    )
    return path


class Fleet:
    """The supervisor process and what it said (JSON log lines, collected by a thread)."""

    def __init__(self, config: Path, workers: int = 2) -> None:
        self.config = config
        self.home = config.parent / "home"
        self.key = ensure_dev_key(self.home)  # the supervisor finds it and uses it
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gatekeeper", "serve", "--config", str(config), "--workers", str(workers)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        ready = self.wait_line(lambda e: e.get("event") == "workers_ready", START_SECONDS)
        self.agent_url: str = ready["agent"]
        self.operator_url: str = ready["operator"]
        self.pids: list[int] = ready["pids"]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.raw.append(line)
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                self.lines.append(entry)

    def wait_line(self, match: Callable[[dict[str, Any]], bool], within: float) -> dict[str, Any]:
        deadline = time.monotonic() + within
        seen = 0
        while time.monotonic() < deadline:
            for entry in self.lines[seen:]:
                if match(entry):
                    return entry
            seen = len(self.lines)
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError("expected log line not seen; output:\n" + "".join(self.raw[-60:]))

    def token(self, subject: str | None = None, *, operator: bool = False) -> str:
        return issue_token(
            self.key,
            subject=subject or f"agent-{secrets.token_hex(4)}",
            roles=["oncall"] if operator else ["agent"],
            operator=operator,
        )

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self, within: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(within)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            for pid in self.pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            code = self.proc.wait(10)
        self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code

    def audit_verify(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gatekeeper", "audit", "verify", "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


async def worker_of(session: aiohttp.ClientSession, base: str) -> int:
    """Which worker this session's (one, kept-alive) connection reached."""
    async with session.get(f"{base}/healthz") as resp:
        assert resp.status == 200
        return int((await resp.json())["worker"])


async def session_on(base: str, worker: int, *, tries: int = 60) -> aiohttp.ClientSession:
    """A session whose one kept-alive connection reached ``worker`` (new connections until one
    does: SO_REUSEPORT spreads them by a hash of the addresses)."""
    for _ in range(tries):
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
        if await worker_of(session, base) == worker:
            return session
        await session.close()
    raise AssertionError(f"no connection reached worker {worker} in {tries} tries")


async def invoke(
    session: aiohttp.ClientSession,
    base: str,
    token: str,
    tool: str,
    arguments: dict[str, Any],
    **headers: str,
) -> tuple[int, dict[str, Any]]:
    async with session.post(
        f"{base}/v1/invoke",
        json={"tool": tool, "arguments": arguments},
        headers={"Authorization": f"Bearer {token}", **headers},
    ) as resp:
        return resp.status, await resp.json()


async def pending_approval(
    operator: aiohttp.ClientSession, fleet: Fleet, headers: dict[str, str], subject: str | None = None
) -> str:
    """The id of the first pending approval (of ``subject``'s calls, if given), once one shows up."""
    from tests.helpers import poll_until

    async def first() -> str:
        async with operator.get(f"{fleet.operator_url}/v1/approvals?state=pending", headers=headers) as r:
            pending = (await r.json())["approvals"]
        return next((a["id"] for a in pending if subject is None or a["principal"] == subject), "")

    return await poll_until(first, within=20, what="the held call to show up as pending")
