"""The five demo tools: simulated, harmless stand-ins with the argument shapes of real ones.

Each tool is a plain function ``(workspace, arguments) -> result`` shared by the plain HTTP
demo (``http_app``) and the MCP demo (``mcp_app``), so both servers behave and advertise the
same. They never execute what they are given and never open a connection: ``shell.exec``
imitates a handful of commands against the in-memory workspace, ``http.fetch`` invents a
response, ``compute.provision`` provisions nothing.

A tool-level failure (a missing file, say) is a normal answer ``{"error": {"code", "message"}}``,
not an exception: the gate forwards it like any other result. Arguments that do not match the
tool's schema raise ``InvalidArguments``; the servers map it at their boundary.
"""

from __future__ import annotations

import math
import shlex
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final, NamedTuple

from gatekeeper.demo.workspace import WORKSPACE_ROOT, Workspace, resolve_path

JSONObject = dict[str, Any]
Tool = Callable[[Workspace, Mapping[str, Any]], JSONObject]

TOOL_NAMES: Final = ("shell.exec", "http.fetch", "file.read", "file.write", "compute.provision")

TOOL_DESCRIPTIONS: Final[Mapping[str, str]] = {
    "shell.exec": "Run a shell command in the workspace (simulated: nothing is executed).",
    "http.fetch": "Fetch a URL over HTTP (simulated: no connection is opened).",
    "file.read": "Read a text file; relative paths resolve in /workspace.",
    "file.write": "Write a text file; relative paths resolve in /workspace (in memory).",
    "compute.provision": "Provision GPU machines (simulated: nothing is provisioned).",
}

HTTP_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

TOOL_SCHEMAS: Final[Mapping[str, JSONObject]] = {
    "shell.exec": {
        "type": "object",
        "properties": {
            "cmd": {"type": "string", "minLength": 1, "description": "A command line, as sh reads it."},
            "cwd": {"type": "string", "description": "Working directory; defaults to /workspace."},
        },
        "required": ["cmd"],
        "additionalProperties": False,
    },
    "http.fetch": {
        "type": "object",
        "properties": {
            "url": {"type": "string", "minLength": 1, "format": "uri"},
            "method": {"type": "string", "enum": list(HTTP_METHODS), "default": "GET"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "body": {"type": "string"},
        },
        "required": ["url"],
        "additionalProperties": False,
    },
    "file.read": {
        "type": "object",
        "properties": {"path": {"type": "string", "minLength": 1}},
        "required": ["path"],
        "additionalProperties": False,
    },
    "file.write": {
        "type": "object",
        "properties": {
            "path": {"type": "string", "minLength": 1},
            "content": {"type": "string"},
        },
        "required": ["path", "content"],
        "additionalProperties": False,
    },
    "compute.provision": {
        "type": "object",
        "properties": {
            "gpu_type": {"type": "string", "minLength": 1, "description": "For example a100, h100."},
            "count": {"type": "integer", "minimum": 1},
            "hours": {"type": "number", "exclusiveMinimum": 0},
        },
        "required": ["gpu_type", "count"],
        "additionalProperties": False,
    },
}


class InvalidArguments(ValueError):
    """The arguments do not match the tool's schema; ``code`` is ``invalid_arguments``."""

    code: Final = "invalid_arguments"


class UnknownTool(LookupError):
    """No demo tool has this name; ``code`` is ``unknown_tool``."""

    code: Final = "unknown_tool"


class ReceivedCall(NamedTuple):
    """One call as a demo server received it, kept so tests can see what reached the tool.

    Header names are lower-cased. ``arguments`` is whatever the body carried (``None`` when it
    was not JSON), before any validation.
    """

    tool: str
    arguments: Any
    headers: dict[str, str]


class ReceivedLog(list[ReceivedCall]):
    """What a demo server received, oldest first. Only the last ``limit`` calls are kept: a demo
    left running (it is on by default) must not grow without bound, or feed every full garbage
    collection pass a bigger heap to walk."""

    def __init__(self, limit: int = 1000) -> None:
        super().__init__()
        self.limit = limit

    def append(self, call: ReceivedCall) -> None:
        super().append(call)
        if len(self) > self.limit:
            del self[: len(self) - self.limit]


def call_tool(workspace: Workspace, name: str, arguments: Any) -> JSONObject:
    """Validate ``arguments`` against the tool's schema and run the simulation."""
    tool = _TOOLS.get(name)
    if tool is None:
        raise UnknownTool(name)
    validate_arguments(TOOL_SCHEMAS[name], arguments)
    return tool(workspace, arguments)


def tool_error(code: str, message: str) -> JSONObject:
    return {"error": {"code": code, "message": message}}


def is_tool_error(result: Mapping[str, Any]) -> bool:
    return isinstance(result.get("error"), dict)


# --- the tools -------------------------------------------------------------------------------


def shell_exec(workspace: Workspace, arguments: Mapping[str, Any]) -> JSONObject:
    cmd: str = arguments["cmd"]
    cwd = resolve_path(arguments.get("cwd", WORKSPACE_ROOT))
    if not workspace.is_dir(cwd):
        return _shell(1, stderr=f"sh: cd: {cwd}: No such file or directory\n")
    return _simulate_command(workspace, cmd, cwd)


def http_fetch(workspace: Workspace, arguments: Mapping[str, Any]) -> JSONObject:
    method: str = arguments.get("method", "GET")
    url: str = arguments["url"]
    return {
        "status": 200,
        "headers": {"content-type": "text/plain; charset=utf-8", "x-simulated": "true"},
        "body": f"(simulated response for {method} {url})",
        "simulated": True,
    }


def file_read(workspace: Workspace, arguments: Mapping[str, Any]) -> JSONObject:
    path = resolve_path(arguments["path"])
    if workspace.is_dir(path):
        return tool_error("is_a_directory", f"{path} is a directory")
    content = workspace.read(path)
    if content is None:
        return tool_error("not_found", f"No such file: {path}")
    return {"path": path, "content": content}


def file_write(workspace: Workspace, arguments: Mapping[str, Any]) -> JSONObject:
    content: str = arguments["content"]
    try:
        path = workspace.write(arguments["path"], content)
    except IsADirectoryError as exc:
        return tool_error("is_a_directory", f"{exc.args[0]} is a directory")
    return {"path": path, "bytes_written": len(content.encode())}


def compute_provision(workspace: Workspace, arguments: Mapping[str, Any]) -> JSONObject:
    return {
        "provisioned": False,
        "simulated": True,
        "request_id": f"sim-{uuid.uuid4().hex[:16]}",
        "gpu_type": arguments["gpu_type"],
        "count": int(arguments["count"]),
        "hours": arguments.get("hours"),
    }


_TOOLS: Final[Mapping[str, Tool]] = {
    "shell.exec": shell_exec,
    "http.fetch": http_fetch,
    "file.read": file_read,
    "file.write": file_write,
    "compute.provision": compute_provision,
}


# --- shell.exec simulation -------------------------------------------------------------------

# A command line with any of these is more than one simple command; it is not imitated.
_SHELL_OPERATORS: Final = ("|", "&", ";", ">", "<", "`", "$(", "\n")


def _shell(exit_code: int, stdout: str = "", stderr: str = "") -> JSONObject:
    return {"exit_code": exit_code, "stdout": stdout, "stderr": stderr, "simulated": True}


def _simulate_command(workspace: Workspace, cmd: str, cwd: str) -> JSONObject:
    generic = _shell(0, stdout=f"(simulated) {cmd}")
    if any(op in cmd for op in _SHELL_OPERATORS):
        return generic
    try:
        argv = shlex.split(cmd)
    except ValueError:
        return _shell(2, stderr="sh: syntax error: unterminated quoted string\n")
    if not argv:
        return generic
    program, args = argv[0], argv[1:]
    if program == "pwd":
        return _shell(0, stdout=cwd + "\n")
    if program == "echo":
        return _shell(0, stdout=" ".join(args) + "\n")
    if program == "ls":
        return _ls(workspace, [a for a in args if not a.startswith("-")], cwd)
    if program == "cat" and args:
        return _cat(workspace, args, cwd)
    if program in ("python", "python3") and args in (["--version"], ["-V"]):
        return _shell(0, stdout="Python 3.11.7\n")
    if program == "pytest" or (program in ("python", "python3") and args[:2] == ["-m", "pytest"]):
        return _shell(0, stdout=_PYTEST_OUTPUT)
    if program == "git" and args[:1] == ["status"]:
        return _shell(0, stdout="On branch main\nnothing to commit, working tree clean\n")
    return generic


def _ls(workspace: Workspace, paths: list[str], cwd: str) -> JSONObject:
    out: list[str] = []
    err: list[str] = []
    for path in paths or ["."]:
        absolute = resolve_path(path, cwd)
        names = workspace.list_dir(absolute)
        if names is not None:
            out.extend(names)
        elif workspace.is_file(absolute):
            out.append(path)
        else:
            err.append(f"ls: cannot access '{path}': No such file or directory\n")
    stdout = "".join(name + "\n" for name in out)
    return _shell(2 if err else 0, stdout=stdout, stderr="".join(err))


def _cat(workspace: Workspace, paths: list[str], cwd: str) -> JSONObject:
    out: list[str] = []
    err: list[str] = []
    for path in paths:
        absolute = resolve_path(path, cwd)
        content = workspace.read(absolute)
        if content is not None:
            out.append(content)
        elif workspace.is_dir(absolute):
            err.append(f"cat: {path}: Is a directory\n")
        else:
            err.append(f"cat: {path}: No such file or directory\n")
    return _shell(1 if err else 0, stdout="".join(out), stderr="".join(err))


_PYTEST_OUTPUT: Final = (
    "============================= test session starts ==============================\n"
    "collected 1 item\n\n"
    "tests/test_main.py .                                                     [100%]\n\n"
    "============================== 1 passed in 0.01s ===============================\n"
)


# --- argument validation ---------------------------------------------------------------------

_JSON_TYPES: Final[Mapping[str, Callable[[Any], bool]]] = {
    "object": lambda v: isinstance(v, dict),
    "string": lambda v: isinstance(v, str),
    # As in JSON Schema, 2.0 is an integer.
    "integer": lambda v: (
        (isinstance(v, float) and v.is_integer()) or (isinstance(v, int) and not isinstance(v, bool))
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v),
    "boolean": lambda v: isinstance(v, bool),
}


def validate_arguments(schema: Mapping[str, Any], value: Any, where: str = "arguments") -> None:
    """Check ``value`` against the small JSON Schema subset that ``TOOL_SCHEMAS`` uses.

    The demo keeps its own checker so the tools never act on a shape they did not declare;
    the gate does the full validation before a call ever gets here.
    """
    expected = schema.get("type")
    if expected is not None and not _JSON_TYPES[expected](value):
        raise InvalidArguments(f"{where} must be of type {expected}")
    if "enum" in schema and value not in schema["enum"]:
        raise InvalidArguments(f"{where} must be one of {', '.join(map(str, schema['enum']))}")
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        raise InvalidArguments(f"{where} must not be empty")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise InvalidArguments(f"{where} must be at least {schema['minimum']}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            raise InvalidArguments(f"{where} must be greater than {schema['exclusiveMinimum']}")
    if isinstance(value, dict):
        _validate_object(schema, value, where)


def _validate_object(schema: Mapping[str, Any], value: dict[Any, Any], where: str) -> None:
    properties: Mapping[str, Any] = schema.get("properties", {})
    for name in schema.get("required", ()):
        if name not in value:
            raise InvalidArguments(f"{where}.{name} is required")
    extra: bool | Mapping[str, Any] = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in properties:
            validate_arguments(properties[name], item, f"{where}.{name}")
        elif extra is False:
            raise InvalidArguments(f"{where}.{name} is not an accepted argument")
        elif isinstance(extra, Mapping):
            validate_arguments(extra, item, f"{where}.{name}")
