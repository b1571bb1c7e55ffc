"""Bench servers in child processes: each prints one JSON line (its URLs) when it is ready and
stops when its stdin closes, so a bench that dies takes its servers with it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any


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


def watch_stdin(stop: asyncio.Event) -> None:
    """In a child: set ``stop`` when stdin reaches end of file (the parent closed its pipe or died)."""
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()

    def readable() -> None:
        if not os.read(fd, 4096):
            loop.remove_reader(fd)
            stop.set()

    loop.add_reader(fd, readable)
