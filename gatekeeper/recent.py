"""The most recent decisions, in memory, for the console's "Recent decisions" view.

A bounded ring buffer: the decision recorder calls :meth:`RecentDecisions.add` with the
same dict the decision log line carries (``decision_id``, ``entry``, ``principal``,
``roles``, ``tool``, ``capabilities``, ``outcome``, ``code``, ``rule``, ``reason``,
``latency_ms``, ``approval_id``, ``time``), and for a connection through the egress gate
what its ``extra`` says about it (``parent_decision_id``: the call that opened it, ``target``,
``bytes_up``, ``bytes_down``), so the console can show connections under their call. The buffer
is per process and forgets on restart; the audit trail, not this, is the record.
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
# Kept from ``extra``: an egress connection's link to its call, and what it moved.
_EXTRA = ("parent_decision_id", "target", "bytes_up", "bytes_down")


_TIME, _OUTCOME, _PRINCIPAL, _TOOL = (_KEEP.index(k) for k in ("time", "outcome", "principal", "tool"))
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
        self._items: deque[tuple[Any, ...]] = deque(maxlen=maxlen)
        self._lock = threading.Lock()  # add() may be called from a logging thread

    def __len__(self) -> int:
        return len(self._items)

    def add(self, record: Mapping[str, Any]) -> None:
        """Remember one decision: the values of the known keys only, as a tuple (cheap to take,
        and never the call's arguments, which can be large); ``query`` turns them into dicts."""
        values = tuple(record.get(key, _MISSING) for key in _KEEP)
        extra = record.get("extra")
        if isinstance(extra, Mapping) and extra.get("parent_decision_id") is not None:
            values += tuple(extra.get(key, _MISSING) for key in _EXTRA)
        when = values[_TIME]
        if type(when) is not float:  # stamped when added, as a number
            values = (*values[:_TIME], _epoch(None if when is _MISSING else when), *values[_TIME + 1 :])
        with self._lock:
            self._items.append(values)

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
            if outcome and item[_OUTCOME] != outcome:
                continue
            if principal and not _matches(item[_PRINCIPAL], principal):
                continue
            if tool and not _matches(item[_TOOL], tool):
                continue
            when = item[_TIME]
            if since is not None and when < since:
                continue
            if until is not None and when > until:
                continue
            found.append(_view(item, when))
        return found


def _view(values: tuple[Any, ...], when: float) -> dict[str, Any]:
    """One remembered decision as a dict of plain JSON values (tuples and sets become lists)."""
    item = {
        key: value if type(value) in _PLAIN_TYPES else _plain(value)
        for key, value in zip(_KEEP + _EXTRA, values, strict=False)
        if value is not _MISSING
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
