"""``gatekeeper policy lint``: check a policy set before it goes live, pointing at ``file:line``.

Checks the casbin model, every policy line and the tool manifests:

- syntax: line shape, effects, quorum, conditions that do not parse or name unknown attributes;
- names: ``tool:X`` with no manifest X, capability families no inspector emits, roles that
  grant nothing, subjects no principal can ever have;
- rules that can never fire: an allow or escalate that an unconditional deny always beats, exact
  duplicates, denies an earlier deny-for-everyone already covers;
- allow rules that overlap a deny (the deny wins where they meet; worth knowing);
- manifests: everything ``load_manifests`` rejects (unknown inspector, schema problems), for every
  tool, not only the first.

Severity ``error`` means the set will not load or silently does not protect what it says (a deny
with a misspelt capability); ``warning`` means a rule is dead or surprising; ``info`` is advice.
"""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import casbin
import simpleeval
import yaml

from ..budgets import load_budget_rules
from ..config import PolicyFiles
from ..errors import ConfigError, GatekeeperError
from ..inspectors import INSPECTORS
from ..manifest import _one as _load_one_manifest
from ..yamlfile import DuplicateKeyError, load_yaml, yaml_error_line, yaml_error_message
from .policy_csv import Rule, RuleProblem, parse_rule, read_lines

ERROR = "error"
WARNING = "warning"
INFO = "info"

#: Every capability family the inspectors emit, and what follows its ``:`` (None: no parameter).
#: The one list of known capability names: lint, explain and the docs' table agree with it, and
#: ``tests/policy_tools/test_lint.py`` checks it against the names the inspectors' code emits.
CAPABILITY_FAMILIES: Mapping[str, str | None] = MappingProxyType(
    {
        # programs
        "proc.exec": "program name",
        "proc.exec_hook": "program",
        "proc.inline_code": "program",
        "proc.shell": None,
        "proc.spawn": None,
        "proc.signal": None,
        "shell.opaque": None,
        # network
        "net.egress": "host:port",
        "net.connect": "host:port",
        "net.internal": None,
        "net.metadata": None,
        "net.idn": None,
        "net.userinfo": None,
        "net.scheme": "scheme",
        "net.proxy": None,
        "net.listen": None,
        "url.opaque": None,
        # remote access
        "net.tunnel": None,
        "net.tunnel.reverse": None,
        "net.tunnel.forward": None,
        "net.reverse_shell": None,
        "net.download_exec": None,
        "net.scan": None,
        "net.firewall": None,
        # files
        "fs.read": "absolute path",
        "fs.write": "absolute path",
        "fs.system": None,
        "fs.opaque": None,
        "cred.ssh": None,
        "cred.cloud": None,
        "cred.secret": None,
        "cred.env": None,
        "fs.gitdir": None,
        "fs.autorun": None,
        # persistence and tampering
        "persist.cron": None,
        "persist.service": None,
        "persist.shellrc": None,
        "log.tamper": None,
        "priv.escalate": None,
        # compute
        "compute.gpu": "GPU type",
        "compute.provision": None,
        "compute.opaque": None,
        "crypto.mine": None,
        # MCP methods besides tools/call (mcp_methods.py)
        "mcp.method": "MCP method",
        "mcp.prompt": "prompt name",
        "mcp.resource": "resource URI",
        # shape
        "inspect.invalid": None,
    }
)

#: Amounts a capability family carries, readable in conditions as ``r.ctx.NAME``.
CAPABILITY_AMOUNTS: Mapping[str, tuple[str, ...]] = MappingProxyType({"compute.gpu": ("gpus", "gpu_hours")})

#: What every condition may read besides amounts.
CONTEXT_ATTRIBUTES = ("tool", "capability", "subject")

_EXPECTED_MODEL = {
    ("request_definition", "r"): "sub, obj, act, ctx",
    ("policy_definition", "p"): "sub, obj, act, cond, note",
    ("role_definition", "g"): "_, _",
    ("policy_effect", "e"): "some(where (p.eft == allow))",
    ("matchers", "m"): '(p.sub == "*" || g(r.sub, p.sub)) && keyMatch(r.obj, p.obj) '
    "&& r.act == p.act && eval(p.cond)",
}
_LOCATION = re.compile(r"(?P<file>[^\s:;]+):(?P<line>\d+): (?P<message>[^;]+)")


@dataclass(frozen=True, slots=True)
class Finding:
    path: str
    line: int
    severity: str  # "error" | "warning" | "info"
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.severity} {self.code}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
        }


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity == ERROR for f in findings)


def policy_files_in(directory: Path) -> PolicyFiles:
    """The three files of a policy directory laid out like ``policies/``."""
    return PolicyFiles(
        directory / "model.conf",
        directory / "policy.csv",
        directory / "tools.yaml",
        budgets=directory / "budgets.yaml",
    )


def lint(
    files: PolicyFiles,
    *,
    upstreams: Collection[str] | None = None,
    known_roles: Collection[str] | None = None,
) -> list[Finding]:
    """Every finding for the policy set in ``files``, sorted by file and line.

    ``upstreams``: check manifests' upstream names against these (None: do not check).
    ``known_roles``: the roles tokens can carry; a ``p`` subject no such role reaches is reported
    (None: any role a token names is possible, so only structurally impossible subjects are).
    """
    findings: list[Finding] = []
    findings += _lint_model(Path(files.model))
    tools, tool_findings = _lint_manifests(Path(files.tools), upstreams)
    findings += tool_findings
    rules, links, policy_findings = _parse_policy(Path(files.policy), tools)
    findings += policy_findings
    findings += _lint_rules(str(files.policy), rules, links, tools, str(files.tools), known_roles)
    if files.budgets is not None and Path(files.budgets).exists():
        findings += _lint_budgets(Path(files.budgets))
    if not has_errors(findings):
        findings += _load_check(files, upstreams)
    order = {ERROR: 0, WARNING: 1, INFO: 2}
    return sorted(findings, key=lambda f: (f.path, f.line, order.get(f.severity, 3), f.code))


# --- model.conf ---------------------------------------------------------------------------------


def _lint_model(path: Path) -> list[Finding]:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return [Finding(source, 1, ERROR, "syntax", f"cannot read the model: {exc.strerror}")]
    try:
        model = casbin.model.Model()
        model.load_model(source)
    except Exception as exc:  # casbin raises bare exceptions on bad models
        return [Finding(source, 1, ERROR, "syntax", f"casbin cannot load this model: {exc}")]
    found: dict[tuple[str, str], tuple[int, str]] = {}
    section = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        key, sep, value = line.partition("=")
        if sep:
            found[(section, key.strip())] = (number, value.strip())
    findings: list[Finding] = []
    for (section, key), expected in _EXPECTED_MODEL.items():
        if (section, key) not in found:
            findings.append(Finding(source, 1, ERROR, "model", f"[{section}] has no '{key} = {expected}'"))
            continue
        number, value = found[(section, key)]
        if _squash(value) == _squash(expected):
            continue
        if section in ("request_definition", "policy_definition", "role_definition"):
            findings.append(
                Finding(
                    source, number, ERROR, "model", f"Gatekeeper needs '{key} = {expected}', not {value!r}."
                )
            )
        else:
            findings.append(
                Finding(
                    source,
                    number,
                    WARNING,
                    "model-ignored",
                    f"Gatekeeper decides with its own index and combines effects itself (any deny, then "
                    f"escalate, then allow); this line differs from '{key} = {expected}' and the change "
                    "has no effect on decisions",
                )
            )
    return findings


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


# --- tools.yaml ---------------------------------------------------------------------------------


def _lint_manifests(
    path: Path, upstreams: Collection[str] | None
) -> tuple[dict[str, int] | None, list[Finding]]:
    """Each tool name with its line (None when the file could not be read at all), and the findings."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [Finding(source, 1, ERROR, "syntax", f"cannot read the manifests: {exc.strerror}")]
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = load_yaml(text, source)
    except DuplicateKeyError as exc:
        return None, [Finding(source, yaml_error_line(exc), ERROR, "duplicate-key", yaml_error_message(exc))]
    except yaml.YAMLError as exc:
        return None, [Finding(source, yaml_error_line(exc), ERROR, "syntax", yaml_error_message(exc))]
    if not isinstance(raw, dict) or not isinstance(raw.get("tools"), dict):
        return None, [Finding(source, 1, ERROR, "manifest", "expected a mapping with a 'tools' mapping")]
    findings: list[Finding] = []
    for name, spec in raw["tools"].items():
        try:
            _load_one_manifest(source, name, spec, INSPECTORS.keys(), upstreams)
        except ConfigError as exc:
            key = str(exc.detail.get("key") or f"tools.{name}").rstrip(".")
            code = "unknown-inspector" if "unknown inspector" in exc.message else "manifest"
            message = exc.message.removeprefix(f"{source}: ")
            findings.append(Finding(source, _yaml_line(root, key), ERROR, code, message))
            continue
        if isinstance(spec, dict) and not spec.get("inspect"):
            findings.append(
                Finding(
                    source,
                    _yaml_line(root, f"tools.{name}"),
                    WARNING,
                    "no-inspector",
                    f"tool {name!r} has no inspect: no inspector reads its arguments, so they yield no "
                    f"capabilities and only tool:{name} rules decide it (any path, URL or command passes)",
                )
            )
    return {str(name): _yaml_line(root, f"tools.{name}") for name in raw["tools"]}, findings


def _yaml_line(node: Any, dotted: str) -> int:
    """The line of the deepest mapping key along ``dotted`` (keys may themselves contain dots)."""
    line = 1
    rest = dotted
    while rest and isinstance(node, yaml.MappingNode):
        best: tuple[Any, Any] | None = None
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if (rest == key or rest.startswith(key + ".")) and (
                best is None or len(key) > len(str(best[0].value))
            ):
                best = (key_node, value_node)
        if best is None:
            break
        line = best[0].start_mark.line + 1
        rest = rest[len(str(best[0].value)) + 1 :]
        node = best[1]
    return line


# --- policy.csv ---------------------------------------------------------------------------------


def _parse_policy(
    path: Path, tools: Collection[str] | None
) -> tuple[list[Rule], list[tuple[int, str, str]], list[Finding]]:
    source = str(path)
    try:
        lines = read_lines(path)
    except OSError as exc:
        return [], [], [Finding(source, 1, ERROR, "syntax", f"cannot read the policy: {exc.strerror}")]
    rules: list[Rule] = []
    links: list[tuple[int, str, str]] = []
    findings: list[Finding] = []

    def add(number: int, severity: str, code: str, message: str) -> None:
        findings.append(Finding(source, number, severity, code, message))

    for line in lines:
        number, key, fields = line.number, line.key, line.fields
        if fields is None:
            add(number, ERROR, "syntax", "unbalanced brackets")
            continue
        if key == "g":
            if len(fields) != 2 or not all(fields):
                add(number, ERROR, "syntax", "expected 'g, CHILD-ROLE, PARENT-ROLE'")
                continue
            links.append((number, fields[0], fields[1]))
            continue
        if key != "p":
            add(number, ERROR, "syntax", f"unknown line type {key!r} (lines start with p or g)")
            continue
        rule = parse_rule(line)
        if rule is RuleProblem.FIELD_COUNT:
            hint = " (a NOTE may not contain commas)" if len(fields) > 5 else ""
            add(number, ERROR, "syntax", f"expected 'p, SUBJECT, OBJECT, EFFECT, CONDITION, NOTE'{hint}")
            continue
        if rule is RuleProblem.EFFECT:
            add(
                number,
                ERROR,
                "syntax",
                "effect must be allow, deny, escalate, escalate:N or unlisted (optionally with !shadow), "
                f"not {fields[2]!r}",
            )
            continue
        if rule is RuleProblem.QUORUM:
            add(number, ERROR, "syntax", "escalate:N needs 1 to 10 approvers")
            continue
        if not rule.subject or not rule.pattern or not rule.condition:
            add(number, ERROR, "syntax", "SUBJECT, OBJECT and CONDITION must not be empty")
            continue
        for severity, code, message in _check_rule(rule, tools):
            add(number, severity, code, message)
        rules.append(rule)
    return rules, links, findings


def _check_rule(rule: Rule, tools: Collection[str] | None) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    subject, pattern = rule.subject, rule.pattern
    if subject != "*" and ("*" in subject or subject.strip() != subject or " " in subject):
        out.append(
            (
                WARNING,
                "unreachable-subject",
                f"subject {subject!r} can never match: subjects are compared "
                "literally and only a lone * means everyone",
            )
        )
    elif subject == "user:":
        out.append((WARNING, "unreachable-subject", "subject 'user:' names no one (write user:<sub>)"))
    star = pattern.find("*")
    if star != -1 and star != len(pattern) - 1:
        out.append(
            (
                WARNING,
                "pattern",
                f"keyMatch ignores everything after the first *: {pattern!r} matches "
                f"every object starting with {pattern[:star]!r}",
            )
        )
    # A misspelt deny protects nothing: that is an error. A misspelt allow or escalate only never fires.
    unknown_severity = ERROR if rule.effect == "deny" else WARNING
    prefix = rule.prefix
    if pattern.startswith("tool:"):
        name = prefix.removeprefix("tool:")
        if tools is not None:
            known = any(t.startswith(name) for t in tools) if rule.wildcard else name in tools
            if not known:
                out.append(
                    (
                        unknown_severity,
                        "unknown-tool",
                        f"no tool manifest matches {pattern!r} (tools: {', '.join(sorted(tools))})",
                    )
                )
    elif not _known_capability(pattern):
        out.append(
            (
                unknown_severity,
                "unknown-capability",
                f"no inspector emits a capability matching {pattern!r} "
                "(see the capability names in docs/policies.md)",
            )
        )
    out += _check_condition(rule)
    return out


def _known_capability(pattern: str) -> bool:
    star = pattern.find("*")
    if star == -1:
        family, sep, parameter = pattern.partition(":")
        if family not in CAPABILITY_FAMILIES:
            return False
        takes = CAPABILITY_FAMILIES[family] is not None
        return bool(sep and parameter) if takes else not sep
    prefix = pattern[:star]
    if ":" in prefix:
        return CAPABILITY_FAMILIES.get(prefix.partition(":")[0], None) is not None
    for name, takes_parameter in CAPABILITY_FAMILIES.items():
        shown = f"{name}:" if takes_parameter is not None else name
        if shown.startswith(prefix):
            return True
    return False


def _family(pattern: str) -> str:
    return pattern.partition(":")[0].partition("*")[0]


def _check_condition(rule: Rule) -> list[tuple[str, str, str]]:
    text = rule.condition.strip()
    if text == "True":
        return []
    try:
        tree = simpleeval.SimpleEval().parse(text.replace("r.ctx.", "r_ctx."))
    except SyntaxError as exc:
        return [(ERROR, "condition", f"the condition {text!r} does not parse: {exc.msg}")]
    out: list[tuple[str, str, str]] = []
    if rule.pattern.startswith("tool:"):
        carried: tuple[str, ...] = ()
    else:
        family = _family(rule.pattern)
        carried = tuple(
            a for fam, amounts in CAPABILITY_AMOUNTS.items() if fam.startswith(family) for a in amounts
        )
    every_amount = {a for amounts in CAPABILITY_AMOUNTS.values() for a in amounts}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "r_ctx":
            attr = node.attr
            if attr in CONTEXT_ATTRIBUTES or attr in carried:
                continue
            if attr in every_amount:
                out.append(
                    (
                        WARNING,
                        "condition",
                        f"r.ctx.{attr} is carried only by "
                        f"{', '.join(f for f, a in CAPABILITY_AMOUNTS.items() if attr in a)} capabilities; "
                        f"for {rule.pattern!r} the condition cannot be evaluated and the call is refused",
                    )
                )
            else:
                known = ", ".join(f"r.ctx.{a}" for a in (*CONTEXT_ATTRIBUTES, *sorted(every_amount)))
                out.append(
                    (
                        ERROR,
                        "condition",
                        f"r.ctx.{attr} is not an attribute any call has (known: {known}); "
                        "the condition can never be evaluated",
                    )
                )
        elif isinstance(node, ast.Name) and node.id not in ("r_ctx", "True", "False", "None"):
            out.append(
                (ERROR, "condition", f"unknown name {node.id!r}: conditions read only r.ctx.ATTRIBUTE")
            )
    return out


# --- across rules -------------------------------------------------------------------------------


def _ancestors(links: Iterable[tuple[int, str, str]]) -> dict[str, set[str]]:
    parents: dict[str, set[str]] = {}
    for _, child, parent in links:
        parents.setdefault(child, set()).add(parent)
    result: dict[str, set[str]] = {}
    for start in parents:
        seen: set[str] = set()
        todo = list(parents[start])
        while todo:
            role = todo.pop()
            if role in seen:
                continue
            seen.add(role)
            todo.extend(parents.get(role, ()))
        result[start] = seen
    return result


def _subject_covers(outer: str, inner: str, ancestors: Mapping[str, set[str]]) -> bool:
    """Does every principal ``inner`` matches also match ``outer``?"""
    return outer == "*" or outer == inner or (inner != "*" and outer in ancestors.get(inner, ()))


def _subjects_meet(a: str, b: str, ancestors: Mapping[str, set[str]]) -> bool:
    return _subject_covers(a, b, ancestors) or _subject_covers(b, a, ancestors)


def _pattern_covers(outer: Rule, inner: Rule) -> bool:
    """Does ``outer``'s pattern match every object ``inner``'s pattern matches?"""
    if not outer.wildcard:
        return not inner.wildcard and inner.pattern == outer.pattern
    return inner.prefix.startswith(outer.prefix)


def _patterns_meet(a: Rule, b: Rule) -> bool:
    if not a.wildcard and not b.wildcard:
        return a.pattern == b.pattern
    if not a.wildcard:
        return a.pattern.startswith(b.prefix)
    if not b.wildcard:
        return b.pattern.startswith(a.prefix)
    return a.prefix.startswith(b.prefix) or b.prefix.startswith(a.prefix)


def _lint_rules(
    source: str,
    rules: list[Rule],
    links: list[tuple[int, str, str]],
    tools: Mapping[str, int] | None,
    tools_source: str,
    known_roles: Collection[str] | None,
) -> list[Finding]:
    findings: list[Finding] = []
    name = Path(source).name

    def add(number: int, severity: str, code: str, message: str) -> None:
        findings.append(Finding(source, number, severity, code, message))

    ancestors = _ancestors(links)
    seen: dict[tuple[str, str, str, int, str, bool], Rule] = {}
    all_denies = [r for r in rules if r.effect == "deny"]
    for rule in rules:
        # A live rule is only beaten by live denies; a shadow rule by any (the shadow set holds both).
        denies = all_denies if rule.shadow else [d for d in all_denies if not d.shadow]
        key = (rule.subject, rule.pattern, rule.effect, rule.quorum, rule.condition, rule.shadow)
        first = seen.setdefault(key, rule)
        if first is not rule:
            add(rule.line, WARNING, "duplicate", f"duplicates {name}:{first.line}; this line never decides")
            continue
        if rule.effect == "deny":
            earlier = next(
                (
                    d
                    for d in denies
                    if d.line < rule.line
                    and d.subject == "*"
                    and d.unconditional
                    and _pattern_covers(d, rule)
                ),
                None,
            )
            if earlier is not None:
                add(
                    rule.line,
                    INFO,
                    "redundant",
                    f"{name}:{earlier.line} ({earlier.pattern!r} for everyone) already denies everything "
                    "this line covers, and is checked first",
                )
            continue
        shadow = next(
            (
                d
                for d in denies
                if d.unconditional
                and _subject_covers(d.subject, rule.subject, ancestors)
                and _pattern_covers(d, rule)
            ),
            None,
        )
        if shadow is not None:
            add(
                rule.line,
                WARNING,
                "shadowed",
                f"this {rule.effect} can never fire: {name}:{shadow.line} (deny {shadow.pattern!r} for "
                f"{shadow.subject}) always denies what it covers, and any deny wins",
            )
            continue
        if rule.effect == "allow":
            for deny in denies:
                if _subjects_meet(deny.subject, rule.subject, ancestors) and _patterns_meet(deny, rule):
                    when = "" if deny.unconditional else f" when {deny.condition}"
                    add(
                        rule.line,
                        WARNING,
                        "overlap",
                        f"allow {rule.pattern!r} ({name}:{rule.line}) overlaps deny {deny.pattern!r} "
                        f"({name}:{deny.line}); where both match, the deny wins{when}",
                    )
    findings += _lint_roles(source, rules, links, ancestors, known_roles)
    if tools is not None:
        tool_rules = [r for r in rules if r.pattern.startswith("tool:") or r.pattern == "*"]
        for tool, line in sorted(tools.items()):
            obj = f"tool:{tool}"
            if not any(obj == r.pattern or (r.wildcard and obj.startswith(r.prefix)) for r in tool_rules):
                findings.append(
                    Finding(
                        tools_source,
                        line,
                        INFO,
                        "unused-tool",
                        f"no rule mentions {obj}: every call to it is denied (not_allowed)",
                    )
                )
    return findings


def _lint_roles(
    source: str,
    rules: list[Rule],
    links: list[tuple[int, str, str]],
    ancestors: Mapping[str, set[str]],
    known_roles: Collection[str] | None,
) -> list[Finding]:
    findings: list[Finding] = []
    subjects = {r.subject for r in rules}
    for number, child, parent in links:
        if child == parent or child in ancestors.get(parent, ()):
            findings.append(
                Finding(
                    source, number, WARNING, "role-cycle", f"{child} and {parent} inherit from each other"
                )
            )
            continue
        granting = {parent, *ancestors.get(parent, ())}
        if not granting & subjects:
            findings.append(
                Finding(
                    source,
                    number,
                    WARNING,
                    "unknown-role",
                    f"role {parent!r} appears in no p line (nor do the roles it inherits): "
                    f"{child} gains nothing from this line",
                )
            )
    if known_roles is None:
        findings += _role_typos(source, rules, links)
    else:
        reachable = set(known_roles)
        for role in known_roles:
            reachable |= ancestors.get(role, set())
        for rule in _first_rule_per_role(rules, reachable):
            s = rule.subject
            findings.append(
                Finding(
                    source,
                    rule.line,
                    WARNING,
                    "unreachable-subject",
                    f"no known role is or inherits {s!r} (known: {', '.join(sorted(known_roles))})",
                )
            )
    return findings


def _first_rule_per_role(rules: Iterable[Rule], known: Collection[str]) -> Iterator[Rule]:
    """The first ``p`` line of each role subject (not ``*``, not ``user:``) outside ``known``."""
    seen: set[str] = set()
    for rule in rules:
        s = rule.subject
        if s == "*" or s.startswith("user:") or s in known or s in seen:
            continue
        seen.add(s)
        yield rule


def _role_typos(source: str, rules: list[Rule], links: list[tuple[int, str, str]]) -> list[Finding]:
    """Without ``--known-role``: a ``p`` subject in no ``g`` line that is spelt almost like a role
    the policy establishes (one in a ``g`` line, or a subject more lines use) is most likely a typo.
    Such a rule never fires: a warning, and an error for a deny (a misspelt deny protects nothing)."""
    uses: dict[str, int] = {}
    for rule in rules:
        uses[rule.subject] = uses.get(rule.subject, 0) + 1
    linked = {role for _, child, parent in links for role in (child, parent)}
    findings: list[Finding] = []
    for rule in _first_rule_per_role(rules, linked):
        s = rule.subject
        established = sorted(r for r in linked | set(uses) if r != s and (r in linked or uses[r] > uses[s]))
        close = difflib.get_close_matches(s, established, n=1, cutoff=0.75)
        if not close:
            continue
        findings.append(
            Finding(
                source,
                rule.line,
                ERROR if rule.effect == "deny" else WARNING,
                "unknown-role",
                f"role {s!r} is in no g line and looks like a typo of {close[0]!r}: no token is likely to "
                f"carry it, so this {rule.effect} never applies (pass --known-role to name the real roles)",
            )
        )
    return findings


# --- the real loader, as a backstop ------------------------------------------------------------


def _load_check(files: PolicyFiles, upstreams: Collection[str] | None) -> list[Finding]:
    from ..gate import load_policy_set  # late: gate imports the policy package

    try:
        load_policy_set(files, upstreams)
    except GatekeeperError as exc:
        findings: list[Finding] = []
        for match in _LOCATION.finditer(exc.message):
            path = next(
                (str(p) for p in (files.model, files.policy, files.tools) if Path(p).name == match["file"]),
                match["file"],
            )
            findings.append(Finding(path, int(match["line"]), ERROR, "load", match["message"].strip()))
        blamed = str(exc.detail.get("file") or files.policy)  # the file the loader names, else the policy
        return findings or [Finding(blamed, 1, ERROR, "load", exc.message)]
    return []


# --- budgets.yaml -------------------------------------------------------------------------------


def _lint_budgets(path: Path) -> list[Finding]:
    """What ``load_budget_rules`` rejects, at the line of the rule and key it names."""
    source = str(path)
    try:
        load_budget_rules(path)
    except ConfigError as exc:
        line = int(exc.detail.get("line") or 0)
        if not line:
            try:
                root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                root = None
            line = _budget_line(root, str(exc.detail.get("key") or ""))
        message = exc.message.removeprefix(f"{source}: ").removeprefix(f"{source}:{line}: ")
        return [Finding(source, line, ERROR, "budget", message)]
    return []


_BUDGET_KEY = re.compile(
    r"budgets(?:\[(\d+)\]|\.([A-Za-z0-9][A-Za-z0-9_.-]*?))"
    r"(?:\.(id|subject|match|metric|limit|window|per|on_exceed|note))?"
)


def _budget_line(root: Any, key: str) -> int:
    """The line of ``budgets.<id>.<key>`` or ``budgets[<n>].<key>`` in a composed budgets file."""
    if not isinstance(root, yaml.MappingNode):
        return 1
    budgets = next((v for k, v in root.value if k.value == "budgets"), None)
    if budgets is None:
        return 1
    line = int(budgets.start_mark.line) + 1
    match = _BUDGET_KEY.fullmatch(key)
    if match is None or not isinstance(budgets, yaml.SequenceNode):
        return line
    position, rule_id, field_name = match.groups()
    items = [i for i in budgets.value if isinstance(i, yaml.MappingNode)]
    item: yaml.MappingNode | None = None
    if position is not None and int(position) < len(budgets.value):
        found = budgets.value[int(position)]
        item = found if isinstance(found, yaml.MappingNode) else None
    elif rule_id is not None:  # the last rule with that id: a duplicate id is reported on the second
        item = next(
            (i for i in reversed(items) if any(k.value == "id" and v.value == rule_id for k, v in i.value)),
            None,
        )
    if item is None:
        return line
    line = int(item.start_mark.line) + 1
    for key_node, _ in item.value:
        if key_node.value == field_name:
            return int(key_node.start_mark.line) + 1
    return line
