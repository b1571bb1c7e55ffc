"""Which held calls are high-risk: approving one needs a comment saying why it is fine.

One rule for the console (which asks for the comment), the operator API and the CLI (where the
queue refuses an approval without one, ``comment_required``): a call that needs more than one
operator, or that exercises a capability matching one of the configured patterns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from .models import Approval

__all__ = ["DEFAULT_HIGH_RISK", "pattern_matches", "risk_reasons"]

# Exact names, or a prefix ending in "*" ("net.*").
DEFAULT_HIGH_RISK: Final = ("net.*", "compute.gpu:*", "proc.inline_code:*", "shell.opaque", "cred.*")


def pattern_matches(name: str, pattern: str) -> bool:
    return name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern


def risk_reasons(approval: Approval, patterns: Sequence[str]) -> list[str]:
    """Why ``approval`` is high-risk, for people; empty when it is not (the console's riskReasons)."""
    reasons = []
    if approval.required_approvals > 1:
        reasons.append(f"needs {approval.required_approvals} operators (two-person rule)")
    for capability in approval.capabilities:
        pattern = next((p for p in patterns if pattern_matches(capability, p)), None)
        if pattern is not None:
            reasons.append(f"{capability} (matches {pattern})")
    return reasons
