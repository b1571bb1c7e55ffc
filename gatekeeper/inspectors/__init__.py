"""Inspectors: turn one tool argument into the capabilities the call would exercise.

Each inspector is a pure function ``(value, ctx) -> list[Capability]``: no I/O,
no DNS, fast, and fail-closed (what it cannot understand becomes an ``*.opaque``
capability, never a silent pass). A value of the wrong JSON type yields
``inspect.invalid``. Tool manifests name inspectors by the keys of ``INSPECTORS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from gatekeeper.inspectors.compute import inspect_compute
from gatekeeper.inspectors.content import inspect_content
from gatekeeper.inspectors.paths import inspect_fs_read, inspect_fs_write
from gatekeeper.inspectors.shell import inspect_shell, inspect_shell_command
from gatekeeper.inspectors.url import inspect_url
from gatekeeper.models import Capability


@dataclass(frozen=True, slots=True)
class InspectContext:
    """What an inspector may know besides the value: only where relative paths start."""

    workspace: str = "/workspace"


Inspector = Callable[[object, InspectContext], list[Capability]]

INSPECTORS: Mapping[str, Inspector] = MappingProxyType(
    {
        "shell": inspect_shell,
        "shell.command": inspect_shell_command,
        "url": inspect_url,
        "fs.read": inspect_fs_read,
        "fs.write": inspect_fs_write,
        "compute": inspect_compute,
        "content": inspect_content,
    }
)

__all__ = ["INSPECTORS", "InspectContext", "Inspector"]
