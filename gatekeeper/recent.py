"""The most recent decisions, in memory, for the console's "Recent decisions" view.

A bounded ring buffer: the decision recorder calls :meth:`RecentDecisions.add` with the
same dict the decision log line carries (``decision_id``, ``entry``, ``principal``,
``roles``, ``tool``, ``capabilities``, ``outcome``, ``code``, ``rule``, ``reason``,
``latency_ms``, ``approval_id``, ``time``). The buffer is per process and forgets on
restart; the audit trail, not this, is the record.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from typing import Any

__all__ = ["RecentDecisions"]

_KEEP = (
    "decision_id",
    "entry",
    "principal",
    "roles",
    "tool",
    "capabilities",
    "outcome",
    "code",
    "rule",
    "reason",
    "latency_ms",
    "approval_id",
    "time",
)


_PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})
_MISSING = object()


def _plain(value: Any) -> Any:
    """JSON-friendly copy: tuples, sets and enums become lists and strings."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value if not isinstance(value, str) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return str(value)


class RecentDecisions:
    """Keeps the last ``maxlen`` decisions; :meth:`query` returns them newest first."""

    def __init__(self, maxlen: int = 5000) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        self.maxlen = maxlen
        self._items: deque[Mapping[str, Any]] = deque(maxlen=maxlen)
        self._lock = threading.Lock()  # add() may be called from a logging thread

    def __len__(self) -> int:
        return len(self._items)

    def add(self, record: Mapping[str, Any]) -> None:
        """Remember one decision. The decision recorder hands over a fresh dict it never changes
        again, so it is kept as is (no copy per call); ``query`` picks the known keys out."""
        if type(record.get("time")) is not float:  # stamped when added, as a number
            record = {**record, "time": _epoch(record.get("time"))}
        with self._lock:
            self._items.append(record)

    def query(
        self,
        *,
        outcome: str | None = None,
        principal: str | None = None,
        tool: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Newest first. ``outcome``, ``principal`` and ``tool`` match exactly; a trailing ``*``
        in ``tool`` or ``principal`` matches a prefix (``shell.*``). ``since``/``until`` are
        Unix times (``time`` of the record)."""
        with self._lock:
            items = list(self._items)
        found: list[dict[str, Any]] = []
        for item in reversed(items):
            if len(found) >= limit:
                break
            if outcome and item.get("outcome") != outcome:
                continue
            if principal and not _matches(item.get("principal"), principal):
                continue
            if tool and not _matches(item.get("tool"), tool):
                continue
            when = item["time"]
            if since is not None and when < since:
                continue
            if until is not None and when > until:
                continue
            found.append(_view(item, when))
        return found


def _view(record: Mapping[str, Any], when: float) -> dict[str, Any]:
    """The known keys of one record, as plain JSON values (tuples and sets become lists)."""
    item = {
        key: value if type(value) in _PLAIN_TYPES else _plain(value)
        for key in _KEEP
        if key in record and (value := record[key]) is not _MISSING
    }
    item["time"] = when
    return item


def _epoch(value: Any) -> float:
    """``time`` as Unix seconds: a number as is, an ISO 8601 string parsed, missing means now."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return time.time()


def _matches(value: Any, pattern: str) -> bool:
    if not isinstance(value, str):
        return False
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern
