"""The one configuration file, its embedded defaults, and its validation.

Every setting has a safe default, so ``gatekeeper serve`` with no file runs: both
listeners on loopback, the default policy pack, the demo tools, and a development
signing key generated in the data folder. A bad file stops start-up with a message
naming the file, the key and what is wrong.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, NamedTuple

from .approvals.settings import ApprovalSettings
from .audit.settings import AuditSettings
from .errors import ConfigError
from .identity.settings import SUPPORTED_ALGORITHMS, IdentitySettings
from .runner.settings import EgressSettings, RunnerLimits, RunnerSettings
from .yamlfile import read_yaml

DEFAULT_POLICY_DIR = Path(__file__).parent / "defaults" / "policies"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Listener:
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where a tool's calls go; ``headers`` are credentials injected on the way out."""

    name: str
    url: str | None = None
    mcp_url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: float = 30.0
    # A tool in its own container whose only way out is the egress gate: each call carries a
    # credential minted for it (header X-Gatekeeper-Egress-Credential), revoked when it ends.
    egress_credential: bool = False
    # A stdio MCP server Gatekeeper starts and supervises, served at /mcp/NAME (mcp_url is then
    # its loopback bridge, set at start-up).
    command: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None  # with the runner enabled: a folder of the sandbox's /workspace
    # With the runner enabled the server runs in the sandbox: host paths it may read (its own
    # installation, say), bound read-only at the same path there.
    read_only_paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyFiles:
    model: Path = DEFAULT_POLICY_DIR / "model.conf"
    policy: Path = DEFAULT_POLICY_DIR / "policy.csv"
    tools: Path = DEFAULT_POLICY_DIR / "tools.yaml"
    budgets: Path | None = DEFAULT_POLICY_DIR / "budgets.yaml"  # None, or a missing file: no budgets


@dataclass(frozen=True, slots=True)
class Limits:
    max_body_bytes: int = 1024 * 1024
    max_json_depth: int = 64
    max_response_bytes: int = 16 * 1024 * 1024
    # A request head (request line and headers) must arrive whole within this many seconds.
    header_timeout_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class DemoSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    http_port: int = 8090
    mcp_port: int = 8091


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path
    source: str = "<embedded defaults>"
    mode: str = "enforce"
    agent_listener: Listener = Listener(port=8080)
    operator_listener: Listener = Listener(port=8081)
    # The sandbox's way out. None: not started (it starts whenever the runner is enabled).
    egress_listener: Listener | None = None
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    upstreams: Mapping[str, Upstream] = field(default_factory=dict)
    policy: PolicyFiles = PolicyFiles()
    policy_shadow: PolicyFiles | None = None  # a candidate set decided beside the live one, never enforced
    policy_watch_seconds: float | None = 1.0  # None: no file watching (SIGHUP still reloads)
    policy_sync: str | None = None  # postgresql://...: take policy published to the fleet (policy_sync.py)
    limits: Limits = Limits()
    demo: DemoSettings = DemoSettings()
    approvals: ApprovalSettings = field(default_factory=ApprovalSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    budget_store: str = "memory"  # or redis://host:6379/0 for a fleet
    budget_prefix: str = "gatekeeper:budget:"  # Redis key prefix: deployments sharing one Redis stay apart
    log_level: str = "info"
    runner: RunnerSettings = field(default_factory=RunnerSettings)
    egress: EgressSettings = field(default_factory=EgressSettings)
    workers: int = 1  # serving processes on the same listeners (gatekeeper.workers)

    @property
    def egress_enabled(self) -> bool:
        return self.runner.enabled or self.egress_listener is not None

    @property
    def egress_address(self) -> Listener:
        return self.egress_listener or Listener(port=8082)


def default_data_dir() -> Path:
    return Path(os.environ.get("GATEKEEPER_HOME") or ".gatekeeper").resolve()


def demo_upstream(demo: DemoSettings) -> Upstream:
    return Upstream(
        name="demo",
        url=f"http://{demo.host}:{demo.http_port}",
        mcp_url=f"http://{demo.host}:{demo.mcp_port}/mcp",
    )


def default_config() -> Config:
    demo = DemoSettings()
    return Config(data_dir=default_data_dir(), upstreams={"demo": demo_upstream(demo)}, demo=demo)


class _Reader:
    """Walks the parsed YAML, naming the file and dotted key in every complaint.

    ``offline``: for commands that never serve (``token issue``, ``policy …``, ``audit …``). The
    secrets only a running server uses (the webhook's, ``${VAR}`` references in upstream headers)
    are not required then; a reference to an unset variable is left as written."""

    def __init__(self, source: str, *, offline: bool = False, needed: frozenset[str] = frozenset()) -> None:
        self.source = source
        self.offline = offline
        self.needed = needed  # keys whose variables an offline command still needs

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {problem}", key=key, file=self.source)

    def section(self, data: Mapping[str, Any], key: str, allowed: set[str]) -> dict[str, Any]:
        value = data.get(key.rsplit(".", 1)[-1], {})
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a mapping, got {type(value).__name__}")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self.fail(f"{key}.{unknown[0]}", f"unknown setting (known: {', '.join(sorted(allowed))})")
        return value

    def typed(self, data: Mapping[str, Any], key: str, name: str, kind: type, default: Any) -> Any:
        if name not in data:
            return default
        value = data[name]
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise self.fail(f"{key}.{name}", f"must be {kind.__name__}, got {value!r}")
        return value

    def port(self, data: Mapping[str, Any], key: str, default: int) -> int:
        port = self.typed(data, key, "port", int, default)
        if not 0 <= port <= 65535:
            raise self.fail(f"{key}.port", f"must be 0-65535, got {port}")
        return int(port)

    def expand_env(self, key: str, value: str) -> str:
        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                if self.offline and key not in self.needed:
                    return match.group(0)
                raise self.fail(key, f"environment variable {name} is not set")
            return os.environ[name]

        return _ENV_REF.sub(sub, value)


def load_config(path: Path | None, *, offline: bool = False, needed: Collection[str] = ()) -> Config:
    """Read ``path`` (or return the embedded defaults when it is None).

    ``offline=True`` for commands that do not serve: secrets only a running server uses are not
    required (see ``_Reader``); ``needed`` names keys whose ``${VAR}`` must still be set
    (``approvals.store`` for the audit commands, which read that store)."""
    if path is None:
        return default_config()
    source = str(path)
    raw = read_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping", file=source)
    return parse_config(raw, source=source, base=path.parent, offline=offline, needed=frozenset(needed))


_TOP_KEYS = {
    "audit",
    "budgets",
    "data_dir",
    "mode",
    "listeners",
    "identity",
    "upstreams",
    "policy",
    "limits",
    "demo",
    "logging",
    "approvals",
    "runner",
    "egress",
    "workers",
}


# Resolves a path from the file against the file's folder (``~`` expanded).
_Resolve = Callable[[str], Path]


def parse_config(
    raw: Mapping[str, Any],
    *,
    source: str,
    base: Path,
    offline: bool = False,
    needed: frozenset[str] = frozenset(),
) -> Config:
    """The configuration in ``raw``, checked section by section (the first problem stops it)."""
    r = _Reader(source, offline=offline, needed=needed)
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise r.fail(unknown[0], f"unknown setting (known: {', '.join(sorted(_TOP_KEYS))})")

    def rel(p: str) -> Path:
        path = Path(os.path.expanduser(p))
        return path if path.is_absolute() else (base / path).resolve()

    data_dir_raw = r.typed(raw, "", "data_dir", str, None)
    data_dir = rel(data_dir_raw) if data_dir_raw else default_data_dir()
    mode = r.typed(raw, "", "mode", str, "enforce")
    if mode not in ("enforce", "monitor"):
        raise r.fail("mode", f"must be 'enforce' or 'monitor', got {mode!r}")
    agent_l, op_l, egress_l = _parse_listeners(r, raw)
    identity = _parse_identity(r, raw, rel)
    demo = _parse_demo(r, raw)
    upstreams = _parse_upstreams(r, raw, demo)
    policy = _parse_policy(r, raw, rel)
    limits = _parse_limits(r, raw)
    level = _parse_log_level(r, raw)
    runner = _parse_runner(r, raw, rel)
    _check_egress_credentials(r, upstreams, egress_available=runner.enabled or egress_l is not None)
    return Config(
        data_dir=data_dir,
        source=source,
        mode=mode,
        agent_listener=agent_l,
        operator_listener=op_l,
        egress_listener=egress_l,
        identity=identity,
        upstreams=upstreams,
        policy=policy.files,
        policy_shadow=policy.shadow,
        policy_watch_seconds=policy.watch_seconds,
        policy_sync=policy.sync,
        limits=limits,
        demo=demo,
        log_level=level,
        approvals=_parse_approvals(r, raw),
        audit=_parse_audit(r, raw, rel),
        budget_store=r.expand_env(
            "budgets.store",
            r.typed(r.section(raw, "budgets", {"store", "prefix"}), "budgets", "store", str, "memory"),
        ),
        budget_prefix=_parse_budget_prefix(r, raw),
        runner=runner,
        egress=_parse_egress(r, raw),
        workers=_parse_workers(r, raw),
    )


def _parse_listeners(r: _Reader, raw: Mapping[str, Any]) -> tuple[Listener, Listener, Listener | None]:
    """The agent, operator and (when set) egress listeners."""
    listeners = r.section(raw, "listeners", {"agent", "operator", "egress"})
    agent = r.section(listeners, "listeners.agent", {"host", "port"})
    operator = r.section(listeners, "listeners.operator", {"host", "port"})
    agent_l = Listener(
        r.typed(agent, "listeners.agent", "host", str, "127.0.0.1"), r.port(agent, "listeners.agent", 8080)
    )
    op_l = Listener(
        r.typed(operator, "listeners.operator", "host", str, "127.0.0.1"),
        r.port(operator, "listeners.operator", 8081),
    )
    if (agent_l.host, agent_l.port) == (op_l.host, op_l.port) and agent_l.port != 0:
        raise r.fail("listeners.operator", "must differ from listeners.agent (separation of duties)")
    egress_l: Listener | None = None
    if "egress" in listeners:
        egress = r.section(listeners, "listeners.egress", {"host", "port"})
        egress_l = Listener(
            r.typed(egress, "listeners.egress", "host", str, "127.0.0.1"),
            r.port(egress, "listeners.egress", 8082),
        )
    return agent_l, op_l, egress_l


def _parse_demo(r: _Reader, raw: Mapping[str, Any]) -> DemoSettings:
    demo_raw = r.section(raw, "demo", {"enabled", "host", "http_port", "mcp_port"})
    return DemoSettings(
        enabled=r.typed(demo_raw, "demo", "enabled", bool, True),
        host=r.typed(demo_raw, "demo", "host", str, "127.0.0.1"),
        http_port=r.typed(demo_raw, "demo", "http_port", int, 8090),
        mcp_port=r.typed(demo_raw, "demo", "mcp_port", int, 8091),
    )


def _parse_upstreams(r: _Reader, raw: Mapping[str, Any], demo: DemoSettings) -> dict[str, Upstream]:
    """Every upstream by name; the demo's first when it is enabled."""
    upstreams: dict[str, Upstream] = {}
    if demo.enabled:
        upstreams["demo"] = demo_upstream(demo)
    ups_raw = raw.get("upstreams") or {}
    if not isinstance(ups_raw, dict):
        raise r.fail("upstreams", "must be a mapping of name → {url, mcp_url, headers, timeout_seconds}")
    for name, spec in ups_raw.items():
        upstreams[name] = _parse_upstream(r, name, spec)
    return upstreams


def _parse_upstream(r: _Reader, name: Any, spec: Any) -> Upstream:
    key = f"upstreams.{name}"
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise r.fail(key, "name must be 1-64 of A-Z a-z 0-9 _ . -")
    if not isinstance(spec, dict):
        raise r.fail(key, "must be a mapping")
    spec = r.section(
        {name: spec},
        key,
        {
            "url",
            "mcp_url",
            "headers",
            "timeout_seconds",
            "egress_credential",
            "command",
            "env",
            "cwd",
            "read_only_paths",
        },
    )
    url = r.typed(spec, key, "url", str, None)
    mcp_url = r.typed(spec, key, "mcp_url", str, None)
    command = _parse_command(r, key, spec)
    if command is not None and mcp_url is not None:
        raise r.fail(key, "has both command (a stdio MCP server) and mcp_url; give one")
    if url is None and mcp_url is None and command is None:
        raise r.fail(
            key, "needs url (plain HTTP tools), mcp_url (an MCP server) or command (a stdio MCP server)"
        )
    for k, u in (("url", url), ("mcp_url", mcp_url)):
        if u is not None and not re.match(r"^https?://[^/\s]+", u):
            raise r.fail(f"{key}.{k}", f"must be an http:// or https:// URL, got {u!r}")
    headers_raw = r.typed(spec, key, "headers", dict, {})
    headers = {}
    for hk, hv in headers_raw.items():
        if not isinstance(hk, str) or not isinstance(hv, str):
            raise r.fail(f"{key}.headers", "header names and values must be strings")
        if hk.lower() in ("host", "content-length", "transfer-encoding", "connection"):
            raise r.fail(f"{key}.headers.{hk}", "this header is set by Gatekeeper itself")
        headers[hk] = r.expand_env(f"{key}.headers.{hk}", hv)
    timeout = r.typed(spec, key, "timeout_seconds", float, 30.0)
    if timeout <= 0:
        raise r.fail(f"{key}.timeout_seconds", "must be positive")
    env: dict[str, str] = {}
    for ek, ev in r.typed(spec, key, "env", dict, {}).items():
        if not isinstance(ek, str) or not isinstance(ev, str) or not ek or "=" in ek:
            raise r.fail(f"{key}.env", "names and values must be strings (names without '=')")
        env[ek] = r.expand_env(f"{key}.env.{ek}", ev)
    if (env or "cwd" in spec or "read_only_paths" in spec) and command is None:
        raise r.fail(key, "env, cwd and read_only_paths apply to a command (a stdio MCP server) only")
    cwd = r.typed(spec, key, "cwd", str, None)
    read_only = r.typed(spec, key, "read_only_paths", list, [])
    if not all(isinstance(path, str) and path.startswith("/") and "\0" not in path for path in read_only):
        raise r.fail(f"{key}.read_only_paths", "must be a list of absolute host paths")
    egress_credential = r.typed(spec, key, "egress_credential", bool, False)
    return Upstream(
        name,
        url,
        mcp_url,
        headers,
        timeout,
        egress_credential,
        command=command,
        env=env,
        cwd=cwd,
        read_only_paths=tuple(read_only),
    )


class _PolicySection(NamedTuple):
    files: PolicyFiles
    shadow: PolicyFiles | None
    watch_seconds: float | None
    sync: str | None


def _parse_policy(r: _Reader, raw: Mapping[str, Any], rel: _Resolve) -> _PolicySection:
    """The live policy files, the shadow (candidate) set, how often to watch, and policy sync."""
    pol = r.section(raw, "policy", {"model", "policy", "tools", "budgets", "shadow", "watch_seconds", "sync"})
    defaults = PolicyFiles()
    policy = PolicyFiles(
        model=rel(pol["model"]) if "model" in pol else defaults.model,
        policy=rel(pol["policy"]) if "policy" in pol else defaults.policy,
        tools=rel(pol["tools"]) if "tools" in pol else defaults.tools,
        budgets=rel(pol["budgets"])
        if pol.get("budgets")
        else (None if "budgets" in pol else defaults.budgets),
    )
    shadow_dir = r.typed(pol, "policy", "shadow", str, None)
    policy_shadow = None
    if shadow_dir is not None:
        folder = rel(shadow_dir)
        if not folder.is_dir():
            raise r.fail(
                "policy.shadow", f"{folder} is not a directory (it holds the candidate's policy.csv)"
            )
        policy_shadow = PolicyFiles(
            model=folder / "model.conf" if (folder / "model.conf").exists() else policy.model,
            policy=folder / "policy.csv",
            tools=folder / "tools.yaml" if (folder / "tools.yaml").exists() else policy.tools,
            budgets=folder / "budgets.yaml" if (folder / "budgets.yaml").exists() else policy.budgets,
        )
    watch = pol.get("watch_seconds", 1.0)
    if watch is not None and (isinstance(watch, bool) or not isinstance(watch, int | float) or watch <= 0):
        raise r.fail(
            "policy.watch_seconds", "must be a positive number of seconds, or null to disable watching"
        )
    sync = r.typed(pol, "policy", "sync", str, None)
    if sync is not None:
        sync = r.expand_env("policy.sync", sync)
        if not sync.startswith(("postgresql://", "postgres://")):
            raise r.fail(
                "policy.sync", "must be a postgresql:// URL (the schema is approvals.postgres_schema)"
            )
    return _PolicySection(policy, policy_shadow, float(watch) if watch is not None else None, sync)


def _parse_limits(r: _Reader, raw: Mapping[str, Any]) -> Limits:
    lim = r.section(raw, "limits", {f.name for f in fields(Limits)})
    limits = Limits(
        **{f.name: r.typed(lim, "limits", f.name, type(f.default), f.default) for f in fields(Limits)}
    )
    for f in fields(Limits):
        if getattr(limits, f.name) <= 0:
            raise r.fail(f"limits.{f.name}", "must be positive")
    return limits


def _parse_log_level(r: _Reader, raw: Mapping[str, Any]) -> str:
    logging_raw = r.section(raw, "logging", {"level"})
    level: str = r.typed(logging_raw, "logging", "level", str, "info").lower()
    if level not in ("debug", "info", "warning", "error"):
        raise r.fail("logging.level", "must be debug, info, warning or error")
    return level


def _check_egress_credentials(
    r: _Reader, upstreams: Mapping[str, Upstream], *, egress_available: bool
) -> None:
    """An upstream that hands its calls an egress credential needs the egress gate to run."""
    for upstream in upstreams.values():
        if upstream.egress_credential and not egress_available:
            raise r.fail(
                f"upstreams.{upstream.name}.egress_credential",
                "needs the egress gate: set listeners.egress (or runner.enabled)",
            )


AUDIT_WRITERS = ("inline", "process")


def _parse_budget_prefix(r: _Reader, raw: Mapping[str, Any]) -> str:
    prefix = r.typed(
        r.section(raw, "budgets", {"store", "prefix"}), "budgets", "prefix", str, "gatekeeper:budget:"
    )
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,128}", prefix):
        raise r.fail("budgets.prefix", "must be 1-128 of A-Z a-z 0-9 _ . : -")
    return str(prefix)


def _parse_audit(r: _Reader, raw: Mapping[str, Any], rel: _Resolve) -> AuditSettings:
    section = r.section(raw, "audit", {f.name for f in fields(AuditSettings)})
    base = AuditSettings()
    records = r.typed(section, "audit", "max_unwritten_records", int, base.max_unwritten_records)
    if records < 1:
        raise r.fail("audit.max_unwritten_records", "must be at least 1")
    values: dict[str, Any] = {"max_unwritten_records": records}
    for name in ("max_unwritten_seconds", "checkpoint_seconds"):
        value = r.typed(section, "audit", name, float, getattr(base, name))
        if value <= 0:
            raise r.fail(f"audit.{name}", "must be positive")
        values[name] = value
    values["durable_answers"] = r.typed(section, "audit", "durable_answers", bool, base.durable_answers)
    writer = r.typed(section, "audit", "writer", str, base.writer)
    if writer not in AUDIT_WRITERS:
        raise r.fail("audit.writer", f"must be one of {', '.join(AUDIT_WRITERS)}, got {writer!r}")
    values["writer"] = writer
    key = r.typed(section, "audit", "checkpoint_key", str, None)
    values["checkpoint_key"] = str(rel(key)) if key is not None else None
    return AuditSettings(**values)


MAX_WORKERS = 256


def parse_workers(value: object) -> int:
    """``workers``: a count of serving processes, or ``auto`` (one per core this process may use).
    Raises ValueError with the reason."""
    if value == "auto":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return max(1, cores or 1)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WORKERS:
        raise ValueError(f"must be a whole number from 1 to {MAX_WORKERS}, or 'auto', got {value!r}")
    return value


def _parse_workers(r: _Reader, raw: Mapping[str, Any]) -> int:
    try:
        return parse_workers(raw.get("workers", 1))
    except ValueError as exc:
        raise r.fail("workers", str(exc)) from None


def _parse_runner(r: _Reader, raw: Mapping[str, Any], rel: _Resolve) -> RunnerSettings:
    known = {
        "enabled",
        "workspace",
        "upstream",
        "uid",
        "python",
        "bwrap",
        "env",
        "limits",
        "gpu_devices",
        "gpu_shared_devices",
    }
    section = r.section(raw, "runner", known)
    base = RunnerSettings()
    enabled = r.typed(section, "runner", "enabled", bool, False)
    workspace_raw = r.typed(section, "runner", "workspace", str, None)
    if enabled and workspace_raw is None:
        raise r.fail(
            "runner.workspace", "is required when the runner is enabled: the directory mounted at /workspace"
        )
    env_raw = r.typed(section, "runner", "env", dict, {})
    env: dict[str, str] = {}
    for name, value in env_raw.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", name):
            raise r.fail(f"runner.env.{name}", "variable names are A-Z a-z 0-9 _")
        if not isinstance(value, str):
            raise r.fail(f"runner.env.{name}", "values must be strings")
        if name.lower().endswith("_proxy"):
            raise r.fail(f"runner.env.{name}", "the proxy variables are set by Gatekeeper (its egress gate)")
        env[name] = r.expand_env(f"runner.env.{name}", value)
    lim = r.section(section, "runner.limits", {f.name for f in fields(RunnerLimits)})
    limit_values: dict[str, Any] = {}
    for f in fields(RunnerLimits):
        kind = float if isinstance(f.default, float) else int
        value = r.typed(lim, "runner.limits", f.name, kind, f.default)
        if value <= 0:
            raise r.fail(f"runner.limits.{f.name}", "must be positive")
        limit_values[f.name] = value
    uid = r.typed(section, "runner", "uid", int, base.uid)
    if not 1 <= uid < 2**31:
        raise r.fail("runner.uid", "must be a non-root uid (1 or more)")
    gpu: dict[str, tuple[str, ...]] = {}
    for name in ("gpu_devices", "gpu_shared_devices"):
        paths = r.typed(section, "runner", name, list, list(getattr(base, name)))
        if not all(isinstance(path, str) and path.startswith("/") and ".." not in path for path in paths):
            raise r.fail(f"runner.{name}", "must be a list of absolute device paths (or globs)")
        gpu[name] = tuple(paths)
    return RunnerSettings(
        **gpu,
        enabled=enabled,
        workspace=rel(workspace_raw) if workspace_raw is not None else None,
        upstream=r.typed(section, "runner", "upstream", str, base.upstream),
        uid=uid,
        python=r.typed(section, "runner", "python", str, base.python),
        bwrap=r.typed(section, "runner", "bwrap", str, base.bwrap),
        env=env,
        limits=RunnerLimits(**limit_values),
    )


_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]/]+):(\d{1,5})$")


def _host_port(r: _Reader, key: str, text: Any) -> tuple[str, int]:
    match = _HOST_PORT.match(text) if isinstance(text, str) else None
    if match is None or not 0 < int(match.group(2)) <= 65535:
        raise r.fail(key, f"must be HOST:PORT (an IPv6 address in brackets), got {text!r}")
    return match.group(1).strip("[]").lower(), int(match.group(2))


def _parse_egress(r: _Reader, raw: Mapping[str, Any]) -> EgressSettings:
    names = {
        "pin",
        "hold_seconds",
        "connect_timeout_seconds",
        "idle_timeout_seconds",
        "head_timeout_seconds",
        "sandbox_connections",
        "sandbox_refusals",
    }
    section = r.section(raw, "egress", names)
    base = EgressSettings()
    pins_raw = r.typed(section, "egress", "pin", dict, {})
    pins: dict[str, tuple[str, int]] = {}
    for name, target in pins_raw.items():
        host, port = _host_port(r, f"egress.pin.{name}", name)
        address, to_port = _host_port(r, f"egress.pin.{name}", target)
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise r.fail(f"egress.pin.{name}", f"must pin to an IP address, got {target!r}") from None
        pins[f"{host}:{port}"] = (address, to_port)
    values: dict[str, Any] = {"pin": pins}
    counts = {"sandbox_connections", "sandbox_refusals"}
    for name in sorted(counts):
        count = r.typed(section, "egress", name, int, getattr(base, name))
        if count <= 0:
            raise r.fail(f"egress.{name}", "must be positive")
        values[name] = count
    for name in sorted(names - {"pin", *counts}):
        value = r.typed(section, "egress", name, float, getattr(base, name))
        if value <= 0:
            raise r.fail(f"egress.{name}", "must be positive")
        values[name] = value
    return EgressSettings(**values)


def _parse_identity(r: _Reader, raw: Mapping[str, Any], rel: _Resolve) -> IdentitySettings:
    names = {f.name for f in fields(IdentitySettings)} - {"dev_key_path"}
    ident = r.section(raw, "identity", names)
    base = IdentitySettings()
    values: dict[str, Any] = {}
    for f in fields(IdentitySettings):
        if f.name not in ident:
            continue
        default = getattr(base, f.name)
        value = ident[f.name]
        if isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise r.fail(f"identity.{f.name}", "must be a list of strings")
            value = tuple(value)
        elif f.name == "jwks_url":
            value = r.typed(ident, "identity", f.name, str, None)
        else:
            value = r.typed(ident, "identity", f.name, type(default), default)
        values[f.name] = value
    if "public_keys" in values:
        values["public_keys"] = tuple(str(rel(p)) for p in values["public_keys"])
    bad = [a for a in values.get("algorithms", ()) if a not in SUPPORTED_ALGORITHMS]
    if bad:
        raise r.fail(
            "identity.algorithms",
            f"only asymmetric algorithms are accepted ({', '.join(sorted(SUPPORTED_ALGORITHMS))}); got {bad}",
        )
    if values.get("jwks_url") is not None and not str(values["jwks_url"]).startswith(("https://", "http://")):
        raise r.fail("identity.jwks_url", "must be an http(s) URL")
    try:
        settings = replace(base, **values)
    except ConfigError as exc:
        raise r.fail("identity", exc.message.removeprefix("identity: ")) from None
    return settings


def _parse_command(r: _Reader, key: str, spec: Mapping[str, Any]) -> tuple[str, ...] | None:
    """``command: [argv...]``: a list of strings, never a shell line (nothing is split or expanded)."""
    command = spec.get("command")
    if command is None:
        return None
    if (
        not isinstance(command, list)
        or not command
        or not all(isinstance(part, str) and part and "\0" not in part for part in command)
    ):
        raise r.fail(
            f"{key}.command", "must be a non-empty list of strings: [program, arg, ...], not a shell line"
        )
    return tuple(command)


def _parse_approvals(r: _Reader, raw: Mapping[str, Any]) -> ApprovalSettings:
    numbers = {
        "default_wait_seconds",
        "max_wait_seconds",
        "ttl_seconds",
        "denial_stands_seconds",
        "approved_ttl_seconds",
        "max_grant_minutes",
        "sweep_interval_seconds",
        "progress_interval_seconds",
    }
    known = {
        *numbers,
        "store",
        "postgres_schema",
        "max_pending_per_principal",
        "webhook_url",
        "webhook_secret_env",
        "high_risk",
        "console_url",
    }
    section = r.section(raw, "approvals", known)
    base = ApprovalSettings()
    values: dict[str, Any] = {}
    for name in numbers:
        value = r.typed(section, "approvals", name, float, getattr(base, name))
        if value < 0 or (value == 0 and name not in ("default_wait_seconds", "denial_stands_seconds")):
            raise r.fail(f"approvals.{name}", "must be positive")
        values[name] = value
    values["store"] = r.expand_env("approvals.store", r.typed(section, "approvals", "store", str, base.store))
    schema = r.typed(section, "approvals", "postgres_schema", str, base.postgres_schema)
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise r.fail("approvals.postgres_schema", "must be a lower-case SQL identifier")
    values["postgres_schema"] = schema
    cap = r.typed(section, "approvals", "max_pending_per_principal", int, base.max_pending_per_principal)
    if cap < 1:
        raise r.fail("approvals.max_pending_per_principal", "must be at least 1")
    values["max_pending_per_principal"] = cap
    if values["default_wait_seconds"] > values["max_wait_seconds"]:
        raise r.fail("approvals.default_wait_seconds", "must not exceed approvals.max_wait_seconds")
    high_risk = r.typed(section, "approvals", "high_risk", list, list(base.high_risk))
    if not all(isinstance(p, str) and p and "*" not in p[:-1] for p in high_risk):
        raise r.fail("approvals.high_risk", "must be a list of capability names or prefixes ending in *")
    values["high_risk"] = tuple(high_risk)
    console_url = r.typed(section, "approvals", "console_url", str, None)
    if console_url is not None and not re.match(r"^https?://[^/\s]+/?$", console_url):
        raise r.fail("approvals.console_url", f"must be an http(s) URL with no path, got {console_url!r}")
    values["console_url"] = console_url.rstrip("/") if console_url else None
    url = r.typed(section, "approvals", "webhook_url", str, None)
    if url is not None:
        if not re.match(r"^https?://[^/\s]+", url):
            raise r.fail("approvals.webhook_url", f"must be an http(s) URL, got {url!r}")
        env = r.typed(section, "approvals", "webhook_secret_env", str, "GATEKEEPER_WEBHOOK_SECRET")
        secret = os.environ.get(env)
        # An offline command sends no webhook: its secret is only required where one is sent.
        required = not r.offline or "approvals.webhook_secret_env" in r.needed
        if required and (not secret or len(secret.encode()) < 16):
            raise r.fail(
                "approvals.webhook_secret_env",
                f"environment variable {env} (the webhook secret, at least 16 bytes) is not set",
            )
        values["webhook_url"], values["webhook_secret"] = url, secret.encode() if secret else None
    return ApprovalSettings(**values)
