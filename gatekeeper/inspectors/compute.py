"""Compute inspector: GPU provisioning as a capability with amounts budgets can count.

The ROME incident was GPUs quietly repurposed; a provisioning call is therefore
named by GPU type and carries how many GPUs and GPU-hours it asks for. Shapes
that would let a budget be gamed (booleans as numbers, negative or non-finite
hours, absurd counts) are ``compute.opaque`` rather than guesses.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Final

from gatekeeper.models import Capability

if TYPE_CHECKING:
    from gatekeeper.inspectors import InspectContext

__all__ = ["inspect_compute"]

MAX_COUNT: Final = 1_000_000
MAX_HOURS: Final = 1_000_000.0
_GPU_TYPE_RE: Final = re.compile(r"[A-Z0-9_-]{1,64}")


def _opaque(why: str) -> list[Capability]:
    return [Capability("compute.opaque", why[:200])]


def inspect_compute(value: object, ctx: InspectContext) -> list[Capability]:
    """Inspector for the whole ``{gpu_type, count, hours?}`` argument object."""
    if not isinstance(value, dict):
        why = f"compute arguments must be an object, not {type(value).__name__}"
        return [Capability("inspect.invalid", why)]
    gpu_type = value.get("gpu_type")
    count = value.get("count")
    hours = value.get("hours", 1)
    if hours is None:
        hours = 1
    if not isinstance(gpu_type, str):
        return _opaque(f"gpu_type must be a string: {gpu_type!r}")
    name = gpu_type.strip().upper()
    if not name.isascii() or not _GPU_TYPE_RE.fullmatch(name):
        return _opaque(f"gpu_type not a plain identifier: {gpu_type!r}")
    if isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= MAX_COUNT:
        return _opaque(f"count must be a positive integer: {count!r}")
    if isinstance(hours, bool) or not isinstance(hours, int | float):
        return _opaque(f"hours must be a number: {hours!r}")
    hours_f = float(hours)
    if not math.isfinite(hours_f) or not 0 < hours_f <= MAX_HOURS:
        return _opaque(f"hours must be positive and finite: {hours!r}")
    evidence = f"{count} x {name} for {hours_f:g} h"
    amounts = (("gpus", float(count)), ("gpu_hours", count * hours_f))
    return [Capability(f"compute.gpu:{name}", evidence, amounts)]
