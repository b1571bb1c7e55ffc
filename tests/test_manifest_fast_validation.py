"""The fast (fastjsonschema) argument check must accept exactly what jsonschema accepts.

Differential: hypothesis-generated JSON values against every shipped manifest and against a schema
for each allowlisted keyword, asserting fast-accept == jsonschema-accept, and that
ToolManifest.validate refuses with the same message and field as jsonschema alone would.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper import manifest as manifest_module
from gatekeeper.errors import ConfigError, SchemaError
from gatekeeper.inspectors import INSPECTORS
from gatekeeper.manifest import FAST_KEYWORDS, ToolManifest, compile_fast, load_manifests

SHIPPED = Path(__file__).resolve().parents[1] / "policies" / "tools.yaml"
SETTINGS = settings(
    max_examples=30,  # generation is the cost; the deterministic sweep below covers every boundary
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# One schema per allowlisted keyword (several per tricky one); each is the schema of argument "v".
KEYWORD_SCHEMAS: dict[str, dict[str, Any]] = {
    "integer_range": {"type": "integer", "minimum": 1, "maximum": 1024},
    "number_exclusive": {"type": "number", "exclusiveMinimum": 0, "maximum": 8760},
    "exclusive_max_huge": {"exclusiveMaximum": 2**64, "minimum": -0.5},
    "integer_or_null": {"type": ["integer", "null"]},
    "number_or_boolean": {"type": ["number", "boolean"]},
    "boolean": {"type": "boolean"},
    "null": {"type": "null"},
    "string_lengths": {"type": "string", "minLength": 2, "maxLength": 3},
    "untyped_lengths": {"minLength": 1, "maxLength": 1},
    "pattern_anchored": {"type": "string", "pattern": "^[a-z]+$"},
    "pattern_headers": {"pattern": "(?i)^(host|x-forwarded-.*|keep-alive)$"},
    "pattern_unicode_digit": {"pattern": "\\d"},
    "pattern_dollar_class": {"pattern": "[$]|\\$$"},
    "enum_strings": {"enum": ["GET", "HEAD", None]},
    "const_string": {"const": "x"},
    "const_null": {"const": None},
    "not_string": {"not": {"type": "string"}},
    "not_not_integer": {"not": {"not": {"type": "integer"}}},
    "not_not_pattern": {"not": {"not": {"pattern": "^a$"}}},
    "not_empty": {"not": {}},
    "any_of": {"anyOf": [{"type": "string", "maxLength": 1}, {"type": "integer", "minimum": 5}]},
    "one_of": {"oneOf": [{"type": "number"}, {"type": "integer"}]},
    "all_of": {"allOf": [{"minLength": 1}, {"maxLength": 2}, {"type": "string"}]},
    "object": {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": True, "c": False},
        "required": ["a"],
        "additionalProperties": {"type": "integer"},
        "minProperties": 1,
        "maxProperties": 2,
        "propertyNames": {"maxLength": 3, "pattern": "^[a-z]+$"},
    },
    "object_closed": {"type": "object", "properties": {"x_len": {"type": "string"}, "x": {"maxLength": 1}}},
    "headers": {
        "type": "object",
        "additionalProperties": {"type": "string", "maxLength": 4},
        "maxProperties": 3,
        "propertyNames": {"not": {"pattern": "(?i)^(host|proxy-.*|te)$"}},
    },
    "array": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3},
    "array_untyped": {"items": {"enum": ["a"]}, "maxItems": 1},
    "items_false": {"items": False},
    "annotations": {
        "title": "t",
        "description": "d",
        "default": 3,
        "examples": [1],
        "$comment": "c",
        "deprecated": True,
        "readOnly": True,
        "writeOnly": False,
        "type": "integer",
    },
}

INTERESTING_STRINGS = [
    "", " ", "a", "ab", "abc", "abcd", "a\n", "\na", "A", "x", "\x00", "é", "e\u0301", "\ud800", "\U0001d518",
    "GET", "get", "GET\n", "HEAD", "host", "Host", "HOST", "host\n", "Host\n", "\nhost", "ho\nst",
    "te", "TE\n",
    "x-forwarded-for", "X-Forwarded-For\n", "proxy-", "proxy-\n", "keep-al\u0131ve", "\u212aeep-alive",
    "content-length", "via", "1", "12", "\u0663", "$", "a$", "\\$", "null", "true", "1.0",
]  # fmt: skip
INTERESTING_NUMBERS = [
    0, 1, -1, 2, 5, 1024, 1025, 8760, 2**53, 2**53 + 1, 2**64, 2**64 + 1, -(2**64), 10**30, 10**300,
    0.0, -0.0, 0.5, 1.0, 1.5, 1024.0, 1024.5, 8760.0, 8760.000001, 5e-324, 1e300, -1e300, float(2**64),
    math.inf, -math.inf, math.nan, True, False,
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),
    st.floats(min_value=-2000, max_value=2000).map(float.__round__).map(float),  # integral floats: 3.0
    st.text(max_size=6),
    st.sampled_from(INTERESTING_STRINGS),
    st.sampled_from(INTERESTING_NUMBERS),
)


def _keys(extra: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=5), st.sampled_from(INTERESTING_STRINGS + extra))


def json_values(keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
        max_leaves=8,
    )


def _nodes(schema: Any) -> Iterator[dict[str, Any]]:
    """Every schema object inside `schema`, so boundary values follow whatever a manifest declares."""
    if isinstance(schema, dict):
        yield schema
        for key, value in schema.items():
            if key in ("properties",) and isinstance(value, dict):
                for sub in value.values():
                    yield from _nodes(sub)
            elif key in ("allOf", "anyOf", "oneOf") and isinstance(value, list):
                for sub in value:
                    yield from _nodes(sub)
            elif key in ("additionalProperties", "propertyNames", "items", "not"):
                yield from _nodes(value)


def boundary_values(schema: Any) -> list[Any]:
    """Values at and either side of each limit, enum member and key name the schema mentions."""
    out: list[Any] = []
    for node in _nodes(schema):
        for key in ("minLength", "maxLength"):
            if key in node:
                n = node[key]
                out += ["a" * max(n - 1, 0), "a" * n, "a" * (n + 1), "é" * n, "\U0001d518" * (n + 1)]
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if key in node:
                x = node[key]
                out += [x, x - 1, x + 1, float(x), x + 0.5, x - 0.5]
                out += [math.nextafter(float(x), math.inf), math.nextafter(float(x), -math.inf)]
        for key in ("minItems", "maxItems"):
            if key in node:
                out += [
                    [1] * max(node[key] - 1, 0),
                    [1] * node[key],
                    [1] * (node[key] + 1),
                    ["a"] * node[key],
                ]
        for key in ("minProperties", "maxProperties"):
            if key in node:
                n = node[key]
                out += [{f"k{i}": "x" for i in range(m)} for m in (max(n - 1, 0), n, n + 1)]
        for value in node.get("enum", []) + ([node["const"]] if "const" in node else []):
            if isinstance(value, str):
                out += [value, value.lower(), value + "\n", value.upper()]
    return out


def key_names(schema: Any) -> list[str]:
    names: list[str] = []
    for node in _nodes(schema):
        names += list(node.get("properties", {})) + list(node.get("required", []))
    return names


def candidates(schema: dict[str, Any]) -> list[Any]:
    """Every value the deterministic sweep tries in each argument position."""
    names = INTERESTING_STRINGS + key_names(schema)
    structured: list[Any] = [{}, [], [1], ["a"], [None], [[]], [{}], {"a": {"a": "x"}}, [1, 1], [1.0, 1]]
    structured += (
        [{k: "x"} for k in names] + [{k: 1} for k in names] + [{"k": v} for v in INTERESTING_NUMBERS]
    )
    return INTERESTING_STRINGS + INTERESTING_NUMBERS + [None] + boundary_values(schema) + structured


def valid_base(m: ToolManifest, values: list[Any]) -> dict[str, Any]:
    """Required arguments filled with values jsonschema accepts, so a sweep reaches the others."""
    base: dict[str, Any] = {}
    for name in m.schema.get("required", []):
        for value in values:
            if not any(
                list(e.absolute_path)[:1] == [name] for e in m.validator.iter_errors({**base, name: value})
            ):
                base[name] = value
                break
    return base


def sweep(m: ToolManifest, fast: Callable[[Any], Any]) -> int:
    """Each candidate as each argument (others valid), as the whole arguments, and beside an extra key."""
    values = candidates(dict(m.schema))
    base = valid_base(m, values)
    checked = 0
    for value in values:
        for arguments in [
            value,
            {**base, "extra": value},
            *({**base, p: value} for p in m.schema["properties"]),
        ]:
            check_agreement(m, fast, arguments)
            checked += 1
    return checked


def arguments_for(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Objects with the declared properties (present or missing), extra properties, and non-objects."""
    keys = _keys(key_names(schema))
    values = st.one_of(json_values(keys), st.sampled_from(boundary_values(schema) or [None]))
    props = list(schema.get("properties", {}))
    required = [p for p in props if p in schema.get("required", [])]
    declared = st.fixed_dictionaries(
        {p: values for p in required}, optional={p: values for p in props if p not in required}
    )
    extra = st.dictionaries(keys, values, max_size=2)
    return st.one_of(
        declared,
        declared,
        st.builds(lambda a, b: {**b, **a}, declared, extra),
        json_values(keys),
    )


def _wrap(sub: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {"v": sub}, "additionalProperties": False}


def _hand_written(tmp: Path) -> dict[str, ToolManifest]:
    tools = {name: {"upstream": "demo", "arguments": _wrap(sub)} for name, sub in KEYWORD_SCHEMAS.items()}
    path = tmp / "tools.yaml"
    path.write_text(yaml.safe_dump({"tools": tools}, allow_unicode=True))
    return load_manifests(path, inspectors=INSPECTORS.keys())


SHIPPED_MANIFESTS = load_manifests(SHIPPED, inspectors=INSPECTORS.keys())


def _fast_accepts(fast: Callable[[Any], Any], arguments: Any) -> bool:
    try:
        fast(arguments)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def _outcome(m: ToolManifest, arguments: Any) -> tuple[str, str | None] | None:
    try:
        m.validate(arguments)
    except SchemaError as exc:
        return str(exc), exc.detail.get("field")
    return None


def check_agreement(m: ToolManifest, fast: Callable[[Any], Any], arguments: Any) -> None:
    expected = m.validator.is_valid(arguments)
    assert _fast_accepts(fast, arguments) == expected, (m.name, arguments)
    # End to end: the manifest refuses exactly as jsonschema alone does, with the same message.
    slow = dataclasses.replace(m, fast_validator=None)
    assert _outcome(m, arguments) == _outcome(slow, arguments)
    assert (_outcome(m, arguments) is None) == expected


def run_differential(m: ToolManifest, fast: Callable[[Any], Any]) -> None:
    @SETTINGS
    @given(arguments=arguments_for(dict(m.schema)))
    def differential(arguments: Any) -> None:
        check_agreement(m, fast, arguments)

    differential()


@pytest.mark.parametrize("name", sorted(SHIPPED_MANIFESTS))
def test_shipped_manifest_fast_path_agrees_with_jsonschema(name: str) -> None:
    m = SHIPPED_MANIFESTS[name]
    assert m.fast_validator is not None, m.fast_note  # every shipped tool gets the fast path
    assert sweep(m, m.fast_validator) > 500
    run_differential(m, m.fast_validator)


@pytest.fixture(scope="module")
def hand_written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ToolManifest]:
    return _hand_written(tmp_path_factory.mktemp("keywords"))


@pytest.mark.parametrize("name", sorted(KEYWORD_SCHEMAS))
def test_allowlisted_keyword_fast_path_agrees_with_jsonschema(
    name: str, hand_written: dict[str, ToolManifest]
) -> None:
    m = hand_written[name]
    assert m.fast_validator is not None, m.fast_note
    sweep(m, m.fast_validator)
    run_differential(m, m.fast_validator)


def test_every_allowlisted_keyword_has_a_differential_schema() -> None:
    """Widening the allowlist without a schema here would go untested."""
    used = {key for sub in KEYWORD_SCHEMAS.values() for node in _nodes(sub) for key in node}
    used |= {key for m in SHIPPED_MANIFESTS.values() for node in _nodes(dict(m.schema)) for key in node}
    assert FAST_KEYWORDS <= used, sorted(FAST_KEYWORDS - used)


def test_the_differential_catches_a_naive_fast_path() -> None:
    """Compiling http.fetch's schema straight with fastjsonschema (trusting its own `pattern`, which
    turns `$` into `\\Z`) lets a header named "Host\\n" through that jsonschema refuses. (The
    shipped schema's token pattern for header names refuses "Host\\n" on its own: the naive path
    is shown on the routing-header rule alone.)"""
    m = SHIPPED_MANIFESTS["http.fetch"]
    schema = copy.deepcopy(dict(m.schema))
    del schema["properties"]["headers"]["propertyNames"]["pattern"]
    naive = fastjsonschema.compile(schema, use_default=False)
    assert _fast_accepts(naive, {"url": "u", "headers": {"Host\n": "x"}})
    assert not m.validator.is_valid({"url": "u", "headers": {"Host\n": "x"}})
    with pytest.raises(AssertionError):
        sweep(m, naive)


def test_the_differential_catches_untrusted_formats() -> None:
    """fastjsonschema checks `format` with its own regexes; under `not` that becomes an acceptance."""
    m = dataclasses.replace(
        SHIPPED_MANIFESTS["file.read"],
        schema=_wrap({"not": {"format": "email"}}),
        validator=SHIPPED_MANIFESTS["file.read"].validator.__class__(
            _wrap({"not": {"format": "email"}}),
            format_checker=SHIPPED_MANIFESTS["file.read"].validator.FORMAT_CHECKER,
        ),
    )
    naive = fastjsonschema.compile(_wrap({"not": {"format": "email"}}), use_default=False)
    assert not m.validator.is_valid({"v": "a@b"}) and _fast_accepts(naive, {"v": "a@b"})
    assert compile_fast(dict(m.schema))[0] is None


@pytest.mark.parametrize(
    ("sub", "named"),
    [
        ({"type": "string", "format": "email"}, "format"),
        ({"$ref": "#/$defs/x"}, "$ref"),
        ({"type": "number", "multipleOf": 0.1}, "multipleOf"),
        ({"type": "array", "uniqueItems": True}, "uniqueItems"),
        ({"type": "array", "prefixItems": [{"type": "string"}]}, "prefixItems"),
        ({"type": "array", "contains": {"type": "string"}}, "contains"),
        ({"type": "object", "patternProperties": {"^x": {}}}, "patternProperties"),
        ({"type": "object", "dependentSchemas": {"a": {}}}, "dependentSchemas"),
        ({"type": "object", "dependentRequired": {"a": ["b"]}}, "dependentRequired"),
        ({"type": "object", "dependencies": {"a": ["b"]}}, "dependencies"),
        ({"type": "object", "unevaluatedProperties": False}, "unevaluatedProperties"),
        ({"if": {"type": "string"}, "then": {"minLength": 1}}, "if"),
        ({"type": "string", "contentEncoding": "base64"}, "contentEncoding"),
        ({"enum": [1, True]}, "enum"),
        ({"enum": ["a", 1.0]}, "enum"),
        ({"const": 1}, "const"),
        ({"const": False}, "const"),
        ({"type": "object", "properties": {"dry-run": {}}}, "properties"),
        ({"type": "object", "properties": {"a__b": {}}}, "properties"),
        ({"maximum": True}, "maximum"),
        ({"maxLength": 1.5}, "maxLength"),
        ({"type": "string", "x-custom": 1}, "x-custom"),
    ],
)
def test_schemas_outside_the_allowlist_keep_jsonschema_only(sub: dict[str, Any], named: str) -> None:
    validator, note = compile_fast(_wrap(sub))
    assert validator is None
    assert named in note


def test_a_schema_outside_the_allowlist_still_loads_and_validates(tmp_path: Path) -> None:
    path = tmp_path / "tools.yaml"
    spec = {"upstream": "demo", "arguments": _wrap({"type": "string", "format": "ipv4"})}
    path.write_text(yaml.safe_dump({"tools": {"t": spec}}))
    m = load_manifests(path, inspectors=INSPECTORS.keys())["t"]
    assert m.fast_validator is None and "format" in m.fast_note
    m.validate({"v": "10.0.0.1"})
    with pytest.raises(SchemaError) as info:
        m.validate({"v": "10.0.0.300"})
    assert info.value.detail["field"] == "v"


def test_fast_rejection_alone_refuses_with_fastjsonschema_message() -> None:
    """If the two ever disagree, the call is refused (fail closed), naming fastjsonschema's reason."""
    m = SHIPPED_MANIFESTS["file.read"]

    def rejects(data: Any) -> Any:
        raise fastjsonschema.JsonSchemaValueException("data.path must be nice", name="data.path", rule="x")

    with pytest.raises(SchemaError) as info:
        dataclasses.replace(m, fast_validator=rejects).validate({"path": "README.md"})
    assert (
        str(info.value) == "file.read: path: data.path must be nice" and info.value.detail["field"] == "path"
    )


def test_fast_path_crash_leaves_the_decision_to_jsonschema() -> None:
    def crashes(data: Any) -> Any:
        raise RecursionError("deep")

    m = dataclasses.replace(SHIPPED_MANIFESTS["file.read"], fast_validator=crashes)
    m.validate({"path": "README.md"})
    with pytest.raises(SchemaError) as info:
        m.validate({"path": ""})
    assert info.value.detail["field"] == "path"


@pytest.mark.parametrize(
    "arguments",
    [({"path": "x"},), {"path": ("x",)}, {1: "x"}, {"path": type("S", (str,), {})("x")}, {"path": b"x"}],
)
def test_non_json_values_skip_the_fast_path(arguments: Any) -> None:
    """The allowlist's equivalence is for JSON values; a tuple or str subclass goes to jsonschema."""
    calls: list[Any] = []
    m = dataclasses.replace(SHIPPED_MANIFESTS["file.read"], fast_validator=calls.append)
    try:
        m.validate(arguments)
    except SchemaError:
        pass
    assert calls == []


def test_fast_path_does_not_fill_defaults_into_the_arguments() -> None:
    m = SHIPPED_MANIFESTS["compute.provision"]
    arguments = {"gpu_type": "a100", "count": 1}
    m.validate(arguments)
    assert arguments == {"gpu_type": "a100", "count": 1}


def test_existing_messages_are_unchanged() -> None:
    m = SHIPPED_MANIFESTS["compute.provision"]
    with pytest.raises(SchemaError) as info:
        m.validate({"gpu_type": "a100", "count": True})
    assert (str(info.value), info.value.detail["field"]) == (
        "compute.provision: count: True is not of type 'integer'",
        "count",
    )
    m.validate({"gpu_type": "a100", "count": 2.0})  # 2.0 is an integer in JSON Schema, as before
    with pytest.raises(SchemaError) as info:
        SHIPPED_MANIFESTS["http.fetch"].validate({"url": "u", "extra": 1})
    assert info.value.detail["field"] == "(arguments)"


def test_module_exposes_the_allowlist_it_uses() -> None:
    assert "pattern" in FAST_KEYWORDS and "format" not in FAST_KEYWORDS
    assert manifest_module.ANNOTATIONS.isdisjoint(FAST_KEYWORDS)


@pytest.mark.parametrize("name", [".", ".."])
def test_a_tool_cannot_be_named_like_a_directory(tmp_path: Path, name: str) -> None:
    """A tool's URL is <upstream>/tools/<name>; "." and ".." would name another path."""
    path = tmp_path / "tools.yaml"
    tool = {"upstream": "demo", "arguments": {"type": "object", "additionalProperties": False}}
    path.write_text(yaml.safe_dump({"tools": {name: tool}}))
    with pytest.raises(ConfigError, match="cannot be named"):
        load_manifests(path, inspectors=INSPECTORS.keys())
