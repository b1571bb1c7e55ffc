"""Times in answers: ISO 8601 in UTC with milliseconds (``2026-12-07T14:17:26.123Z``).

Stores keep epoch seconds (cheap to compare and index); every HTTP answer, webhook and event
speaks ISO 8601, which a reader can take in at a glance and every language parses.
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso8601(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso8601_or_none(epoch: float | None) -> str | None:
    return None if epoch is None else iso8601(epoch)


def parse_iso8601(text: str) -> float:
    """Epoch seconds of an ISO 8601 time; raises ValueError on anything else (a naive time too)."""
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return when.timestamp()
