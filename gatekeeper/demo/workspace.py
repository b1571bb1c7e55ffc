"""The demo tools' simulated file system: a seeded, in-memory ``/workspace``.

Nothing here touches the real disk. Each demo server instance owns one ``Workspace``, so a
``file.write`` in one test can never leak into another or onto the machine running it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping

WORKSPACE_ROOT = "/workspace"
HOME = "/root"

SEED_FILES: Mapping[str, str] = {
    "/workspace/README.md": (
        "# example-app\n\n"
        "A small example project for the Gatekeeper demo tools.\n\n"
        "    pip install -e .\n"
        "    pytest\n"
    ),
    "/workspace/pyproject.toml": (
        "[project]\n"
        'name = "example-app"\n'
        'version = "0.1.0"\n'
        'requires-python = ">=3.11"\n'
        'dependencies = ["requests>=2.31"]\n\n'
        "[tool.pytest.ini_options]\n"
        'testpaths = ["tests"]\n'
    ),
    "/workspace/src/app/__init__.py": '"""example-app."""\n\n__version__ = "0.1.0"\n',
    "/workspace/src/app/main.py": (
        '"""Entry point of the example app."""\n\n\n'
        "def greet(name: str) -> str:\n"
        '    return f"Hello, {name}!"\n\n\n'
        'if __name__ == "__main__":\n'
        '    print(greet("world"))\n'
    ),
    "/workspace/tests/test_main.py": (
        "from app.main import greet\n\n\n"
        "def test_greet() -> None:\n"
        '    assert greet("Ada") == "Hello, Ada!"\n'
    ),
}

# Directories that exist even though no seeded file lives in them.
SEED_DIRS: tuple[str, ...] = ("/", HOME, "/tmp", WORKSPACE_ROOT)  # noqa: S108 - simulated path, never opened


def resolve_path(path: str, cwd: str = WORKSPACE_ROOT) -> str:
    """Turn a tool's path argument into the absolute, normalized path it names.

    Relative paths resolve against ``cwd`` (the workspace by default) and ``~`` is the
    simulated home, ``/root``. ``..`` is collapsed, so ``/workspace/../etc/passwd`` reads as
    ``/etc/passwd`` — the same answer a policy looking at the call should reach.
    """
    if path == "~" or path.startswith("~/"):
        path = HOME + path[1:]
    if not path.startswith("/"):
        path = posixpath.join(cwd, path)
    normalized = posixpath.normpath(path)
    # POSIX keeps a leading "//" as implementation-defined; the simulation treats it as "/".
    return "/" + normalized.lstrip("/")


class Workspace:
    """Files held as text in a dict keyed by absolute path; directories derived from them."""

    def __init__(self, files: Mapping[str, str] | None = None) -> None:
        self._files: dict[str, str] = {}
        self._dirs: set[str] = set(SEED_DIRS)
        for path, content in (SEED_FILES if files is None else files).items():
            self.write(path, content)

    def is_file(self, path: str) -> bool:
        return resolve_path(path) in self._files

    def is_dir(self, path: str) -> bool:
        return resolve_path(path) in self._dirs

    def read(self, path: str) -> str | None:
        """The file's text, or ``None`` when there is no such file."""
        return self._files.get(resolve_path(path))

    def write(self, path: str, content: str) -> str:
        """Store ``content`` at ``path`` (parents are created implicitly); return the absolute path."""
        absolute = resolve_path(path)
        if absolute in self._dirs:
            raise IsADirectoryError(absolute)
        self._files[absolute] = content
        self._add_parents(absolute)
        return absolute

    def list_dir(self, path: str) -> list[str] | None:
        """Names directly inside a directory (subdirectories end in ``/``), or ``None`` if absent."""
        absolute = resolve_path(path)
        if absolute not in self._dirs:
            return None
        prefix = absolute.rstrip("/") + "/"
        names: set[str] = set()
        for entry in self._entries():
            if entry != absolute and entry.startswith(prefix):
                head, sep, _ = entry[len(prefix) :].partition("/")
                names.add(head + "/" if sep or entry in self._dirs else head)
        return sorted(names)

    def files(self) -> dict[str, str]:
        """A copy of every file, for tests that check what a call did or did not change."""
        return dict(self._files)

    def _entries(self) -> Iterable[str]:
        yield from self._files
        yield from self._dirs

    def _add_parents(self, absolute: str) -> None:
        parent = posixpath.dirname(absolute)
        while parent not in self._dirs:
            self._dirs.add(parent)
            parent = posixpath.dirname(parent)
