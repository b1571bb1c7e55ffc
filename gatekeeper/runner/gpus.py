"""GPUs a sandbox may see: none, unless the caller holds a lease from a forwarded ``compute.provision``.

The sandbox's ``/dev`` is minimal, so GPUs are hidden by default (a miner needs one). A
``compute.provision`` call that the policy let through (allowed, approved by an operator or
covered by a grant; budgets charged) leases ``count`` of this host's GPUs to its principal for
``hours``: while the lease runs, that principal's ``shell.exec`` sandboxes get that many GPU
device nodes (``runner.gpu_devices``, in order) and the shared ones (``runner.gpu_shared_devices``:
the driver's control nodes). Leases live in the runner's process and end with it, or at their time.
"""

from __future__ import annotations

import glob
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..models import Principal

PROVISION_TOOL = "compute.provision"


@dataclass(frozen=True, slots=True)
class Lease:
    count: int
    until: float  # time.time()
    decision_id: str


def _key(principal: Principal) -> tuple[str, str]:
    return principal.issuer, principal.subject


class GpuLeases:
    def __init__(
        self,
        devices: Sequence[str],
        shared: Sequence[str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._device_patterns = tuple(devices)
        self._shared_patterns = tuple(shared)
        self._leases: dict[tuple[str, str], list[Lease]] = {}
        self._clock = clock

    def grant(self, principal: Principal, count: int, hours: float, decision_id: str) -> None:
        """A forwarded ``compute.provision``: ``count`` GPUs for ``hours``."""
        if count < 1 or hours <= 0:
            return
        lease = Lease(count, self._clock() + hours * 3600.0, decision_id)
        self._leases.setdefault(_key(principal), []).append(lease)

    def leased(self, principal: Principal) -> int:
        """How many GPUs this principal's leases cover right now (expired ones are dropped)."""
        now = self._clock()
        key = _key(principal)
        live = [lease for lease in self._leases.get(key, []) if lease.until > now]
        if live:
            self._leases[key] = live
        else:
            self._leases.pop(key, None)
        return sum(lease.count for lease in live)

    def devices_for(self, principal: Principal) -> list[str]:
        """The device nodes a sandbox of this principal gets: none without a live lease."""
        count = self.leased(principal)
        if count == 0:
            return []
        gpus = _existing(self._device_patterns)[:count]
        if not gpus:
            return []
        return gpus + _existing(self._shared_patterns)


def _existing(patterns: Sequence[str]) -> list[str]:
    """Each pattern's matches on this host, sorted, in the patterns' order, without repeats."""
    seen: list[str] = []
    for pattern in patterns:
        for path in sorted(glob.glob(pattern), key=_natural):
            if path not in seen:
                seen.append(path)
    return seen


def _natural(path: str) -> list[int | str]:
    """``/dev/nvidia2`` before ``/dev/nvidia10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]
