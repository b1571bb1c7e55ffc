"""Bench servers in child processes: each prints one JSON line (its URLs) when it is ready and
stops when its stdin closes, so a bench that dies takes its servers with it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from typing import Any

from gatekeeper.tasks import stop_at_stdin_end as watch_stdin

__all__ = ["start_json_child", "stop_child", "watch_stdin"]


def start_json_child(argv: Sequence[str], what: str) -> tuple[subprocess.Popen[bytes], Any]:
    """Start ``argv`` and read the JSON line it prints once ready."""
    proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=10)
        raise SystemExit(f"{what} exited ({proc.returncode}) before printing its URLs")
    return proc, json.loads(line)


def stop_child(proc: subprocess.Popen[bytes]) -> None:
    """Close its stdin (the child's signal to stop), then wait; terminate it if it lingers."""
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait(timeout=10)
