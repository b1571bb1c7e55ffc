"""A stdio MCP server run in the sandbox, so its own network and file access meet the same policy.

With ``runner.enabled``, ``upstreams.NAME.command`` runs under the same bubblewrap command line as
``shell.exec`` (``Sandbox.command_argv``): fresh user, pid, ipc, uts and network namespaces, the
system directories read-only, the workspace at ``/workspace``, a private ``/tmp`` and ``$HOME``,
the memory, process, file-size and open-file limits. What differs, because the server is
long-lived: no wall-time and no CPU-seconds limit; its environment is the sandbox's plus its own
``env`` (not ``runner.env``); ``upstreams.NAME.read_only_paths`` are bound read-only (its own
installation, say); and its way out, the egress gate's listener in its network namespace, takes a
*service* credential for ``upstream:NAME``, minted when the process starts and revoked when it
ends (``EgressCredentials.mint_service``); the listener is closed when the process ends.

The process is started here, not by the SDK's ``stdio_client``: Gatekeeper drops to the sandbox's
uid, hands it exactly the sandbox's environment (the SDK would add the host's ``HOME``, ``PATH``,
``SHELL`` ...), and knows the process it must kill. The SDK's ``Client`` speaks over its pipes.

What the server runs must not be writable by the agent: a program in the workspace, or one found
there, would let an agent replace the server's code and inherit its grants. So the program must
be in a read-only place of the sandbox (the system directories or ``read_only_paths``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import shutil
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final

import anyio
import mcp_types
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage

from ..config import Upstream
from ..errors import ConfigError
from .files import OutsideWorkspace, workspace_parts
from .sandbox import SANDBOX_RUN, SANDBOX_WORKSPACE, SYSTEM_DIRS, SYSTEM_LINKS, Launched, kill_tree

if TYPE_CHECKING:
    from mcp.client._transport import TransportStreams

    from .transport import Runner

log = structlog.get_logger("gatekeeper.stdio")

SANDBOX_PATH: Final = "/usr/local/bin:/usr/bin:/bin"
MAX_LINE: Final = 64 * 1024 * 1024  # one JSON-RPC message from the server; longer ends the process
STDERR_LINES: Final = 200  # lines of the server's stderr logged per process run, then only counted
_KERNEL_DIRS: Final = ("/proc", "/sys", "/dev")
_STOP_GRACE: Final = 2.0  # seconds a server has to exit after its stdin closes


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class ContainedServer:
    """How one stdio upstream runs in the sandbox; checked once, at start-up."""

    def __init__(self, upstream: Upstream, runner: Runner) -> None:
        if not upstream.command:
            raise ConfigError(f"upstreams.{upstream.name}: no command")
        self.upstream = upstream
        self.runner = runner
        key = f"upstreams.{upstream.name}"
        for name in upstream.env:
            if name.lower().endswith("_proxy"):
                raise ConfigError(
                    f"{key}.env.{name}: the proxy variables are set by Gatekeeper (its egress gate)"
                )
        self.read_only = tuple(self._read_only_path(key, path) for path in upstream.read_only_paths)
        self.cwd = self._cwd(key)
        program, *rest = upstream.command
        self.command = (self._program(key, program), *rest)

    # --- checks ---------------------------------------------------------------------------------
    def _read_only_path(self, key: str, path: str) -> str:
        """A host path the sandbox may read: it exists, and shows nothing of Gatekeeper's own."""
        real = os.path.realpath(path)
        if not os.path.exists(real):
            raise ConfigError(f"{key}.read_only_paths: {path} does not exist")
        data = str(self.runner.data_dir)
        if real == "/" or any(_under(real, d) for d in _KERNEL_DIRS):
            raise ConfigError(
                f"{key}.read_only_paths: {path} would show the host's root or kernel interfaces"
            )
        if _under(real, data) or _under(data, real):
            raise ConfigError(
                f"{key}.read_only_paths: {path} would show Gatekeeper's data folder (keys, audit trail)"
            )
        workspace = _under(real, SANDBOX_WORKSPACE) or _under(SANDBOX_WORKSPACE, real)
        if workspace or _under(SANDBOX_RUN, real):  # a folder in /run may be bound, never /run itself
            raise ConfigError(
                f"{key}.read_only_paths: {path} would cover the sandbox's {SANDBOX_WORKSPACE} or /run"
            )
        return real

    def _cwd(self, key: str) -> str:
        """The working directory inside the sandbox: ``/workspace`` or a folder in it, or a folder
        of ``read_only_paths`` (for a server that loads code from its working directory, which
        the agent must not be able to plant there)."""
        cwd = self.upstream.cwd
        if cwd is not None and cwd.startswith("/") and any(_under(cwd, root) for root in self.read_only):
            if not os.path.isdir(cwd):
                raise ConfigError(f"{key}.cwd: {cwd} is not a folder")
            return cwd
        try:
            parts = workspace_parts(self.upstream.cwd or SANDBOX_WORKSPACE)
        except OutsideWorkspace as exc:
            raise ConfigError(
                f"{key}.cwd: the server runs in the sandbox, so cwd is {SANDBOX_WORKSPACE} or a folder in "
                f"it, or in read_only_paths ({exc})"
            ) from None
        workspace = self.runner.settings.workspace or Path()
        if not workspace.joinpath(*parts).is_dir():
            raise ConfigError(
                f"{key}.cwd: {posixpath.join(SANDBOX_WORKSPACE, *parts)} is not a folder of the workspace"
            )
        return posixpath.join(SANDBOX_WORKSPACE, *parts)

    def _visible_read_only(self, path: str) -> bool:
        roots = (*SYSTEM_DIRS, *SYSTEM_LINKS, *self.read_only)
        return any(_under(path, root) for root in roots) and not _under(path, SANDBOX_WORKSPACE)

    def _program(self, key: str, program: str) -> str:
        """The program's path as the sandbox sees it: found now (a clear error if not), and in a
        place the agent cannot write (never the workspace)."""
        if "/" in program:
            if not program.startswith("/"):
                raise ConfigError(
                    f"{key}.command: {program!r} is relative to the workspace, which the agent can "
                    "write; give an absolute path in a read-only place"
                )
            found: str | None = program if os.path.isfile(program) and os.access(program, os.X_OK) else None
        else:
            path = self.upstream.env.get("PATH", SANDBOX_PATH)
            dirs = [d for d in path.split(":") if d.startswith("/") and self._visible_read_only(d)]
            found = shutil.which(program, path=":".join(dirs))
        if found is None:
            raise ConfigError(
                f"{key}.command: {program!r} was not found or is not executable in the sandbox "
                "(install it under /usr or /opt, or name its folder in read_only_paths)"
            )
        if not (self._visible_read_only(found) and self._visible_read_only(os.path.realpath(found))):
            raise ConfigError(
                f"{key}.command: {found} is not in a read-only place of the sandbox (the system "
                "folders or read_only_paths): the server's code must not be writable by the agent"
            )
        return found

    # --- one run ----------------------------------------------------------------------------------
    def process(self, current_call: Callable[[], str | None]) -> SandboxedProcess:
        """One run of the server (a new process, a new credential), as an MCP transport."""
        return SandboxedProcess(self, current_call)


class SandboxedProcess:
    """The server's process in the sandbox as an MCP client transport: ``async with`` gives the
    SDK's read and write streams; leaving it ends the process tree and revokes its credential."""

    def __init__(self, server: ContainedServer, current_call: Callable[[], str | None]) -> None:
        self.server = server
        self.current_call = current_call
        self.pid: int | None = None  # bubblewrap's host pid, once started
        self._token: str | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._launched: Launched | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._streams: list[
            MemoryObjectSendStream[SessionMessage | Exception] | MemoryObjectReceiveStream[SessionMessage]
        ] = []

    async def __aenter__(self) -> TransportStreams:
        server = self.server
        runner, sandbox = server.runner, server.runner.sandbox
        credentials = runner.credentials
        self._token = credentials.mint_service(server.upstream.name, self.current_call)
        try:
            self._launched = launched = await sandbox.launch(
                server.command,
                server.cwd,
                self._token,
                sandbox.environment(self._token, server.upstream.env),
                stdin=asyncio.subprocess.PIPE,
                read_only=server.read_only,
                cpu_limit=False,
            )
        except BaseException:
            credentials.revoke(self._token)
            raise
        self._process = process = launched.process
        self.pid = process.pid
        read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)
        self._streams = [read_writer, write_reader]
        self._tasks = [
            asyncio.create_task(self._read(process, read_writer)),
            asyncio.create_task(self._write(process, write_reader, read_writer)),
            asyncio.create_task(self._log_stderr(process)),
        ]
        return read_stream, write_stream

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        process = self._process
        try:
            if process is not None:
                with anyio.CancelScope(shield=True):
                    await self._stop(process)
        finally:
            if self._launched is not None:
                with anyio.CancelScope(shield=True):
                    await self._launched.release()
            if self._token is not None:
                self.server.runner.credentials.revoke(self._token)
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for stream in self._streams:
                stream.close()

    async def _stop(self, process: asyncio.subprocess.Process) -> None:
        """Close stdin (an MCP server's cue to exit), then end the whole sandbox however it went."""
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), _STOP_GRACE)
        kill_tree(process.pid)
        with contextlib.suppress(TimeoutError, ProcessLookupError):
            await asyncio.wait_for(process.wait(), 5.0)

    async def _read(
        self, process: asyncio.subprocess.Process, out: MemoryObjectSendStream[SessionMessage | Exception]
    ) -> None:
        """Newline-delimited JSON-RPC from the server's stdout; its end closes the session's stream."""
        stdout = _pipe(process.stdout)
        buffer = b""
        async with out:
            while chunk := await stdout.read(65536):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                if len(buffer) > MAX_LINE:
                    log.warning(
                        "stdio_upstream_line_too_long", upstream=self.server.upstream.name, limit=MAX_LINE
                    )
                    kill_tree(process.pid)
                    return
                for line in lines:
                    if not line.strip():
                        continue
                    try:
                        message: SessionMessage | Exception = SessionMessage(
                            mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                        )
                    except ValueError as exc:
                        message = exc
                    try:
                        await out.send(message)
                    except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                        return

    async def _write(
        self,
        process: asyncio.subprocess.Process,
        messages: MemoryObjectReceiveStream[SessionMessage],
        reader: MemoryObjectSendStream[SessionMessage | Exception],
    ) -> None:
        stdin = process.stdin
        if stdin is None:  # pragma: no cover - PIPE above
            raise OSError("the server's stdin pipe was not created")
        try:
            async with messages:
                async for message in messages:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    stdin.write(data.encode() + b"\n")
                    await stdin.drain()
        except (OSError, anyio.ClosedResourceError, anyio.BrokenResourceError):
            reader.close()  # the server is gone: the session sees its stream end, not a hang

    async def _log_stderr(self, process: asyncio.subprocess.Process) -> None:
        """The server's (and bubblewrap's) stderr, as log lines, bounded per run."""
        stderr = _pipe(process.stderr)
        logged = dropped = 0
        while True:
            try:
                line = await stderr.readline()
            except ValueError:  # a line longer than the stream's buffer: take what is there
                line = await stderr.read(65536)
            if not line:
                break
            if logged < STDERR_LINES:
                logged += 1
                text = line.decode("utf-8", errors="replace").rstrip()[:500]
                log.info("stdio_upstream_stderr", upstream=self.server.upstream.name, line=text)
            else:
                dropped += 1
        if dropped:
            log.info("stdio_upstream_stderr_dropped", upstream=self.server.upstream.name, lines=dropped)


def _pipe(stream: asyncio.StreamReader | None) -> asyncio.StreamReader:
    if stream is None:  # pragma: no cover - PIPE above
        raise OSError("the server's output pipes were not created")
    return stream
