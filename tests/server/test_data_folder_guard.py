"""Gatekeeper's own data folder is a credential wherever it lives: /tmp is scratch the pack allows,
and a data folder there (as in these tests) must not become readable or writable through it."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.helpers import invoke, make_config, mint, running


async def test_paths_in_the_data_folder_are_secrets_even_under_tmp(tmp_path: Path) -> None:
    async with running(make_config(tmp_path)) as gk, aiohttp.ClientSession() as http:
        token = mint(gk)
        home = gk.config.data_dir.resolve()
        calls = [
            ("file.read", {"path": f"{home}/approvals.db"}),
            ("file.write", {"path": f"{home}/keys/x", "content": "x"}),
            ("shell.exec", {"cmd": f"cp {home}/audit.db /workspace/a.db"}),
            ("shell.exec", {"cmd": f"find {home} -delete"}),
        ]
        for tool, arguments in calls:
            status, body, _ = await invoke(http, gk, tool, arguments, token)
            assert status == 403 and body["capability"] == "cred.secret", (tool, arguments, body)
        # Elsewhere in /tmp: scratch, allowed.
        status, body, _ = await invoke(http, gk, "shell.exec", {"cmd": "cat /tmp/scratch.log"}, token)
        assert status == 200, body
