"""The stable ``code`` of every answer: spelled once in ``gatekeeper.codes``, listed in docs/errors.md."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from gatekeeper import codes

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gatekeeper"
# The demo upstream stands for someone else's tool server; the approvals CLI prints its own
# message prefixes (``gatekeeper: usage: ...``), not answers.
NOT_GATEKEEPER_ANSWERS = ("demo/", "cli/approvals.py", "codes.py")
# Functions whose positional argument N is a code (the package's own refusal helpers).
CODE_ARGUMENT = {
    "Decision": 1,
    "Refusal": 1,
    "_resolved": 2,
    "_budget_decision": 2,
    "_rpc_error": 4,
    "rpc_error_message": 3,
    "_refusal": 0,
    "_fail": 0,
    "tool_error": 0,
}


def _literal_codes(tree: ast.AST) -> list[tuple[int, str]]:
    """String literals where the package produces a code: ``code=...``, ``code = ...`` in a
    class, ``{"code": ...}``, ``x.code = ...`` and the refusal helpers' code argument."""
    found: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "code":
            found.append(node.value)
        elif isinstance(node, ast.ClassDef):
            for stmt in node.body:
                if isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None:
                    target = stmt.targets[0] if isinstance(stmt, ast.Assign) else stmt.target
                    if isinstance(target, ast.Name) and target.id == "code":
                        found.append(stmt.value)
        elif isinstance(node, ast.Dict):
            found += [v for k, v in zip(node.keys, node.values, strict=True) if _is_str(k, "code")]
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple):
            for target in node.targets:
                if isinstance(target, ast.Tuple):
                    pairs = zip(target.elts, node.value.elts, strict=False)
                    found += [v for t, v in pairs if isinstance(t, ast.Attribute) and t.attr == "code"]
        elif isinstance(node, ast.Call):
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            index = CODE_ARGUMENT.get(name)
            if index is not None and len(node.args) > index:
                found.append(node.args[index])
    out: list[tuple[int, str]] = []
    for expr in found:
        branches = [expr.body, expr.orelse] if isinstance(expr, ast.IfExp) else [expr]
        out += [
            (b.lineno, b.value) for b in branches if isinstance(b, ast.Constant) and isinstance(b.value, str)
        ]
    return out


def _is_str(node: ast.expr | None, value: str) -> bool:
    return isinstance(node, ast.Constant) and node.value == value


def test_the_package_names_every_code_it_produces_from_the_codes_module() -> None:
    spelled = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(NOT_GATEKEEPER_ANSWERS):
            continue
        spelled += [
            f"{relative}:{line}: {value!r}" for line, value in _literal_codes(ast.parse(path.read_text()))
        ]
    assert spelled == [], "use a constant of gatekeeper.codes (add one, and a row in docs/errors.md)"


def test_the_scan_sees_each_way_a_code_is_produced() -> None:
    """The check above is only as good as its patterns: each must catch a literal."""
    sample = """
class E(GatekeeperError):
    code = "a"
raise E("m", code="b" if x else "c")
body = {"code": "d"}
conn.outcome, conn.code = "denied", "e"
Decision(Outcome.DENY, "f", "why", None)
raise Refusal(400, "g", "why")
return tool_error("h", "why"), _fail("i", "why")
"""
    assert sorted(value for _, value in _literal_codes(ast.parse(sample))) == list("abcdefghi")


def test_codes_are_distinct_snake_case_words() -> None:
    values = [v for name, v in vars(codes).items() if name.isupper() and isinstance(v, str)]
    assert len(values) == len(set(values)) == len(codes.ALL)
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", v) for v in values)


def test_docs_errors_lists_exactly_the_codes() -> None:
    text = (ROOT / "docs" / "errors.md").read_text()
    documented = re.findall(r"^\| `([a-z0-9_]+)` \|", text, re.M)
    assert len(documented) == len(set(documented)), "a code is listed twice"
    assert sorted(codes.ALL - set(documented)) == [], "undocumented codes: add them to docs/errors.md"
    assert sorted(set(documented) - codes.ALL) == [], "documented codes the package does not have"


def test_the_invoke_error_list_in_configuration_md_names_real_codes() -> None:
    section = (ROOT / "docs" / "configuration.md").read_text().split("## Errors an agent can get", 1)[1]
    named = set(re.findall(r"`([a-z][a-z0-9_]+)`", section.split("\n## ", 1)[0]))
    words = {"outcome", "denied", "pending", "deny", "on_exceed", "code", "message", "field", "approval_id"}
    assert named - words - {"expires_at", "forwarded"} <= codes.ALL
