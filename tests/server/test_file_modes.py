"""What Gatekeeper writes in its data folder is owner-only, also in a folder that already existed
and under a permissive umask: the stores hold who asked for what; the keys sign tokens."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from ..helpers import invoke, make_config, mint, running

PUBLIC = {"dev-signing-key.pub.pem", "audit-checkpoint.pub.pem"}  # public keys are meant to be read


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _loose_files(root: Path) -> dict[str, str]:
    found = {}
    for path in root.rglob("*"):
        mode = os.lstat(path).st_mode
        if stat.S_ISREG(mode) and path.name not in PUBLIC and mode & 0o077:
            found[str(path.relative_to(root))] = oct(stat.S_IMODE(mode))
    return found


async def test_stores_and_keys_are_owner_only_in_a_folder_that_already_existed(
    tmp_path: Path, loose_umask: None, http: aiohttp.ClientSession
) -> None:
    home = tmp_path / "gk-home"
    home.mkdir(mode=0o755)
    # an earlier run (before this fix) left a world-readable audit file behind
    (home / "approvals.sqlite3").touch(mode=0o644)
    async with running(make_config(tmp_path, data_dir=home)) as gk:
        status, body, _ = await invoke(http, gk, "file.read", {"path": "README.md"}, mint(gk))
        assert status == 200, body
        await gk.audit.flush()
        names = {p.name for p in home.rglob("*")}
        assert {"audit.sqlite3", "audit.sqlite3-wal", "approvals.sqlite3", "audit-checkpoint.pem"} <= names
        assert _loose_files(home) == {}
    assert _loose_files(home) == {}
