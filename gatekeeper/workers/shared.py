"""Which configurations can run in several processes, and the refusal for the rest.

Per-process state that would split silently across workers is refused at start-up with a
config error naming the key, never discovered later as a budget spent twice or a credential
that one worker minted and another does not know.
"""

from __future__ import annotations

from ..config import Config
from ..errors import ConfigError


def refuse_unshared(config: Config) -> None:
    """Raise ``ConfigError`` when ``config.workers > 1`` and some state would not be shared."""
    n = config.workers
    if n <= 1:
        return
    if config.policy.budgets is not None and config.budget_store.strip() == "memory":
        raise ConfigError(
            f"budgets.store: memory budgets are counted per process, so with workers: {n} every "
            "worker would grant the whole budget; set budgets.store to redis://HOST:6379/0 (shared "
            "by all workers), or policy.budgets: null (no budgets), or workers: 1",
            key="budgets.store",
        )
    credentialed = sorted(name for name, up in config.upstreams.items() if up.egress_credential)
    if credentialed:
        raise ConfigError(
            f"upstreams.{credentialed[0]}.egress_credential: the egress credentials of forwarded calls "
            f"live in the worker that forwarded the call, and a tool's connection to the egress "
            f"listener may reach another of the {n} workers (which would refuse it); run this "
            "configuration with workers: 1",
            key=f"upstreams.{credentialed[0]}.egress_credential",
        )

    bridged = sorted(name for name, up in config.upstreams.items() if up.command)
    if bridged:
        raise ConfigError(
            f"upstreams.{bridged[0]}.command: a stdio MCP server is started by the process that "
            f"serves it, so with workers: {n} each worker would run its own copy and an MCP session "
            "opened through one worker would be unknown to the others; run stdio upstreams with "
            "workers: 1, or serve the tool over HTTP (upstreams.NAME.mcp_url)",
            key=f"upstreams.{bridged[0]}.command",
        )


def chain_id_for(base: str, worker: int) -> str:
    """Worker ``worker``'s audit chain: its own, so workers never race for one chain's head;
    a restarted worker continues its predecessor's chain."""
    return f"{base}/w{worker}"
