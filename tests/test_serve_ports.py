"""``gatekeeper serve`` on ports chosen by flags, and a port already in use: one line naming the
port and the flag (or key) that changes it, no traceback, exit 1. Real sockets on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import free_ports


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port some other program holds: bound and listening on loopback."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        yield int(holder.getsockname()[1])


def _serve(home: Path, *flags: str) -> subprocess.Popen[str]:
    env = {**os.environ, "GATEKEEPER_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-m", "gatekeeper", "serve", *flags],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    "busy_flag", ["--agent-port", "--operator-port", "--demo-http-port", "--demo-mcp-port"]
)
def test_a_busy_port_is_one_line_naming_it_and_its_flag(
    tmp_path: Path, busy_port: int, busy_flag: str
) -> None:
    ports = dict(
        zip(
            ["--agent-port", "--operator-port", "--demo-http-port", "--demo-mcp-port"],
            free_ports(4),
            strict=True,
        )
    )
    ports[busy_flag] = busy_port
    proc = _serve(tmp_path / "home", *[part for flag, port in ports.items() for part in (flag, str(port))])
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, (out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"127.0.0.1:{busy_port}" in lines[0] and "already in use" in lines[0] and busy_flag in lines[0]
    assert all(json.loads(line) for line in out.splitlines())  # stdout holds JSON log lines only, if any


def test_a_busy_port_from_the_config_names_its_key(tmp_path: Path, busy_port: int) -> None:
    agent, http_port, mcp_port = free_ports(3)
    config = tmp_path / "gatekeeper.yaml"
    config.write_text(
        f"listeners:\n  agent: {{port: {agent}}}\n  operator: {{port: {busy_port}}}\n"
        f"demo: {{http_port: {http_port}, mcp_port: {mcp_port}}}\n"
    )
    proc = _serve(tmp_path / "home", "--config", str(config))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    (line,) = err.strip().splitlines()
    assert str(busy_port) in line and "listeners.operator.port" in line and "--operator-port" in line


def test_ports_chosen_by_flags(tmp_path: Path) -> None:
    agent, operator, http_port, mcp_port = free_ports(4)
    proc = _serve(
        tmp_path / "home",
        *("--agent-port", str(agent), "--operator-port", str(operator)),
        *("--demo-http-port", str(http_port), "--demo-mcp-port", str(mcp_port)),
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{agent}/readyz", timeout=1) as resp:
                    assert resp.status == 200
                with urllib.request.urlopen(f"http://127.0.0.1:{operator}/healthz", timeout=1) as resp:
                    assert resp.status == 200
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
