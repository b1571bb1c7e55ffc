"""``lint``: every kind of finding, each at its file:line; the default pack is clean."""

from __future__ import annotations

import re
from pathlib import Path

from gatekeeper.policy.lint import CAPABILITY_FAMILIES, Finding, has_errors, lint, policy_files_in

from . import PACK, copy_pack

BROKEN_POLICY = """\
# line 1: a deliberately broken policy
p, *, net.tunnel*, deny, True, tunnels
p, agent, net.tunnel.reverse, allow, True, shadowed by line 2
p, agent, tool:file.read, allow, True, reading
p, agent, tool:file.read, allow, True, reading again
p, agent, tool:nosuch.tool, allow, True, no such tool
p, *, net.tunel*, deny, True, misspelt deny
p, agent, gpu.compute:*, allow, True, unknown family
p, agent, compute.gpu:*, allow, r.ctx.gpus >, does not parse
p, agent, compute.gpu:*, allow, r.ctx.cores > 1, no such attribute
p, *, fs.write:/etc/*, deny, True, system files
p, agent, fs.write:*, allow, True, overlaps line 12
p, agent, shell.opaque, escalate, True, fine
p, *, shell.opaque, deny, True, covers line 14
p, agent, proc.shell, escalate, True, shadowed escalate
p, *, proc.shell, deny, True, covers line 16
p, agent, fs.read:/workspace/*.py, allow, True, suffix ignored
p, agent*, fs.read:/workspace/*, allow, True, bad subject
q, agent, x
p, agent, proc.exec:ls, allow, True, a note, with a comma
p, agent, proc.exec:ls, maybe, True, bad effect
g, intern, ghost
g, researcher, agent
"""

BROKEN_TOOLS = """\
tools:
  file.read:
    upstream: demo
    arguments:
      type: object
      properties:
        path: {type: string}
      required: [path]
      additionalProperties: false
    inspect:
      path: fs.reader
  file.write:
    upstream: demo
    arguments:
      type: object
      properties:
        path: {type: string}
      additionalProperties: true
"""


def _at(findings: list[Finding], name: str, line: int, code: str) -> Finding:
    hits = [f for f in findings if Path(f.path).name == name and f.line == line and f.code == code]
    assert hits, f"no {code} at {name}:{line}; got:\n" + "\n".join(map(str, findings))
    return hits[0]


def _broken(tmp_path: Path) -> list[Finding]:
    copy_pack(tmp_path)
    (tmp_path / "policy.csv").write_text(BROKEN_POLICY)
    (tmp_path / "tools.yaml").write_text(BROKEN_TOOLS)
    model = (tmp_path / "model.conf").read_text().replace("keyMatch(r.obj, p.obj)", "keyMatch2(r.obj, p.obj)")
    (tmp_path / "model.conf").write_text(model)
    return lint(policy_files_in(tmp_path))


def test_default_pack_lints_clean() -> None:
    findings = lint(policy_files_in(PACK))
    assert not has_errors(findings), "\n".join(map(str, findings))
    assert [f for f in findings if f.severity == "warning"] == []


def test_every_finding_kind_points_at_its_line(tmp_path: Path) -> None:
    findings = _broken(tmp_path)
    assert has_errors(findings)
    csv = "policy.csv"
    assert _at(findings, csv, 3, "shadowed").severity == "warning"
    assert "policy.csv:2" in _at(findings, csv, 3, "shadowed").message
    assert "policy.csv:4" in _at(findings, csv, 5, "duplicate").message
    assert _at(findings, csv, 6, "unknown-tool").severity == "warning"
    assert _at(findings, csv, 7, "unknown-capability").severity == "error"  # a deny that protects nothing
    assert _at(findings, csv, 8, "unknown-capability").severity == "warning"
    assert _at(findings, csv, 9, "condition").severity == "error"
    assert "r.ctx.cores" in _at(findings, csv, 10, "condition").message
    overlap = _at(findings, csv, 12, "overlap")
    assert "policy.csv:12" in overlap.message and "policy.csv:11" in overlap.message
    assert "policy.csv:14" in _at(findings, csv, 13, "shadowed").message  # escalate under a deny
    assert "policy.csv:16" in _at(findings, csv, 15, "shadowed").message
    _at(findings, csv, 17, "pattern")
    _at(findings, csv, 18, "unreachable-subject")
    assert _at(findings, csv, 19, "syntax").severity == "error"
    assert "comma" in _at(findings, csv, 20, "syntax").message
    _at(findings, csv, 21, "syntax")
    assert "ghost" in _at(findings, csv, 22, "unknown-role").message
    assert not [f for f in findings if f.line == 23 and Path(f.path).name == csv]
    assert _at(findings, "tools.yaml", 11, "unknown-inspector").severity == "error"
    _at(findings, "tools.yaml", 18, "manifest")
    model_lines = (tmp_path / "model.conf").read_text().splitlines()
    matcher = next(n for n, text in enumerate(model_lines, start=1) if text.startswith("m = "))
    assert _at(findings, "model.conf", matcher, "model-ignored").severity == "warning"


def test_finding_text_is_file_line_severity_code(tmp_path: Path) -> None:
    findings = _broken(tmp_path)
    for finding in findings:
        assert re.match(r"^.+:\d+: (error|warning|info) [a-z-]+: .+", str(finding)), str(finding)


def test_unparseable_model_is_an_error(tmp_path: Path) -> None:
    copy_pack(tmp_path)
    (tmp_path / "model.conf").write_text("[request_definition]\nr = sub, obj\n")
    findings = lint(policy_files_in(tmp_path))
    assert has_errors(findings)
    assert all(Path(f.path).name == "model.conf" for f in findings if f.severity == "error")


def test_missing_files_are_errors(tmp_path: Path) -> None:
    findings = lint(policy_files_in(tmp_path))
    assert {Path(f.path).name for f in findings if f.severity == "error"} == {
        "model.conf",
        "policy.csv",
        "tools.yaml",
    }


def test_known_roles_report_unreachable_subjects(tmp_path: Path) -> None:
    copy_pack(tmp_path)
    with (tmp_path / "policy.csv").open("a") as f:
        f.write("p, auditor, fs.read:/var/log/*, allow, True, logs\n")
    line = len((tmp_path / "policy.csv").read_text().splitlines())
    findings = lint(policy_files_in(tmp_path), known_roles=["researcher"])
    hit = _at(findings, "policy.csv", line, "unreachable-subject")
    assert "auditor" in hit.message
    assert not [f for f in findings if f.code == "unreachable-subject" and "'agent'" in f.message]


def test_unused_tool_is_a_note(tmp_path: Path) -> None:
    copy_pack(tmp_path)
    text = (tmp_path / "policy.csv").read_text().replace("p, agent, tool:http.fetch,", "# gone:")
    (tmp_path / "policy.csv").write_text(text)
    findings = lint(policy_files_in(tmp_path))
    hit = [f for f in findings if f.code == "unused-tool"]
    assert len(hit) == 1 and "tool:http.fetch" in hit[0].message and hit[0].severity == "info"
    assert Path(hit[0].path).name == "tools.yaml"


def test_capability_list_covers_what_inspectors_emit() -> None:
    """The known families must include every literal capability name in the inspectors' code."""
    source = "\n".join(p.read_text() for p in (PACK.parent / "gatekeeper" / "inspectors").glob("*.py"))
    emitted = set(re.findall(r"(?:add|Capability|append)\(f?\"([a-z_]+\.[a-z_.]+)[:\"]", source))
    emitted |= set(re.findall(r"\(\"([a-z_]+\.[a-z_.]+)\",\)", source))
    assert emitted, "the pattern no longer finds the inspectors' capability names"
    assert emitted <= set(CAPABILITY_FAMILIES), emitted - set(CAPABILITY_FAMILIES)


def test_shadow_rules_do_not_shadow_live_ones(tmp_path: Path) -> None:
    copy_pack(tmp_path)
    with (tmp_path / "policy.csv").open("a") as f:
        f.write("p, *, proc.exec:ls, deny!shadow, True, trying out a ban\n")
        f.write("p, agent, proc.exec:ls, allow!shadow, True, shadowed within the shadow set\n")
    total = len((tmp_path / "policy.csv").read_text().splitlines())
    findings = lint(policy_files_in(tmp_path))
    assert not has_errors(findings), "\n".join(map(str, findings))
    shadowed = [f for f in findings if f.code == "shadowed"]
    assert [f.line for f in shadowed] == [total]
