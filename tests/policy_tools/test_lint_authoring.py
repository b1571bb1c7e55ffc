"""Lint findings policy authors tripped over: a role typo with no ``--known-role``, budget errors
blamed on their own line, manifests no inspector reads."""

from __future__ import annotations

import shutil
from pathlib import Path

from gatekeeper.policy.lint import Finding, lint, policy_files_in

from . import PACK, copy_pack, edit_policy


def _codes(findings: list[Finding], code: str) -> list[Finding]:
    return [f for f in findings if f.code == code]


def test_a_misspelt_role_is_reported_without_known_roles(tmp_path: Path) -> None:
    pack = copy_pack(tmp_path)
    edit_policy(
        pack, append=("p, agnet, proc.exec:make, allow, True, a typo", "p, reviewr, net.scan, deny, True, x")
    )
    lines = (pack / "policy.csv").read_text().splitlines()
    findings = lint(policy_files_in(pack))
    typos = {Path(f.path).name + f":{f.line}": f for f in _codes(findings, "unknown-role")}
    allow_at = f"policy.csv:{len(lines) - 1}"
    assert allow_at in typos, "\n".join(map(str, findings))
    assert "'agent'" in typos[allow_at].message and typos[allow_at].severity == "warning"
    # "reviewr" is close to no established role: it is a role of its own, not reported
    assert f"policy.csv:{len(lines)}" not in typos


def test_a_misspelt_role_in_a_deny_is_an_error(tmp_path: Path) -> None:
    pack = copy_pack(tmp_path)
    edit_policy(pack, append=("p, reseacher, net.egress:*, deny, True, researchers stay offline",))
    findings = _codes(lint(policy_files_in(pack)), "unknown-role")
    assert [(f.severity, "'researcher'" in f.message) for f in findings] == [("error", True)]


def test_roles_from_g_lines_are_not_typos(tmp_path: Path) -> None:
    pack = copy_pack(tmp_path)
    edit_policy(pack, append=("p, agents, proc.exec:make, allow, True, x", "g, agents, agent"))
    assert _codes(lint(policy_files_in(pack)), "unknown-role") == []


def test_budget_errors_are_blamed_on_budgets_yaml_at_their_line(tmp_path: Path) -> None:
    pack = copy_pack(tmp_path)
    shutil.copyfile(PACK / "budgets.yaml", pack / "budgets.yaml")
    lines = (pack / "budgets.yaml").read_text().splitlines()
    at = next(n for n, line in enumerate(lines, 1) if line.strip() == "limit: 200")
    lines[at - 1] = "    limit: lots"
    (pack / "budgets.yaml").write_text("\n".join(lines) + "\n")
    findings = lint(policy_files_in(pack))
    bad = [f for f in findings if f.severity == "error"]
    assert [(Path(f.path).name, f.line, f.code) for f in bad] == [("budgets.yaml", at, "budget")], bad
    assert "limit" in bad[0].message


def test_a_duplicate_budget_id_points_at_the_second(tmp_path: Path) -> None:
    pack = copy_pack(tmp_path)
    text = (PACK / "budgets.yaml").read_text()
    text = text.replace("id: agent-gpu-hours-per-role-daily", "id: agent-gpu-hours-per-principal-daily")
    (pack / "budgets.yaml").write_text(text)
    at = [n for n, line in enumerate(text.splitlines(), 1) if "agent-gpu-hours-per-principal-daily" in line]
    findings = [f for f in lint(policy_files_in(pack)) if f.severity == "error"]
    assert [(Path(f.path).name, f.line) for f in findings] == [("budgets.yaml", at[1])], findings


def test_a_manifest_no_inspector_reads_is_flagged(tmp_path: Path) -> None:
    pack = copy_pack(tmp_path)
    tools = pack / "tools.yaml"
    text = tools.read_text().replace("    inspect:\n      path: fs.read\n", "", 1)
    tools.write_text(text)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if row == "  file.read:")
    flagged = _codes(lint(policy_files_in(pack)), "no-inspector")
    assert [(Path(f.path).name, f.line, f.severity) for f in flagged] == [("tools.yaml", line, "warning")]
    assert "file.read" in flagged[0].message


def test_the_unlisted_effect_is_documented() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "policies.md").read_text()
    assert "`unlisted`" in docs and "not on the allow-list" in docs
