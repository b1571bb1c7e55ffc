"""What the two SQL audit sinks (``sink_sqlite``, ``sink_postgres``) share, so they cannot drift
apart: the batch checks, turning a time window into a contiguous run of seqs, paging through it,
and rebuilding records from stored rows."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence

from .record import AuditRecord, RawRow

CHUNK = 5000
_NO_SEQ = 2**62  # beyond any stored seq


def record_from_row(row: RawRow) -> AuditRecord:
    """Rebuild an ``AuditRecord`` from a stored row (body text plus the hash column)."""
    data = json.loads(row[4])
    data["hash"] = row[3]
    return AuditRecord.from_json(data)


def batch_texts(records: Sequence[AuditRecord], bodies: Sequence[str] | None) -> tuple[str, list[str]]:
    """The chain of a (non-empty) batch and the canonical texts to store; refuses a mixed batch."""
    chain = records[0].chain_id
    if chain is None or any(r.chain_id != chain for r in records):
        raise ValueError("a batch must be of one chain, with chain_id set")
    return chain, list(bodies) if bodies is not None else [r.canonical() for r in records]


class SqlSink(ABC):
    """``raw_chunks`` and ``records`` over a table keyed by (chain_id, seq); a sink supplies
    the three queries."""

    @abstractmethod
    async def chains(self) -> list[str]: ...

    @abstractmethod
    async def _time_bounds(
        self, chain: str, since: float | None, until: float | None
    ) -> tuple[int | None, int | None]:
        """(the first seq at or after ``since``, the last seq before ``until``), each None when
        there is none or when its bound is None; read in one go."""

    @abstractmethod
    async def _page(self, chain: str, low: int, high: int, chunk: int) -> list[RawRow]:
        """Up to ``chunk`` rows of ``chain`` with ``low < seq <= high``, in seq order."""

    async def _bounds(
        self, chain: str, since: float | None, until: float | None, after_seq: int
    ) -> tuple[int, int | None]:
        """The contiguous seq range (exclusive low, inclusive high) for a time window: from the
        first record at or after ``since`` to the last one before ``until``."""
        first, last = await self._time_bounds(chain, since, until)
        low, high = after_seq, None
        if since is not None:
            low = max(low, first - 1) if first is not None else _NO_SEQ
        if until is not None:
            high = last if last is not None else 0
        return low, high

    async def raw_chunks(
        self,
        *,
        chain_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        after_seq: int = 0,
        chunk: int = CHUNK,
    ) -> AsyncIterator[list[RawRow]]:
        chains = [chain_id] if chain_id is not None else await self.chains()
        for chain in chains:
            low, high = await self._bounds(chain, since, until, after_seq)
            limit = high if high is not None else _NO_SEQ
            while low < limit:
                batch = await self._page(chain, low, limit, chunk)
                if not batch:
                    break
                yield batch
                low = batch[-1][1]
                if len(batch) < chunk:
                    break

    async def records(
        self,
        *,
        chain_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        after_seq: int = 0,
    ) -> AsyncIterator[AuditRecord]:
        async for batch in self.raw_chunks(chain_id=chain_id, since=since, until=until, after_seq=after_seq):
            for row in batch:
                yield record_from_row(row)
