"""Two stages around the hold: bind a held ``shell.exec`` to the workspace files it runs, and
check them again when an approval is used (``runner/bound_files.py`` says why)."""

from __future__ import annotations

from dataclasses import replace

from gatekeeper import codes

from ..models import Decision, Outcome
from ..pipeline import Exchange
from ..runner.bound_files import bind, describe, file_digests
from ..runner.sandbox import SANDBOX_WORKSPACE
from .state import RUNNER


def _digests(ex: Exchange) -> dict[str, str] | None:
    runner = ex.app.get(RUNNER)
    call = ex.call
    if runner is None or call is None or call.tool != "shell.exec":
        return None
    if call.upstream != runner.settings.upstream:
        return None
    arguments = call.arguments
    return file_digests(runner.files, arguments["cmd"], arguments.get("cwd", SANDBOX_WORKSPACE))


def bind_run_files(ex: Exchange) -> None:
    """A held call's digest covers the content of the files it runs; the operator is told which."""
    decision = ex.decision
    if decision is None or decision.outcome is not Outcome.ESCALATE or ex.call is None:
        return
    digests = _digests(ex)
    if not digests:
        return
    ex.bound_files = digests
    ex.call = bind(ex.call, digests)
    ex.decision = replace(decision, reason=f"{decision.reason}; it runs {describe(digests)}")


def confirm_run_files(ex: Exchange) -> None:
    """An approval covers the files as they were: if they changed while the call waited, refuse."""
    decision = ex.decision
    if ex.bound_files is None or decision is None or decision.outcome is not Outcome.ALLOW:
        return
    now = _digests(ex)
    if now == ex.bound_files and ex.call is not None:
        # The runner runs exactly these bytes (a concurrent call may change the files between
        # this check and the sandbox reading them).
        ex.call = replace(ex.call, bound_files=dict(ex.bound_files))
        return
    if now != ex.bound_files:
        changed = sorted(
            path
            for path in {*ex.bound_files, *(now or {})}
            if ex.bound_files.get(path) != (now or {}).get(path)
        )
        ex.decision = Decision(
            Outcome.DENY,
            codes.FILES_CHANGED,
            f"the approval covered the files as they were; changed since: {', '.join(changed)}. "
            "Send the call again to ask for a new approval",
            decision.rule,
            capability=decision.capability,
            policy_version=decision.policy_version,
            approval_id=ex.approval_id,
        )
