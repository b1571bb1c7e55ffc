"""Reading the YAML files Gatekeeper is configured with, failing with the file's name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


def read_yaml(path: Path, *, what: str = "file") -> Any:
    """Parse ``path`` with the safe loader; problems become a ConfigError naming the file."""
    source = str(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{source}: {what} not found", file=source) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}", file=source) from None
