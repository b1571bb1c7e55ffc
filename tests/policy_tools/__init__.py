"""The policy author's tools: lint, test, explain, replay and their CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

PACK = Path(__file__).resolve().parents[2] / "policies"


def copy_pack(dest: Path) -> Path:
    """A private copy of the default pack (model, policy, manifests, tests) to edit in a test."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("model.conf", "policy.csv", "tools.yaml"):
        shutil.copyfile(PACK / name, dest / name)
    shutil.copytree(PACK / "tests", dest / "tests")
    return dest


def edit_policy(
    directory: Path,
    *,
    drop: tuple[str, ...] = (),
    replace: dict[str, str] | None = None,
    append: tuple[str, ...] = (),
) -> None:
    """Drop lines containing any of ``drop``, replace exact lines, append lines."""
    path = directory / "policy.csv"
    lines = []
    for line in path.read_text().splitlines():
        if any(d in line for d in drop):
            continue
        lines.append((replace or {}).get(line, line))
    path.write_text("\n".join([*lines, *append]) + "\n")


def line_of(fragment: str) -> str:
    """Where a rule of the default pack is, so these tests survive edits above it."""
    for number, line in enumerate((PACK / "policy.csv").read_text().splitlines(), start=1):
        if fragment in line:
            return f"policy.csv:{number}"
    raise AssertionError(f"no rule with {fragment!r}")
