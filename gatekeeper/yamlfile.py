"""Reading the YAML files Gatekeeper is configured with, failing with the file's name.

Every YAML file the project reads (configuration, tool manifests, budgets, policy tests) goes
through ``StrictLoader``: PyYAML's safe loader, except that a key written twice in one mapping is
an error naming both places. PyYAML's own behaviour, the later key silently replacing the earlier
one, turned a copy-pasted ``file.read`` without ``inspect:`` into the only ``file.read``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

__all__ = [
    "DuplicateKeyError",
    "StrictLoader",
    "load_yaml",
    "read_yaml",
    "yaml_error_line",
    "yaml_error_message",
]


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping key written twice; ``problem_mark`` is the second, ``context_mark`` the first."""


class StrictLoader(yaml.SafeLoader):
    """The safe loader, refusing duplicate keys (merge keys, ``<<``, may still be overridden)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if first is not None:
                raise DuplicateKeyError(
                    f"duplicate key {key!r}: first at {_where(first.start_mark)}",
                    first.start_mark,
                    f"duplicate key {key!r} again at {_where(key_node.start_mark)}",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _where(mark: yaml.Mark) -> str:
    return f"{mark.name}:{mark.line + 1}"


def yaml_error_line(exc: yaml.YAMLError) -> int:
    """The 1-based line a YAML error points at (1 when it points nowhere)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark is not None else 1


def yaml_error_message(exc: yaml.YAMLError) -> str:
    """One line for people: a duplicate key names both places, other errors PyYAML's text."""
    if isinstance(exc, DuplicateKeyError):
        return (
            f"{exc.problem} (first at {_where(exc.context_mark)})" if exc.context_mark else str(exc.problem)
        )
    return f"not valid YAML: {exc}"


def load_yaml(text: str, source: str, *, loader: type[StrictLoader] = StrictLoader) -> Any:
    """Parse ``text``; marks (and so every error) name ``source``. Raises ``yaml.YAMLError``."""
    instance = loader(text)
    instance.name = source
    try:
        return instance.get_single_data()
    finally:
        instance.dispose()


def read_yaml(path: Path, *, what: str = "file") -> Any:
    """Parse ``path`` strictly; problems become a ConfigError naming the file (and line)."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: {what} not found", file=source) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not valid UTF-8: {exc}", file=source) from None
    try:
        return load_yaml(text, source)
    except yaml.YAMLError as exc:
        line = yaml_error_line(exc)
        raise ConfigError(f"{source}:{line}: {yaml_error_message(exc)}", file=source, line=line) from None
