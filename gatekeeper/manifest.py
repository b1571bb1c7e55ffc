"""Tool manifests: upstream, argument schema, and which inspector reads what."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastjsonschema
import jsonschema
import structlog

from .errors import ConfigError, SchemaError
from .yamlfile import read_yaml

WHOLE_ARGUMENTS = "$"

log = structlog.get_logger("gatekeeper.manifest")


@dataclass(frozen=True, slots=True)
class ToolManifest:
    name: str
    upstream: str
    description: str
    schema: Mapping[str, Any]
    inspect: tuple[tuple[str, str], ...]  # (argument name or "$", inspector name)
    validator: Any  # jsonschema validator instance; untyped library
    # fastjsonschema's compiled function for the same schema, or None when the schema uses anything
    # outside FAST_KEYWORDS (fast_note then says what); jsonschema stays the authority either way.
    fast_validator: Callable[[Any], Any] | None = field(default=None, compare=False, repr=False)
    fast_note: str = field(default="", compare=False)
    # The arguments each set of inspectors reads, worked out once per manifest (stages ask per call).
    _inspected: dict[frozenset[str], tuple[str, ...]] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def inspected_by(self, names: frozenset[str]) -> tuple[str, ...]:
        """The arguments (``$`` for the whole arguments) this tool hands to one of the inspectors
        ``names``, in the manifest's order."""
        found = self._inspected.get(names)
        if found is None:
            found = self._inspected[names] = tuple(a for a, inspector in self.inspect if inspector in names)
        return found

    def with_defaults(self, arguments: Any) -> Any:
        """Fill top-level defaults the schema declares, so the call decided is the call forwarded
        (a tool's own default could otherwise decide the real amount)."""
        if not isinstance(arguments, dict):
            return arguments
        props = self.schema.get("properties", {})
        missing = {k: p["default"] for k, p in props.items() if k not in arguments and "default" in p}
        return {**arguments, **missing} if missing else arguments

    def validate(self, arguments: object) -> None:
        """Raise SchemaError naming the first problem, as a person would want to read it.

        The compiled fast validator answers for valid plain-JSON arguments (the common case, about a
        tenth of jsonschema's cost). Anything else goes through jsonschema, whose first error is the
        message, exactly as before. A call is refused if either validator rejects it; a fast-path
        crash is no verdict, so jsonschema alone decides, as it did before the fast path existed."""
        fast_error: fastjsonschema.JsonSchemaValueException | None = None
        if self.fast_validator is not None:
            try:
                if plain_json(arguments):
                    self.fast_validator(arguments)
                    return
            except fastjsonschema.JsonSchemaValueException as exc:
                fast_error = exc
            except Exception as exc:  # a fast-path bug or a recursion limit: jsonschema alone decides
                log.warning("schema_fast_path_failed", tool=self.name, error=type(exc).__name__)
        errors = sorted(self.validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
        if errors:
            err = errors[0]
            where = "/".join(str(p) for p in err.absolute_path) or "(arguments)"
            raise SchemaError(f"{self.name}: {where}: {err.message}", field=where)
        if fast_error is not None:
            # The two disagree: an allowlist gap. Fail closed, and say so where an operator will look.
            where = "/".join(fast_error.path[1:]) or "(arguments)"
            log.warning("schema_validators_disagree", tool=self.name, field=where, rule=fast_error.rule)
            raise SchemaError(f"{self.name}: {where}: {fast_error.message}", field=where)


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
    if name in (".", ".."):  # the tool's URL is <upstream>/tools/<name>: these would name a directory
        raise ConfigError(f"{source}: a tool cannot be named {name!r}", file=source)
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
    fast_validator, fast_note = compile_fast(schema)
    return ToolManifest(
        name=name,
        upstream=upstream,
        description=str(spec.get("description", "")),
        schema=schema,
        inspect=tuple(pairs),
        validator=cls(schema, format_checker=cls.FORMAT_CHECKER),
        fast_validator=fast_validator,
        fast_note=fast_note,
    )


# --- The fast path -------------------------------------------------------------------------------
# fastjsonschema compiles a schema to Python code, but it is not jsonschema: it implements drafts 4-7
# (today's manifests are checked as Draft 2020-12), rewrites every `$` in a `pattern` to `\Z` (so
# "host\n" escapes `^host$`, which jsonschema's re.search matches), treats tuples as arrays, checks
# formats with its own regexes, and in older releases compared enum values with `==` (True == 1).
# Under `not` any difference in either direction becomes an acceptance, so the fast path is used
# only for schemas built wholly from the keywords below, whose semantics on JSON values are the
# same in both (tests/test_manifest_fast_validation.py checks that differentially).

#: Keywords the fast path is trusted for, each with the rule its value must follow.
FAST_KEYWORDS: frozenset[str] = frozenset(
    {
        "type",  # a JSON type name or a list of them; 1.0 is an integer and true is not, in both
        "properties",  # property names must be identifiers: fastjsonschema builds variable names from them
        "required",
        "additionalProperties",  # boolean or a schema; patternProperties is not trusted
        "propertyNames",
        "minProperties",
        "maxProperties",
        "minLength",  # both count code points with len()
        "maxLength",
        "pattern",  # compiled here and checked with re.search, exactly as jsonschema does
        "enum",  # strings and null only: equality of numbers and booleans differs between releases
        "const",  # likewise
        "minimum",  # finite numbers; plain Python comparisons in both (exact for huge ints)
        "maximum",
        "exclusiveMinimum",  # numeric (draft 6+ meaning), the same in 2020-12
        "exclusiveMaximum",
        "items",  # a single schema (2020-12's meaning); arrays are lists only (see _plain_json)
        "minItems",
        "maxItems",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
    }
)
#: Keywords that only annotate; they are left out of the fast schema (no defaults are filled in).
ANNOTATIONS: frozenset[str] = frozenset(
    {"title", "description", "default", "examples", "$comment", "deprecated", "readOnly", "writeOnly"}
)
_JSON_TYPES = frozenset({"null", "boolean", "integer", "number", "string", "array", "object"})
# Property names become parts of generated variable names (data__<name>): identifiers only, and no
# '__', which could make one nested name spell another.
_IDENTIFIER = re.compile(r"(?!.*__)[A-Za-z_][A-Za-z0-9_]{0,127}\Z")
# The fast schema is pinned to draft 7, whose keyword meanings the allowlist was checked against.
_FAST_DRAFT = "http://json-schema.org/draft-07/schema#"


class _NotFast(Exception):
    """The schema uses something the fast path is not trusted for; the message says what."""


def compile_fast(schema: Mapping[str, Any]) -> tuple[Callable[[Any], Any] | None, str]:
    """Compile the schema for the fast path: (validator, "") or (None, why not). Never raises: a
    schema jsonschema accepted but fastjsonschema cannot take is simply validated by jsonschema."""
    patterns: dict[str, Callable[[Any], bool]] = {}
    try:
        definition = _fast_schema(schema, patterns, "")
        if not isinstance(definition, dict):
            raise _NotFast("the arguments schema must be an object")
        definition["$schema"] = _FAST_DRAFT
        validator = fastjsonschema.compile(definition, formats=patterns, use_default=False)
    except _NotFast as exc:
        return None, str(exc)
    except Exception as exc:  # fastjsonschema refused to compile it: jsonschema alone validates
        return None, f"fastjsonschema cannot compile it: {type(exc).__name__}: {exc}"
    return validator, ""


def _fast_schema(node: Any, patterns: dict[str, Callable[[Any], bool]], where: str) -> Any:
    """A copy of `node` for fastjsonschema, or _NotFast naming the first thing outside the allowlist.

    `pattern` becomes a custom format whose check is re.search with the same pattern, so the regex
    dialect and anchors are jsonschema's, not fastjsonschema's rewrite of them."""
    if isinstance(node, bool):
        return node
    if not isinstance(node, dict):
        raise _NotFast(f"{where or '(root)'}: a schema must be an object or a boolean")
    out: dict[str, Any] = {}
    for key, value in node.items():
        at = f"{where}/{key}"
        if key in ANNOTATIONS:
            continue
        if key not in FAST_KEYWORDS:
            raise _NotFast(f"{at}: keyword {key!r} is not on the fast path's allowlist")
        if key == "pattern":  # no user `format` can collide: format is not on the allowlist
            out["format"] = _fast_pattern(value, patterns, at)
        else:
            out[key] = _fast_keyword(key, value, patterns, at)
    return out


def _fast_pattern(value: Any, patterns: dict[str, Callable[[Any], bool]], at: str) -> str:
    """Register `value` as a custom format checked by re.search, as jsonschema checks `pattern`."""
    if not isinstance(value, str):
        raise _NotFast(f"{at}: must be a string")
    name = f"gatekeeper-pattern-{len(patterns)}"
    search = re.compile(value).search
    patterns[name] = lambda text: search(text) is not None  # jsonschema: re.search(pattern, instance)
    return name


def _fast_keyword(key: str, value: Any, patterns: dict[str, Callable[[Any], bool]], at: str) -> Any:
    """Check one allowlisted keyword's value and return it as fastjsonschema should see it."""
    if key == "type":
        names = value if isinstance(value, list) else [value]
        known = [n for n in names if isinstance(n, str) and n in _JSON_TYPES]
        if not names or len(known) != len(names) or len(set(known)) != len(known):
            raise _NotFast(f"{at}: only JSON type names are trusted")
        return list(names) if isinstance(value, list) else value
    if key == "properties":
        if not isinstance(value, dict) or not all(isinstance(k, str) and _IDENTIFIER.match(k) for k in value):
            raise _NotFast(f"{at}: property names must be identifiers without '__' for the fast path")
        return {k: _fast_schema(v, patterns, f"{at}/{k}") for k, v in value.items()}
    if key == "required":
        if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
            raise _NotFast(f"{at}: must be a list of strings")
        return list(value)
    if key in ("additionalProperties", "propertyNames", "items", "not"):
        return _fast_schema(value, patterns, at)
    if key in ("allOf", "anyOf", "oneOf"):
        if not isinstance(value, list) or not value:
            raise _NotFast(f"{at}: must be a non-empty list of schemas")
        return [_fast_schema(v, patterns, f"{at}/{i}") for i, v in enumerate(value)]
    if key in ("minProperties", "maxProperties", "minLength", "maxLength", "minItems", "maxItems"):
        if type(value) is not int or value < 0:
            raise _NotFast(f"{at}: must be a non-negative integer")
        return value
    if key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if type(value) not in (int, float) or not math.isfinite(value):
            raise _NotFast(f"{at}: must be a finite number")
        return value
    if key == "enum":
        if not isinstance(value, list) or not all(v is None or isinstance(v, str) for v in value):
            raise _NotFast(f"{at}: only strings and null are trusted")
        return list(value)
    if key == "const":
        if not (value is None or isinstance(value, str)):
            raise _NotFast(f"{at}: only a string or null is trusted")
        return value
    raise _NotFast(f"{at}: keyword {key!r} has no fast-path rule")  # an allowlist entry without a rule


def plain_json(value: object) -> bool:
    """Whether `value` is made only of what a JSON decoder produces (exact types, string keys).

    The allowlist's equivalence holds for JSON values; a tuple, Decimal or str subclass handed in by
    a Python caller goes to jsonschema instead. Deep nesting raises RecursionError: no verdict."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return True
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is not str or not plain_json(item):
                return False
        return True
    if type(value) is list:
        for item in value:
            if not plain_json(item):
                return False
        return True
    return False
