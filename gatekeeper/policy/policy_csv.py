"""Reading ``policy.csv``: one parse, each line with its number, shared by the engine and ``lint``.

Lines are split the way casbin splits them (commas inside ``()`` or ``[]`` stay in the field),
so what lint checks is what the engine loads. What to make of a line the reader cannot read is
the caller's business: the engine refuses the policy, lint reports a finding.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from casbin.persist.adapter import _extract_tokens

# "unlisted" is a fallback, not a grant: it escalates an object that no allow rule covers (for
# example egress to a host not on the allow-list) instead of the default deny.
EFFECTS = ("allow", "deny", "escalate", "unlisted")
SHADOW_SUFFIX = "!shadow"
MAX_QUORUM = 10
# casbin's tokenizer treats commas inside ()/[] as part of a token; lines without them split plainly.
_NESTING = re.compile(r"[\[\]()]")


@dataclass(frozen=True, slots=True)
class PolicyLine:
    """A line that is neither blank nor a comment: its key (``p``, ``g`` ...) and fields.

    ``fields`` is None when casbin's tokenizer cannot read the line (unbalanced brackets).
    """

    number: int
    key: str
    fields: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``p`` line: ``p, SUBJECT, OBJECT, EFFECT[:N][!shadow], CONDITION, NOTE``."""

    line: int
    subject: str
    pattern: str
    effect: str  # allow, deny, escalate or unlisted, without ":N" or "!shadow"
    quorum: int
    condition: str
    note: str
    shadow: bool = False  # effect written as EFFECT!shadow: only in the shadow (candidate) set

    @property
    def prefix(self) -> str:
        """What keyMatch compares: the whole pattern, or everything before its first ``*``."""
        star = self.pattern.find("*")
        return self.pattern if star == -1 else self.pattern[:star]

    @property
    def wildcard(self) -> bool:
        return "*" in self.pattern

    @property
    def unconditional(self) -> bool:
        return self.condition == "True"

    def casbin_fields(self) -> list[str]:
        """The rule as casbin stores it: the effect without its quorum or shadow mark."""
        return [self.subject, self.pattern, self.effect, self.condition, self.note]


class RuleProblem(enum.Enum):
    """Why a ``p`` line is not a rule; each reader words it for its own audience."""

    FIELD_COUNT = "field_count"
    EFFECT = "effect"
    QUORUM = "quorum"


def _tokens(line: str) -> list[str] | None:
    """casbin's ``load_policy_line`` tokens (key first); a plain split when nothing nests."""
    if _NESTING.search(line) is None:
        return [token.strip() for token in line.split(",")]
    try:
        tokens: list[str] | None = _extract_tokens(line)
    except IndexError:  # an unbalanced ")" or "]": casbin's tokenizer cannot read it
        return None
    return tokens


def parse_lines(text: str) -> Iterator[PolicyLine]:
    """Every line of ``text`` that is neither blank nor a comment, numbered from 1."""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tokens = _tokens(line)
        if tokens is None:
            yield PolicyLine(number, "", None)
        else:
            yield PolicyLine(number, tokens[0], tuple(tokens[1:]))


def read_lines(path: Path) -> list[PolicyLine]:
    """The lines of the policy file at ``path`` (``OSError`` when it cannot be read)."""
    return list(parse_lines(path.read_text(encoding="utf-8")))


def is_shadow(line: PolicyLine) -> bool:
    """A ``p`` line whose effect ends in ``!shadow``: only in the shadow (candidate) set."""
    fields = line.fields
    return fields is not None and len(fields) > 2 and fields[2].endswith(SHADOW_SUFFIX)


def parse_rule(line: PolicyLine) -> Rule | RuleProblem:
    """The rule a ``p`` line states, or what is wrong with it."""
    fields = line.fields
    if fields is None or len(fields) != 5:
        return RuleProblem.FIELD_COUNT
    subject, pattern, effect_text, condition, note = fields
    shadow = effect_text.endswith(SHADOW_SUFFIX)
    effect, _, quorum_text = effect_text.removesuffix(SHADOW_SUFFIX).partition(":")
    if effect not in EFFECTS or (quorum_text and (effect != "escalate" or not quorum_text.isdigit())):
        return RuleProblem.EFFECT
    quorum = int(quorum_text) if quorum_text else 1
    if not 1 <= quorum <= MAX_QUORUM:
        return RuleProblem.QUORUM
    return Rule(line.number, subject, pattern, effect, quorum, condition, note, shadow)
