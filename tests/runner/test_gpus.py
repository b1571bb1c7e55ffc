"""GPUs are hidden from sandboxes unless the caller's ``compute.provision`` went through.

The "GPUs" are files standing in for device nodes (this machine has none): the runner lends
them exactly as it would ``/dev/nvidia0`` and ``/dev/nvidiactl``, by ``--dev-bind``.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from gatekeeper.app import Gatekeeper
from gatekeeper.models import Principal
from gatekeeper.runner.gpus import GpuLeases

from ..helpers import Clock, mint, running, vote
from .conftest import Agent, Outside, runner_config


@pytest.fixture
def fake_gpus() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="gk-fake-gpus-"))
    folder.chmod(0o755)  # the sandbox's uid must reach what it is lent
    for name in ("nvidia0", "nvidia1", "nvidia10", "nvidiactl"):
        (folder / name).write_text(f"{name}\n")
        (folder / name).chmod(0o644)
    return folder


@pytest.fixture
async def gpu_host(tmp_path: Path, outside: Outside, fake_gpus: Path) -> AsyncIterator[Gatekeeper]:
    config = runner_config(tmp_path, outside)
    runner = replace(
        config.runner,
        gpu_devices=(f"{fake_gpus}/nvidia[0-9]*",),
        gpu_shared_devices=(f"{fake_gpus}/nvidiactl", f"{fake_gpus}/missing"),
    )
    async with running(replace(config, runner=runner)) as gk:
        yield gk


def _seen(stdout: str) -> list[str]:
    return sorted(line for line in stdout.split() if line)


async def test_a_sandbox_sees_gpus_only_while_a_provisioned_lease_runs(
    gpu_host: Gatekeeper, fake_gpus: Path
) -> None:
    runner = gpu_host.runner
    assert runner is not None
    clock = Clock(1_000_000.0)
    runner.gpus = GpuLeases(runner.settings.gpu_devices, runner.settings.gpu_shared_devices, clock)
    # The workspace names where the lent nodes appear (a link the host made, as a setup step),
    # so the command reads only workspace paths.
    (Path(str(runner.settings.workspace)) / "gpus").symlink_to(fake_gpus)
    look = "cat gpus/* 2>/dev/null; true"
    async with aiohttp.ClientSession() as http:
        agent, other = Agent(gpu_host, http), Agent(gpu_host, http)
        other.token = mint(gpu_host, subject="agent-2")  # the same role, another subject
        assert _seen((await agent.sh(look))["stdout"]) == []  # hidden by default
        status, body = await agent.call("compute.provision", gpu_type="H100", count=1, hours=1)
        assert status == 200, body  # one GPU for an hour: the pack allows it
        assert _seen((await agent.sh(look))["stdout"]) == ["nvidia0", "nvidiactl"]
        assert _seen((await other.sh(look))["stdout"]) == []  # another principal has no lease
        # Two more: held, approved by an operator, then sent again and forwarded.
        status, body = await agent.call("compute.provision", gpu_type="H100", count=2, hours=1)
        assert status == 202, body
        assert (await vote(http, gpu_host, body["approval_id"], "approve"))[0] == 200
        status, body = await agent.call("compute.provision", gpu_type="H100", count=2, hours=1)
        assert status == 200, body
        # Three in all, in numeric order (nvidia10 is the third), and the driver's shared node.
        assert _seen((await agent.sh(look))["stdout"]) == ["nvidia0", "nvidia1", "nvidia10", "nvidiactl"]
        clock.now += 3600 + 1  # the lease's hour is over
        assert _seen((await agent.sh(look))["stdout"]) == []


def test_leases_add_up_expire_and_never_exceed_the_host() -> None:
    clock = Clock(1_000_000.0)
    leases = GpuLeases(("/nonexistent/gpu[0-9]",), (), clock)
    p = Principal("agent-1", ("agent",), "issuer", expires_at=2**40)
    q = Principal("agent-1", ("agent",), "another-issuer", expires_at=2**40)
    leases.grant(p, 1, 1.0, "d1")
    leases.grant(p, 2, 0.5, "d2")
    leases.grant(p, 0, 9.0, "d3")  # nothing
    assert leases.leased(p) == 3 and leases.leased(q) == 0
    clock.now += 1800 + 1
    assert leases.leased(p) == 1
    assert leases.devices_for(p) == []  # a lease on a host without GPUs lends nothing
    clock.now += 1800
    assert leases.leased(p) == 0
