"""What may run as several workers, and the config errors for what may not."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from gatekeeper.config import Upstream, default_config, load_config, parse_workers
from gatekeeper.errors import ConfigError
from gatekeeper.workers.shared import refuse_unshared
from gatekeeper.workers.supervisor import with_workers

from .fleet import fleet_config


def test_workers_is_a_count_or_auto(tmp_path: Path) -> None:
    assert parse_workers(3) == 3 and parse_workers("2") == 2
    assert parse_workers("auto") == len(os.sched_getaffinity(0))
    for bad in (0, -1, True, 1.5, "many", 10_000, None):
        with pytest.raises(ValueError, match="whole number"):
            parse_workers(bad)
    path = tmp_path / "gk.yaml"
    path.write_text("workers: 0\n")
    with pytest.raises(ConfigError, match=r"gk.yaml: workers: must be a whole number"):
        load_config(path)
    path.write_text("workers: auto\n")
    assert load_config(path).workers >= 1
    assert default_config().workers == 1
    with pytest.raises(ConfigError, match="--workers"):
        with_workers(default_config(), "none")


def test_memory_budgets_are_refused_with_several_workers() -> None:
    config = replace(default_config(), workers=2)
    with pytest.raises(ConfigError, match=r"budgets.store: memory budgets .* redis://") as err:
        refuse_unshared(config)
    assert err.value.detail["key"] == "budgets.store"
    refuse_unshared(replace(config, budget_store="redis://127.0.0.1:6379/0"))
    refuse_unshared(replace(config, policy=replace(config.policy, budgets=None)))  # no budgets at all
    refuse_unshared(replace(config, workers=1))


def test_per_call_egress_credentials_are_refused_with_several_workers() -> None:
    base = replace(default_config(), workers=2, budget_store="redis://127.0.0.1:6379/0")
    box = Upstream("box", url="http://127.0.0.1:9", egress_credential=True)
    config = replace(base, upstreams={"box": box})
    with pytest.raises(ConfigError, match=r"upstreams.box.egress_credential: .* workers: 1"):
        refuse_unshared(config)


def test_stdio_upstreams_are_refused_with_several_workers() -> None:
    base = replace(default_config(), workers=2, budget_store="redis://127.0.0.1:6379/0")
    files = Upstream("files", command=("npx", "server-filesystem", "/srv"))
    with pytest.raises(ConfigError, match=r"upstreams.files.command: .* workers: 1") as err:
        refuse_unshared(replace(base, upstreams={"files": files}))
    assert err.value.detail["key"] == "upstreams.files.command"
    refuse_unshared(replace(base, workers=1, upstreams={"files": files}))


def test_serve_refuses_before_starting_any_worker(tmp_path: Path) -> None:
    config = tmp_path / "gk.yaml"
    config.write_text(
        f"data_dir: {tmp_path / 'home'}\nlisteners:\n  agent: {{port: 0}}\n  operator: {{port: 0}}\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "gatekeeper", "serve", "--config", str(config), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert "memory budgets are counted per process" in run.stderr + run.stdout
    assert "worker_started" not in run.stdout


def test_fleet_config_is_accepted(tmp_path: Path) -> None:
    config = with_workers(load_config(fleet_config(tmp_path)), "2")
    refuse_unshared(config)
    assert config.workers == 2
