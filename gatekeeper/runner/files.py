"""``file.read`` / ``file.write`` on the real workspace, and never outside it.

Paths are checked on the real file system at the time of the call, not only as strings: the
walk opens one component at a time from the workspace's own descriptor with ``O_NOFOLLOW``, so a
symlink anywhere on the way (planted by an earlier ``shell.exec``, say, or swapped in between
two calls) stops it, as does ``..``; a file with more than one hard link is refused too (a link
could name a file outside). Tool-level failures are answers (``{"error": {code, message}}``),
like the demo tools'.
"""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import stat
from pathlib import Path
from typing import Any, Final

from gatekeeper import codes

from .sandbox import SANDBOX_WORKSPACE

MAX_READ_BYTES: Final = 8 * 1024 * 1024
MAX_DIGEST_BYTES: Final = 64 * 1024 * 1024
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class OutsideWorkspace(ValueError):
    """The path does not stay inside the workspace."""


def tool_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def workspace_parts(path: str, cwd: str = SANDBOX_WORKSPACE) -> list[str]:
    """The components below ``/workspace`` that ``path`` names (relative paths from ``cwd``)."""
    if "\0" in path:
        raise OutsideWorkspace("a path with a NUL byte is not a plain path")
    if path == "~" or path.startswith("~/"):
        raise OutsideWorkspace(f"{path} is outside the workspace")
    absolute = posixpath.normpath(path if path.startswith("/") else posixpath.join(cwd, path))
    absolute = "/" + absolute.lstrip("/")
    if absolute == SANDBOX_WORKSPACE:
        return []
    if not absolute.startswith(SANDBOX_WORKSPACE + "/"):
        raise OutsideWorkspace(f"{absolute} is outside the workspace")
    parts = absolute[len(SANDBOX_WORKSPACE) + 1 :].split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise OutsideWorkspace(f"{absolute} is not a plain path")
    return parts


class WorkspaceFiles:
    def __init__(self, root: Path, owner: tuple[int, int] | None) -> None:
        self.root = root
        self.owner = owner  # (uid, gid) new files and directories get, so the sandbox may change them

    def _open_parent(self, parts: list[str], create: bool) -> int:
        """A descriptor of the directory holding ``parts[-1]``, walked without following links."""
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for name in parts[:-1]:
                try:
                    nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(name, 0o755, dir_fd=fd)
                    if self.owner is not None:
                        os.chown(name, *self.owner, dir_fd=fd, follow_symlinks=False)
                    nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd

    def is_directory(self, parts: list[str]) -> bool:
        """Whether ``parts`` names a workspace directory, walked without following a link (a
        path string would follow one to the host, and answer for a host directory)."""
        try:
            os.close(self._open_parent([*parts, "."], create=False))
        except OSError:
            return False
        return True

    def _open_file(self, parts: list[str]) -> int:
        """An existing workspace file opened for reading, never through a link (``O_NOFOLLOW``
        on every step); non-blocking, so a FIFO planted there cannot hang the call."""
        parent = self._open_parent(parts, create=False)
        try:
            return os.open(
                parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=parent
            )
        finally:
            os.close(parent)

    def read(self, path: str) -> dict[str, Any]:
        located = _locate(path)
        if isinstance(located, dict):
            return located
        parts, shown = located
        try:
            with os.fdopen(self._open_file(parts), "rb") as handle:
                info = os.fstat(handle.fileno())
                if stat.S_ISDIR(info.st_mode):
                    return tool_error(codes.IS_A_DIRECTORY, f"{shown} is a directory")
                if not stat.S_ISREG(info.st_mode):
                    return tool_error(codes.NOT_A_FILE, f"{shown} is not a regular file")
                if info.st_nlink > 1:
                    return tool_error(codes.HARD_LINK, f"{shown} has other hard links; it is not read")
                data = handle.read(MAX_READ_BYTES + 1)
        except OSError as exc:
            return _os_error(exc, shown)
        if len(data) > MAX_READ_BYTES:
            return tool_error(codes.TOO_LARGE, f"{shown} is larger than {MAX_READ_BYTES} bytes")
        return {"path": shown, "content": data.decode("utf-8", errors="replace")}

    def digest(self, path: str) -> str | None:
        """SHA-256 of a regular workspace file as it is now, or None (missing, a link, too large)."""
        data = self.content(path)
        return None if data is None else hashlib.sha256(data).hexdigest()

    def content(self, path: str) -> bytes | None:
        """The bytes of a regular workspace file as it is now (what ``digest`` hashes), or None."""
        located = _locate(path)
        if isinstance(located, dict):
            return None
        parts, _ = located
        try:
            with os.fdopen(self._open_file(parts), "rb") as handle:
                info = os.fstat(handle.fileno())
                if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_DIGEST_BYTES:
                    return None
                return handle.read(MAX_DIGEST_BYTES + 1)[:MAX_DIGEST_BYTES]
        except OSError:
            return None

    def write(self, path: str, content: str) -> dict[str, Any]:
        located = _locate(path)
        if isinstance(located, dict):
            return located
        parts, shown = located
        data = content.encode()
        try:
            parent = self._open_parent(parts, create=True)
            try:
                fd = os.open(
                    parts[-1],
                    os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                    0o644,
                    dir_fd=parent,
                )
            finally:
                os.close(parent)
            with os.fdopen(fd, "wb") as handle:
                info = os.fstat(handle.fileno())
                if not stat.S_ISREG(info.st_mode):
                    return tool_error(codes.NOT_A_FILE, f"{shown} is not a regular file")
                if info.st_nlink > 1:
                    return tool_error(codes.HARD_LINK, f"{shown} has other hard links; it is not written")
                handle.truncate(0)
                handle.write(data)
                if self.owner is not None:
                    os.fchown(handle.fileno(), *self.owner)
        except OSError as exc:
            return _os_error(exc, shown)
        return {"path": shown, "bytes_written": len(data)}


def _locate(path: str) -> tuple[list[str], str] | dict[str, Any]:
    """The components of a file path below the workspace and how to show it, or a tool error."""
    try:
        parts = workspace_parts(path)
    except OutsideWorkspace as exc:
        return tool_error(codes.OUTSIDE_WORKSPACE, str(exc))
    shown = posixpath.join(SANDBOX_WORKSPACE, *parts)
    if not parts:
        return tool_error(codes.IS_A_DIRECTORY, f"{shown} is a directory")
    return parts, shown


def _os_error(exc: OSError, shown: str) -> dict[str, Any]:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR) or (exc.errno == errno.EMLINK):
        return tool_error(
            codes.SYMLINK, f"{shown}: a symbolic link (or a non-directory) is on the path; refused"
        )
    if exc.errno == errno.ENOENT:
        return tool_error(codes.NOT_FOUND, f"No such file: {shown}")
    if exc.errno == errno.EISDIR:
        return tool_error(codes.IS_A_DIRECTORY, f"{shown} is a directory")
    return tool_error(codes.OS_ERROR, f"{shown}: {exc.strerror}")
