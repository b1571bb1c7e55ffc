"""The decision core stays sans-IO: importing it loads neither aiohttp nor a database driver."""

from __future__ import annotations

import subprocess
import sys

import pytest

IO_MODULES = ("aiohttp", "asyncpg", "aiosqlite", "redis")


@pytest.mark.parametrize("module", ["gatekeeper.gate", "gatekeeper.mcp_methods", "gatekeeper.tool_pins"])
def test_importing_the_core_loads_no_io_library(module: str) -> None:
    check = f"import sys, {module}; print(','.join(m for m in {IO_MODULES!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == ""
