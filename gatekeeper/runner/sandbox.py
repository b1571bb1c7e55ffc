"""Run one command under bubblewrap, in fresh namespaces whose only way out is the egress gate.

What the sandbox sees:

- new user, pid, ipc, uts, cgroup and **network** namespaces: loopback only, so a raw socket,
  ``/dev/tcp``, an IP literal or the program's own resolver finds nothing to connect to;
- the system directories read-only (``/usr``, ``/etc`` and the ``/bin``-style links), a private
  ``/tmp``, ``/run`` and ``$HOME``, a minimal ``/dev`` (no GPUs unless leased: gpus.py), its own
  ``/proc``;
- the workspace read-write at ``/workspace``, and nothing else of the host: not ``/root``, not
  Gatekeeper's data folder, keys or sockets;
- a scrubbed environment: ``PATH``, ``HOME``, ``LANG``, what ``runner.env`` names, and the proxy
  variables naming ``127.0.0.1:3128``, with this call's credential.

That address is the egress gate itself. The network namespace is made before bubblewrap starts,
by ``sandbox_netns.py`` (run as the sandbox's uid): it listens on ``127.0.0.1:3128`` in the new
namespace, hands the listening socket to the gate, and execs bubblewrap (without
``--unshare-net``: the sandbox lives in that namespace). The gate accepts each connection itself;
no byte is carried by anything in the sandbox. If the namespace or the listener cannot be made,
nothing runs (``handoff.py``).

Limits: wall time ends the whole process tree (killing bubblewrap kills its pid namespace's
init, and the kernel ends every process in it); CPU, memory, file size, open files and processes
are rlimits set by ``prlimit`` (util-linux). The sandbox runs as an unprivileged host uid
(``runner.uid`` when Gatekeeper is root), so the process limit is enforced by the kernel.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import structlog

from ..errors import ConfigError
from .handoff import HandoffError, receive_listener
from .settings import RunnerSettings

if TYPE_CHECKING:
    from ..egress.proxy import EgressGate, SandboxListener

log = structlog.get_logger("gatekeeper.runner")

SANDBOX_WORKSPACE: Final = "/workspace"
SANDBOX_HOME: Final = "/home/agent"
SANDBOX_RUN: Final = "/run"  # a private tmpfs in every sandbox
RUN_MB: Final = 16  # /run holds sockets and pid files, nothing large
EGRESS_PORT: Final = 3128  # the gate's listener in each sandbox's network namespace
_NETNS_SOURCE: Final = Path(__file__).with_name("sandbox_netns.py")
SYSTEM_LINKS: Final = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_DIRS: Final = ("/usr", "/etc", "/opt")  # read-only in every sandbox
_INSTALL_HINT: Final = "install Debian's bubblewrap (apt-get install -y bubblewrap)"
_USERNS_HINT: Final = (
    "it needs unprivileged user namespaces (user.max_user_namespaces > 0; "
    "kernel.unprivileged_userns_clone=1 and kernel.apparmor_restrict_unprivileged_userns=0 where "
    "those exist; a container runtime's seccomp profile must allow unshare)"
)


@dataclass(frozen=True, slots=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool
    truncated: bool

    def to_json(self) -> dict[str, object]:
        return {
            "exit_code": self.exit_code,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "timed_out": self.timed_out,
            "truncated": self.truncated,
            "simulated": False,
        }


@dataclass(slots=True)
class Launched:
    """A started sandbox and the gate's listener in its network namespace (None: no credential,
    so nothing listens there). ``release`` once the process has ended."""

    process: asyncio.subprocess.Process
    egress: SandboxListener | None

    async def release(self) -> None:
        if self.egress is not None:
            egress, self.egress = self.egress, None
            await egress.close()


class Sandbox:
    """Builds and runs bubblewrap command lines for one runner configuration."""

    def __init__(self, settings: RunnerSettings, workspace: Path) -> None:
        self.settings = settings
        self.workspace = workspace
        self.egress: EgressGate | None = None  # the gate that serves each sandbox's listener
        self.as_root = os.geteuid() == 0
        self.uid = settings.uid if self.as_root else os.geteuid()
        self.gid = settings.uid if self.as_root else os.getegid()
        bwrap = shutil.which(settings.bwrap)
        if bwrap is None:
            raise ConfigError(f"runner: bubblewrap ({settings.bwrap}) was not found; {_INSTALL_HINT}")
        self.bwrap = bwrap
        prlimit = shutil.which("prlimit")
        if prlimit is None:
            raise ConfigError("runner: prlimit (util-linux) was not found; apt-get install -y util-linux")
        self.prlimit = prlimit
        if not os.access(settings.python, os.X_OK):
            raise ConfigError(
                f"runner: {settings.python} (runner.python) is not an executable Python; the step "
                "that makes each sandbox's network namespace needs a system interpreter "
                "(apt-get install -y python3)"
            )
        # Passed with -c: no file the sandbox's uid could reach or replace.
        self.netns_source = _NETNS_SOURCE.read_text()

    def prepare(self) -> None:
        """Hand the workspace to the sandbox's uid."""
        self.workspace.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            _chown_tree(self.workspace, self.uid, self.gid)

    def command_argv(
        self,
        command: Sequence[str],
        cwd: str,
        *,
        handoff: int,
        devices: Sequence[str] = (),
        read_only: Sequence[str] = (),
        cpu_limit: bool = True,
        files: Sequence[tuple[str, str]] = (),
    ) -> list[str]:
        """The prlimit + network namespace step + bubblewrap command line that runs ``command``
        (an argv, nothing is split) in the sandbox; ``handoff``: the descriptor the listener goes
        to the gate on. ``read_only``: host paths bound read-only at the same path (the sandbox's
        uid must be able to reach them, as the workspace); ``cpu_limit=False`` for a long-lived
        server, whose CPU seconds add up over its life (wall time is ``run``'s)."""
        limits = self.settings.limits
        args = [
            self.prlimit,
            *([f"--cpu={limits.cpu_seconds}"] if cpu_limit else []),
            f"--as={limits.memory_mb * 1024 * 1024}",
            f"--nproc={limits.processes}",
            f"--fsize={limits.file_size_mb * 1024 * 1024}",
            f"--nofile={limits.open_files}",
            "--core=0",
            "--",
            self.settings.python,
            "-I",
            "-S",
            "-c",
            self.netns_source,
            str(handoff),
            str(EGRESS_PORT),
            "--",
            self.bwrap,
            # No --unshare-net: the sandbox stays in the network namespace made just before.
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--uid",
            "1000",
            "--gid",
            "1000",
            "--hostname",
            "sandbox",
            "--die-with-parent",
            "--new-session",
        ]
        for path in SYSTEM_DIRS:
            if os.path.isdir(path):
                args += ["--ro-bind", path, path]
        for path in SYSTEM_LINKS:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        scratch = str(limits.scratch_mb * 1024 * 1024)
        args += [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            # Every writable tmpfs is sized: their pages are host memory no rlimit counts.
            "--size",
            scratch,
            "--tmpfs",
            "/dev/shm",  # noqa: S108 - the sandbox's own, sized
            "--size",
            scratch,
            "--tmpfs",
            "/tmp",  # noqa: S108 - a private tmpfs inside the sandbox
            "--size",
            scratch,
            "--tmpfs",
            "/home",
            "--dir",
            SANDBOX_HOME,
            "--size",
            str(RUN_MB * 1024 * 1024),
            "--tmpfs",
            SANDBOX_RUN,
            "--bind",
            str(self.workspace),
            SANDBOX_WORKSPACE,
            # Leased GPUs and the operator's read-only paths last, so no mount above covers them.
            *[arg for device in devices for arg in ("--dev-bind", device, device)],
            *[arg for path in read_only for arg in ("--ro-bind", path, path)],
            *[arg for source, path in files for arg in ("--ro-bind", source, path)],
            # /dev itself is bubblewrap's unsized tmpfs, writable by the sandbox: read-only once
            # its nodes and mounts are in place (not recursive: /dev/shm and /dev/pts stay).
            "--remount-ro",
            "/dev",
            "--chdir",
            cwd,
            "--",
            *command,
        ]
        return args

    def environment(self, credential: str | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """What the sandbox sees, and nothing of the host's: ``extra`` (``runner.env`` unless given:
        a stdio server gets its own ``env`` instead), then the proxy variables with ``credential``.
        Every variable a caller's defaults could add (``LOGNAME``, ``SHELL``) is set here too."""
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": SANDBOX_HOME,
            "USER": "agent",
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "TMPDIR": "/tmp",  # noqa: S108 - the sandbox's private tmpfs
            "LOGNAME": "agent",
            "SHELL": "/bin/sh",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            **(self.settings.env if extra is None else extra),
        }
        if credential is not None:
            proxy = f"http://gatekeeper:{credential}@127.0.0.1:{EGRESS_PORT}"
            for name in ("http_proxy", "https_proxy", "all_proxy"):
                env[name] = env[name.upper()] = proxy
            env["no_proxy"] = env["NO_PROXY"] = ""
        return env

    async def launch(
        self,
        command: Sequence[str],
        cwd: str,
        credential: str | None,
        env: Mapping[str, str],
        *,
        stdin: int,
        devices: Sequence[str] = (),
        read_only: Sequence[str] = (),
        cpu_limit: bool = True,
        refusal_budget: bool = False,
        files: Sequence[tuple[str, str]] = (),
    ) -> Launched:
        """Start ``command`` in a sandbox whose ``127.0.0.1:3128`` is the gate, serving this
        ``credential`` alone (None: nothing listens there). A namespace that cannot be made ends
        the process before bubblewrap runs and raises ``HandoffError``: nothing ran.
        ``refusal_budget``: the gate stops listening after ``egress.sandbox_refusals`` refusals
        (a call's sandbox; a long-lived server has none)."""
        channel, handoff = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                argv = self.command_argv(
                    command,
                    cwd,
                    handoff=handoff.fileno(),
                    devices=devices,
                    read_only=read_only,
                    cpu_limit=cpu_limit,
                    files=files,
                )
                process = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=stdin,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env=dict(env),
                    start_new_session=True,
                    user=self.uid if self.as_root else None,
                    group=self.gid if self.as_root else None,
                    extra_groups=[] if self.as_root else None,
                    pass_fds=(handoff.fileno(),),
                    cwd="/",
                )
            finally:
                handoff.close()  # the child's end: only the child holds it now
            channel.setblocking(False)
            try:
                listener = await receive_listener(channel, EGRESS_PORT)
                if credential is not None and self.egress is None:
                    listener.close()
                    raise HandoffError("the egress gate is not running")
            except BaseException as exc:
                kill_tree(process.pid)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(process.wait(), 5.0)
                if isinstance(exc, HandoffError):
                    log.error("sandbox_refused", reason=str(exc))
                raise
        finally:
            channel.close()
        if credential is None or self.egress is None:
            listener.close()  # no way out at all: 127.0.0.1:3128 refuses every connection
            return Launched(process, None)
        refusals = self.egress.settings.sandbox_refusals if refusal_budget else None
        return Launched(process, self.egress.serve_sandbox(listener, credential, refusals=refusals))

    async def run(
        self,
        cmd: str,
        cwd: str,
        credential: str | None,
        devices: Sequence[str] = (),
        files: Sequence[tuple[str, str]] = (),
    ) -> ExecResult:
        """Run ``cmd`` in a fresh sandbox; ``devices``: host device nodes it may use (leased GPUs);
        ``files``: ``(host copy, sandbox path)`` bound read-only over the workspace's (the bytes
        an approval covered)."""
        limits = self.settings.limits
        launched = await self.launch(
            ("/bin/sh", "-c", cmd),
            cwd,
            credential,
            self.environment(credential),
            stdin=asyncio.subprocess.DEVNULL,
            devices=devices,
            files=files,
            refusal_budget=True,  # one call: a refusal loop ends its way out, not a server's
        )
        process = launched.process
        if process.stdout is None or process.stderr is None:  # pragma: no cover - PIPE above
            raise OSError("the sandbox's output pipes were not created")
        out = _Capture(limits.output_bytes)
        err = _Capture(limits.output_bytes)
        timed_out = False
        readers = asyncio.gather(out.drain(process.stdout), err.drain(process.stderr), process.wait())
        try:
            await asyncio.wait_for(asyncio.shield(readers), limits.wall_seconds)
        except TimeoutError:
            timed_out = True
        finally:
            kill_tree(process.pid)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(readers, 5.0)
            await launched.release()
        code = process.returncode if process.returncode is not None else -signal.SIGKILL
        return ExecResult(
            exit_code=124 if timed_out else (code if code >= 0 else 128 - code),
            stdout=out.text(),
            stderr=err.text(),
            timed_out=timed_out,
            truncated=out.truncated or err.truncated,
        )

    async def probe(self) -> None:
        """Run ``true`` in a sandbox at start-up: no namespaces, no runner (never a silent fallback)."""
        try:
            result = await self.run("true", SANDBOX_WORKSPACE, None)
        except HandoffError as exc:
            raise ConfigError(
                f"runner: the sandbox's network namespace could not be made ({exc}); {_USERNS_HINT}, "
                f"and {self.settings.python} (runner.python) must run as uid {self.uid}"
            ) from None
        if result.exit_code != 0:
            raise ConfigError(
                "runner: bubblewrap could not create the sandbox "
                f"(exit {result.exit_code}: {result.stderr.strip()[:300]}); {_USERNS_HINT}, and a "
                f"workspace the sandbox uid {self.uid} can reach; {_INSTALL_HINT}"
            )


class _Capture:
    """Keeps the first ``limit`` bytes of a stream and drains (and drops) the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False

    async def drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            room = self.limit - self.size
            if room <= 0:
                self.truncated = True
                continue
            if len(chunk) > room:
                chunk, self.truncated = chunk[:room], True
            self.chunks.append(chunk)
            self.size += len(chunk)

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", errors="replace")


def kill_tree(pid: int) -> None:
    """bubblewrap leads its own session: SIGKILL to the group ends it, and with it the sandbox's
    pid namespace (its init dies with its parent; the kernel ends every process left in it)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    """Hand the workspace to the sandbox's uid, as root, while a sandbox may be swapping its
    directories for links to host ones (another worker's, a stdio server's): every step is
    relative to a directory descriptor, and ``fwalk`` enters a directory only if what it opened
    is what it listed (a path string walk follows a link swapped in between, and re-owns the
    host directory it leads to)."""
    os.chown(root, uid, gid, follow_symlinks=False)
    for _, dirnames, filenames, dirfd in os.fwalk(root, follow_symlinks=False):
        for name in (*dirnames, *filenames):
            with contextlib.suppress(FileNotFoundError):
                os.chown(name, uid, gid, dir_fd=dirfd, follow_symlinks=False)
