"""Offline commands (``token issue``, ``policy lint/test/explain --config``, ``audit
export/verify``) run with a configuration whose server-only secrets are not in the environment:
the webhook's secret and ``${VAR}`` credentials of upstreams are needed by ``serve`` alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"


def _gatekeeper(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GATEKEEPER_WEBHOOK_SECRET", "TOOL_KEY")}
    env["GATEKEEPER_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "gatekeeper", *args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text(
        f"data_dir: {tmp_path / 'home'}\n"
        "approvals:\n  webhook_url: http://127.0.0.1:9/hook\n"
        "upstreams:\n  tools:\n    url: http://127.0.0.1:9\n    headers: {X-Key: '${TOOL_KEY}'}\n"
        f"policy:\n  policy: {POLICY_DIR / 'policy.csv'}\n  tools: {POLICY_DIR / 'tools.yaml'}\n"
        f"  model: {POLICY_DIR / 'model.conf'}\n"
    )
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ("token", "issue", "--sub", "a", "--role", "agent"),
        ("policy", "lint"),
        ("policy", "test"),
        (
            "policy",
            "explain",
            "--tool",
            "file.read",
            "--arguments",
            '{"path": "README.md"}',
            "--role",
            "agent",
        ),
        ("audit", "export", "--since", "2000-01-01", "--until", "2100-01-01", "--out", "{out}"),
        ("audit", "verify"),
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_offline_commands_need_no_server_secrets(config: Path, tmp_path: Path, argv: tuple[str, ...]) -> None:
    if argv[0] == "audit":  # a trail to read: one real record, written by an offline-loaded writer
        import asyncio

        from gatekeeper.audit.log import AuditLog, make_sink
        from gatekeeper.config import load_config

        from .audit.conftest import decision

        async def write() -> None:
            loaded = load_config(config, offline=True)
            log = AuditLog(make_sink(loaded.approvals.store, loaded.data_dir), chain_id="h:1")
            await log.start()
            log.append(**decision(1))
            await log.stop()

        asyncio.run(write())
    args = [a.replace("{out}", str(tmp_path / "out.jsonl")) for a in argv]
    done = _gatekeeper(*args, "--config", str(config), home=tmp_path / "home")
    assert done.returncode == 0, done.stderr
    assert "GATEKEEPER_WEBHOOK_SECRET" not in done.stderr


def test_serve_still_requires_the_webhook_secret(config: Path, tmp_path: Path) -> None:
    done = _gatekeeper("serve", "--config", str(config), home=tmp_path / "home")
    assert done.returncode == 2
    assert "GATEKEEPER_WEBHOOK_SECRET" in done.stderr or "TOOL_KEY" in done.stderr
