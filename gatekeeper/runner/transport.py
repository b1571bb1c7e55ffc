"""The runner as a transport: allowed calls of the runner's upstream run here, for real.

``shell.exec`` runs in the sandbox with a credential minted for this call; ``http.fetch`` goes
out through the egress gate with one too, so both meet the same policy again at the socket,
as the call's principal, and land in the audit trail under the call's decision id. The file tools
act on the real workspace. Everything else (``compute.provision``, other upstreams) is passed
to the next transport.
"""

from __future__ import annotations

import base64
import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import aiohttp
import orjson

from gatekeeper import codes

from ..config import Upstream
from ..egress.credentials import EgressCredentials
from ..egress.proxy import EgressGate
from ..errors import ConfigError, UpstreamError
from ..models import ToolCall
from ..upstream import ToolTransport
from .bound_files import FilesChanged, remove_snapshot, snapshot
from .files import OutsideWorkspace, WorkspaceFiles, tool_error, workspace_parts
from .gpus import PROVISION_TOOL, GpuLeases
from .sandbox import SANDBOX_WORKSPACE, Sandbox
from .settings import RunnerSettings

RUNNER_TOOLS: Final = frozenset({"shell.exec", "file.read", "file.write", "http.fetch"})
MAX_FETCH_BYTES: Final = 4 * 1024 * 1024


class Runner:
    """The sandbox, the real workspace and the credentials, for one Gatekeeper."""

    def __init__(self, settings: RunnerSettings, credentials: EgressCredentials, data_dir: Path) -> None:
        if settings.workspace is None:
            raise ConfigError("runner.workspace is required when the runner is enabled")
        workspace, data = settings.workspace.resolve(), data_dir.resolve()
        if workspace == data or data in workspace.parents or workspace in data.parents:
            # The sandbox would see (or write) the signing key, the audit trail and the approvals.
            raise ConfigError(
                f"runner.workspace ({workspace}) and the data folder ({data}) must not contain each other"
            )
        self.settings = settings
        self.credentials = credentials
        self.data_dir = data
        self.sandbox = Sandbox(settings, settings.workspace)
        owner = (self.sandbox.uid, self.sandbox.gid) if self.sandbox.as_root else None
        self.files = WorkspaceFiles(settings.workspace, owner)
        self.gpus = GpuLeases(settings.gpu_devices, settings.gpu_shared_devices)
        self.egress_url = ""  # the egress gate's TCP listener, for http.fetch

    async def start(self, egress: EgressGate) -> None:
        """Serve the sandboxes' listeners with ``egress`` (and ``http.fetch`` through its TCP
        listener), then check a sandbox can be made at all."""
        self.egress_url = egress.url
        self.sandbox.egress = egress
        await self.sandbox.probe()

    def takes(self, call: ToolCall) -> bool:
        """Whether this call runs here (whichever entry point it came through)."""
        return call.upstream == self.settings.upstream and call.tool in RUNNER_TOOLS

    async def run(self, call: ToolCall, decision_id: str) -> dict[str, Any]:
        arguments = call.arguments
        ttl = self.settings.limits.wall_seconds + 10.0
        if call.tool == "file.read":
            return self.files.read(arguments["path"])
        if call.tool == "file.write":
            return self.files.write(arguments["path"], arguments["content"])
        with self.credentials.issued(call.principal, call.tool, decision_id, ttl) as credential:
            if call.tool == "shell.exec":
                devices = self.gpus.devices_for(call.principal)
                return await self._shell(arguments, credential, devices, call.bound_files)
            return await self._fetch(arguments, credential)

    async def _shell(
        self,
        arguments: dict[str, Any],
        credential: str,
        devices: list[str],
        approved: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Run the command; ``approved``: the files an approval covered, run as approved."""
        try:
            parts = workspace_parts(arguments.get("cwd", SANDBOX_WORKSPACE))
        except OutsideWorkspace as exc:
            return tool_error(codes.OUTSIDE_WORKSPACE, f"cwd: {exc}")
        if "\0" in arguments["cmd"]:  # no argv can carry it: refused here, not an internal error
            return tool_error(codes.INVALID_ARGUMENTS, "the command holds a NUL byte")
        cwd = posixpath.join(SANDBOX_WORKSPACE, *parts)
        if not self.files.is_directory(parts):
            return {"exit_code": 1, "stdout": "", "stderr": f"sh: cd: {cwd}: No such directory\n"}
        if not approved:
            result = await self.sandbox.run(arguments["cmd"], cwd, credential, devices)
            return result.to_json()
        try:
            folder, binds = snapshot(self.files, approved)
        except FilesChanged as exc:
            return tool_error(
                codes.FILES_CHANGED,
                f"{exc} changed after the approval's files were checked; send the call again",
            )
        try:
            result = await self.sandbox.run(arguments["cmd"], cwd, credential, devices, binds)
        finally:
            remove_snapshot(folder)
        return result.to_json()

    async def _fetch(self, arguments: dict[str, Any], credential: str) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=self.settings.limits.wall_seconds)
        proxy_auth = {
            "Proxy-Authorization": "Basic " + base64.b64encode(f"gatekeeper:{credential}".encode()).decode()
        }
        plain = str(arguments["url"]).lower().startswith("http:")
        async with aiohttp.ClientSession(timeout=timeout, auto_decompress=True, trust_env=False) as session:
            try:
                async with session.request(
                    arguments.get("method", "GET"),
                    arguments["url"],
                    # Plain http: the gate reads the credential from the request itself (and strips
                    # it before forwarding); over CONNECT it must never enter the tunnel.
                    headers={**(arguments.get("headers") or {}), **(proxy_auth if plain else {})},
                    data=arguments.get("body"),
                    proxy=self.egress_url,
                    proxy_headers=proxy_auth,
                    allow_redirects=False,
                ) as response:
                    body = await response.content.read(MAX_FETCH_BYTES + 1)
                    return {
                        "status": response.status,
                        "headers": {k.lower(): v for k, v in response.headers.items()},
                        "body": body[:MAX_FETCH_BYTES].decode("utf-8", errors="replace"),
                        "truncated": len(body) > MAX_FETCH_BYTES,
                    }
            except aiohttp.ClientHttpProxyError as exc:
                return tool_error(
                    codes.EGRESS_REFUSED, f"the egress gate refused the connection: {exc.message}"
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                return tool_error(codes.FETCH_FAILED, f"the fetch failed: {type(exc).__name__}: {exc}")


class RunnerTransport:
    """Routes the runner's upstream's tools to the runner, everything else to ``fallback``."""

    def __init__(self, runner: Runner, fallback: ToolTransport) -> None:
        self.runner = runner
        self.fallback = fallback

    async def call_tool(
        self,
        upstream: Upstream,
        tool: str,
        canonical_arguments: bytes,
        decision_id: str,
        call: ToolCall | None = None,
    ) -> bytes:
        if upstream.name != self.runner.settings.upstream or tool not in RUNNER_TOOLS:
            answer = await self.fallback.call_tool(upstream, tool, canonical_arguments, decision_id, call)
            if tool == PROVISION_TOOL and call is not None:
                self._lease(call, decision_id, answer)
            return answer
        if call is None:
            raise UpstreamError(
                "internal error: the runner needs the understood call", code=codes.UPSTREAM_ERROR
            )
        try:
            result = await self.runner.run(call, decision_id)
        except OSError as exc:
            raise UpstreamError(
                f"the runner failed: {exc.strerror or exc}", code=codes.UPSTREAM_ERROR
            ) from None
        return orjson.dumps(result)

    def _lease(self, call: ToolCall, decision_id: str, answer: bytes) -> None:
        """A forwarded ``compute.provision`` the tool did not refuse lends this host's GPUs."""
        try:
            result = orjson.loads(answer)
        except orjson.JSONDecodeError:
            return
        if not isinstance(result, dict) or "error" in result:
            return
        count, hours = call.arguments.get("count"), call.arguments.get("hours", 1)
        if isinstance(count, int) and isinstance(hours, int | float):
            self.runner.gpus.grant(call.principal, count, float(hours), decision_id)
