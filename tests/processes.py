"""A real ``gatekeeper serve`` process on loopback, for tests that need what only a process has:
its own log streams, its own signals, a kill -9."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Served:
    """A running server: its URLs, data folder, process, and (after it ends) its output."""

    agent: str
    operator: str
    agent_port: int
    home: Path
    proc: subprocess.Popen[str]
    stdout: str = ""
    stderr: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "GATEKEEPER_HOME": str(self.home)}
        return subprocess.run(
            [sys.executable, "-m", "gatekeeper", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=check,
        )

    def token(self, sub: str = "agent-1", role: str = "agent", *flags: str) -> str:
        return self.cli("token", "issue", "--sub", sub, "--role", role, *flags).stdout.strip()

    def log_lines(self) -> list[str]:
        return [line for line in (self.stdout + "\n" + self.stderr).splitlines() if line.strip()]


def wait_ready(url: str, proc: subprocess.Popen[str], seconds: float = 40.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError as exc:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"gatekeeper did not become ready (exit {proc.poll()})") from exc
            time.sleep(0.1)


def start_served(tmp_path: Path, extra_yaml: str = "", home: Path | None = None) -> Served:
    agent, operator, http_port, mcp_port = free_ports(4)
    config = tmp_path / "gatekeeper.yaml"
    config.write_text(
        f"listeners:\n  agent: {{port: {agent}}}\n  operator: {{port: {operator}}}\n"
        f"demo: {{http_port: {http_port}, mcp_port: {mcp_port}}}\n"
        f"policy:\n  model: {POLICY_DIR / 'model.conf'}\n  policy: {POLICY_DIR / 'policy.csv'}\n"
        f"  tools: {POLICY_DIR / 'tools.yaml'}\n" + extra_yaml
    )
    home = home or tmp_path / "home"
    env = {**os.environ, "GATEKEEPER_HOME": str(home)}
    out = (tmp_path / "serve.out").open("w")
    err = (tmp_path / "serve.err").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gatekeeper", "serve", "--config", str(config)],
        env=env,
        stdout=out,
        stderr=err,
        text=True,
    )
    out.close()
    err.close()
    served = Served(f"http://127.0.0.1:{agent}", f"http://127.0.0.1:{operator}", agent, home, proc)
    served.extra["out"], served.extra["err"] = tmp_path / "serve.out", tmp_path / "serve.err"
    try:
        wait_ready(served.agent, proc)
    except BaseException:
        stop_served(served, sig=signal.SIGKILL)
        raise
    return served


def stop_served(served: Served, sig: int = signal.SIGTERM) -> int:
    if served.proc.poll() is None:
        served.proc.send_signal(sig)
    code = served.proc.wait(timeout=40)
    served.stdout = Path(served.extra["out"]).read_text()
    served.stderr = Path(served.extra["err"]).read_text()
    return code


@contextmanager
def served_process(tmp_path: Path, extra_yaml: str = "") -> Iterator[Served]:
    served = start_served(tmp_path, extra_yaml)
    try:
        yield served
    finally:
        stop_served(served)


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line parsed as JSON; a line that is not JSON fails the test, quoted."""
    lines = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            lines.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"a log line is not JSON: {line[:300]!r}") from None
    return lines
