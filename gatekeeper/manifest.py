"""Tool manifests: upstream, argument schema, and which inspector reads what."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from .errors import ConfigError, SchemaError
from .yamlfile import read_yaml

WHOLE_ARGUMENTS = "$"


@dataclass(frozen=True, slots=True)
class ToolManifest:
    name: str
    upstream: str
    description: str
    schema: Mapping[str, Any]
    inspect: tuple[tuple[str, str], ...]  # (argument name or "$", inspector name)
    validator: Any  # jsonschema validator instance; untyped library

    def with_defaults(self, arguments: Any) -> Any:
        """Fill top-level defaults the schema declares, so the call decided is the call forwarded
        (a tool's own default could otherwise decide the real amount)."""
        if not isinstance(arguments, dict):
            return arguments
        props = self.schema.get("properties", {})
        missing = {k: p["default"] for k, p in props.items() if k not in arguments and "default" in p}
        return {**arguments, **missing} if missing else arguments

    def validate(self, arguments: object) -> None:
        """Raise SchemaError naming the first problem, as a person would want to read it."""
        errors = sorted(self.validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
        if errors:
            err = errors[0]
            where = "/".join(str(p) for p in err.absolute_path) or "(arguments)"
            raise SchemaError(f"{self.name}: {where}: {err.message}", field=where)


def load_manifests(
    path: Path, *, inspectors: Collection[str], upstreams: Collection[str] | None = None
) -> dict[str, ToolManifest]:
    """Load and check every manifest; any problem is a ConfigError naming file and tool."""
    source = str(path)
    raw = read_yaml(path, what="tool manifest file")
    if not isinstance(raw, dict) or not isinstance(raw.get("tools"), dict):
        raise ConfigError(f"{source}: expected a mapping with a 'tools' mapping", file=source)
    manifests: dict[str, ToolManifest] = {}
    for name, spec in raw["tools"].items():
        manifests[name] = _one(source, name, spec, inspectors, upstreams)
    return manifests


def _one(
    source: str, name: Any, spec: Any, inspectors: Collection[str], upstreams: Collection[str] | None
) -> ToolManifest:
    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{source}: tools.{name}.{key}: {problem}", file=source, key=f"tools.{name}.{key}")

    if not isinstance(name, str) or not name or len(name) > 128:
        raise ConfigError(f"{source}: tool names must be non-empty strings", file=source)
    if not isinstance(spec, dict):
        raise fail("", "must be a mapping")
    unknown = set(spec) - {"upstream", "description", "arguments", "inspect"}
    if unknown:
        raise fail(sorted(unknown)[0], "unknown key (known: upstream, description, arguments, inspect)")
    upstream = spec.get("upstream")
    if not isinstance(upstream, str):
        raise fail("upstream", "required: the name of an upstream")
    if upstreams is not None and upstream not in upstreams:
        raise fail("upstream", f"no upstream named {upstream!r} is configured (have: {sorted(upstreams)})")
    schema = spec.get("arguments")
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise fail("arguments", "must be a JSON Schema with type: object")
    if schema.get("additionalProperties", False) is not False:
        raise fail("arguments.additionalProperties", "must be false: unknown arguments are always rejected")
    schema = {**schema, "additionalProperties": False}
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise fail("arguments", f"invalid JSON Schema: {exc.message}") from None
    inspect_raw = spec.get("inspect") or {}
    if not isinstance(inspect_raw, dict):
        raise fail("inspect", "must map argument names to inspector names")
    props = schema.get("properties", {})
    pairs: list[tuple[str, str]] = []
    for arg, inspector in inspect_raw.items():
        if inspector not in inspectors:
            raise fail(f"inspect.{arg}", f"unknown inspector {inspector!r} (have: {sorted(inspectors)})")
        if arg != WHOLE_ARGUMENTS and arg not in props:
            raise fail(f"inspect.{arg}", "names an argument the schema does not declare")
        pairs.append((str(arg), str(inspector)))
    return ToolManifest(
        name=name,
        upstream=upstream,
        description=str(spec.get("description", "")),
        schema=schema,
        inspect=tuple(pairs),
        validator=cls(schema, format_checker=cls.FORMAT_CHECKER),
    )
