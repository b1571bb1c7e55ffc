"""Settings of the sandboxed runner and of the egress gate (``runner:`` and ``egress:`` in the config)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class RunnerLimits:
    """What one ``shell.exec`` may use. Wall time ends the whole process tree; the others are
    per-process rlimits (processes: per sandbox, counted in its own user namespace)."""

    wall_seconds: float = 120.0
    cpu_seconds: int = 120
    memory_mb: int = 4096
    processes: int = 256
    output_bytes: int = 1024 * 1024
    file_size_mb: int = 1024
    open_files: int = 1024
    # Each private tmpfs (/tmp, $HOME, /dev/shm) holds at most this much. Its pages are host RAM
    # no rlimit counts: unsized, each could take half the host's memory.
    scratch_mb: int = 2048


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    """``runner.enabled`` makes the tools real: ``shell.exec`` under bubblewrap, the file tools on
    the real workspace, ``http.fetch`` through the egress gate."""

    enabled: bool = False
    workspace: Path | None = None
    upstream: str = "demo"  # the upstream whose tools the runner serves
    uid: int = 65534  # the host uid sandboxes run as when Gatekeeper runs as root
    python: str = "/usr/bin/python3"  # makes each sandbox's network namespace; a system interpreter
    bwrap: str = "bwrap"
    env: Mapping[str, str] = field(default_factory=dict)  # extra variables the sandbox sees
    limits: RunnerLimits = RunnerLimits()
    # GPU device nodes (globs), one per GPU, lent to sandboxes of a principal whose compute.provision
    # was forwarded, for its hours; and the driver's shared nodes, lent with any GPU.
    gpu_devices: tuple[str, ...] = ("/dev/nvidia[0-9]*",)
    gpu_shared_devices: tuple[str, ...] = (
        "/dev/nvidiactl",
        "/dev/nvidia-uvm",
        "/dev/nvidia-uvm-tools",
        "/dev/nvidia-modeset",
    )


@dataclass(frozen=True, slots=True)
class EgressSettings:
    """How the egress gate decides and connects."""

    pin: Mapping[str, tuple[str, int]] = field(default_factory=dict)  # "HOST:PORT" -> (IP, PORT)
    hold_seconds: float = 30.0  # how long a held connection waits for an operator
    connect_timeout_seconds: float = 10.0
    idle_timeout_seconds: float = 300.0  # a relayed connection with no bytes either way this long ends
    head_timeout_seconds: float = 10.0  # the proxy request's head must arrive within this
    # Connections of one sandbox (or sandboxed server) the gate serves at once; more wait in the
    # sandbox's own listener backlog. Unbounded, one sandbox (processes x open_files sockets)
    # could take every descriptor the gate and the rest of Gatekeeper have.
    sandbox_connections: int = 128
    # Refused connections of one sandbox before the gate stops listening there for the rest of
    # its call: each refusal is an audit record, and a loop makes thousands a second.
    sandbox_refusals: int = 256
