"""Approvals that bind what was reviewed: the content of the workspace files a held command runs.

An operator who approves ``bash run.sh`` approves the ``run.sh`` they looked at. So when the
runner is on and a ``shell.exec`` is held, the call's digest also covers a SHA-256 of every
workspace file the command names (``run.sh``, ``tests/x.py``) and of the files the programs it
starts read implicitly (``make``: the Makefile; ``pytest``: ``conftest.py`` and its config; ``npm``:
``package.json``; ``pip``: ``setup.py``...). A file changed since then makes another digest: the
approval does not cover it. The files are hashed again when the approval is used, so a change made
while the call waited is caught too; and the approved call runs a snapshot of exactly the approved
bytes, bound read-only over each file in its sandbox (``snapshot``), so a concurrent call that
changes a file between that check and the sandbox reading it changes nothing this call runs.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shlex
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Final

from ..models import ToolCall
from .files import OutsideWorkspace, WorkspaceFiles, workspace_parts
from .sandbox import SANDBOX_WORKSPACE

# Files a program reads from its working directory without being told (relative to the cwd).
IMPLICIT_FILES: Final[Mapping[str, tuple[str, ...]]] = {
    "make": ("Makefile", "makefile", "GNUmakefile"),
    "pytest": ("conftest.py", "tests/conftest.py", "pytest.ini", "pyproject.toml", "setup.cfg", "tox.ini"),
    "tox": ("tox.ini", "pyproject.toml", "setup.cfg"),
    "npm": ("package.json",),
    "npx": ("package.json",),
    "yarn": ("package.json",),
    "pnpm": ("package.json",),
    "pip": ("setup.py", "pyproject.toml", "setup.cfg"),
    "pip3": ("setup.py", "pyproject.toml", "setup.cfg"),
    "cargo": ("Cargo.toml", "build.rs"),
    "go": ("go.mod",),
}
MAX_FILES: Final = 64


def named_files(cmd: str, cwd: str = SANDBOX_WORKSPACE) -> list[str]:
    """Workspace paths a command line names or makes its programs read, in a stable order.

    A generous reading: every word that could be a path is a candidate (only existing regular
    files are hashed), so quoting or an unusual option spelling cannot hide a script.
    """
    try:  # operators (<, ;, &&, |) as words of their own, so `bash <run.sh` names run.sh
        lexer = shlex.shlex(cmd, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
    except ValueError:
        words = cmd.split()
    candidates: list[str] = []
    for word in words:
        value = word.split("=", 1)[1] if word.startswith("-") and "=" in word else word
        base = posixpath.basename(value)
        candidates.extend(posixpath.join(cwd, name) for name in IMPLICIT_FILES.get(base, ()))
        if base in ("python", "python3") or base.startswith("python3."):
            candidates.extend(posixpath.join(cwd, name) for name in IMPLICIT_FILES["pytest"])
        if value and not value.startswith("-"):
            candidates.append(value if value.startswith("/") else posixpath.join(cwd, value))
    seen: dict[str, None] = {}
    for path in candidates:
        try:
            parts = workspace_parts(path)
        except OutsideWorkspace:
            continue
        if parts:
            seen.setdefault(posixpath.join(SANDBOX_WORKSPACE, *parts), None)
    return list(seen)[: MAX_FILES * 4]


def file_digests(files: WorkspaceFiles, cmd: str, cwd: str) -> dict[str, str]:
    """``{path: sha256}`` of the named files that exist now (at most ``MAX_FILES``)."""
    digests: dict[str, str] = {}
    for path in named_files(cmd, cwd):
        digest = files.digest(path)
        if digest is not None:
            digests[path] = digest
            if len(digests) >= MAX_FILES:
                break
    return digests


def bind(call: ToolCall, digests: Mapping[str, str]) -> ToolCall:
    """The call with a digest that also covers the files' content (unchanged when there are none)."""
    if not digests:
        return call
    covered = "\0".join(f"{path}\0{digest}" for path, digest in sorted(digests.items()))
    return replace(call, digest=hashlib.sha256(f"{call.digest}\0{covered}".encode()).hexdigest())


def describe(digests: Mapping[str, str]) -> str:
    """For the operator: which files the approval covers, by content."""
    return ", ".join(f"{path} (sha256 {digest[:12]}…)" for path, digest in sorted(digests.items()))


class FilesChanged(ValueError):
    """A file the approval covered is not, now, the bytes that were approved."""


def snapshot(files: WorkspaceFiles, approved: Mapping[str, str]) -> tuple[Path, list[tuple[str, str]]]:
    """A private copy of each approved file, checked against its approved SHA-256: the folder (to
    remove once the call ends) and ``(copy, sandbox path)`` pairs to bind read-only. The folder is
    reachable (not listable) and the copies readable by the sandbox's uid, as bubblewrap binds
    them as that uid."""
    folder = Path(tempfile.mkdtemp(prefix="gk-approved-"))
    try:
        folder.chmod(0o711)
        binds: list[tuple[str, str]] = []
        for index, (path, digest) in enumerate(sorted(approved.items())):
            data = files.content(path)
            if data is None or hashlib.sha256(data).hexdigest() != digest:
                raise FilesChanged(path)
            copy = folder / str(index)
            fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o444)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            binds.append((str(copy), path))
    except BaseException:
        _remove(folder)
        raise
    return folder, binds


def _remove(folder: Path) -> None:
    for child in folder.iterdir():
        child.unlink()
    folder.rmdir()


def remove_snapshot(folder: Path) -> None:
    """Remove what ``snapshot`` made."""
    _remove(folder)
