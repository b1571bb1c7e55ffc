"""JSON-lines export of the audit trail (for a SIEM, for ``policy replay``), and its reader.

One record per line: ``AuditRecord.to_json()`` — every hashed field plus ``hash`` — so an
exported file can itself be verified (``gatekeeper audit verify --file F``). A time range is
exported as a contiguous run of seqs per chain (from the first record at or after ``since`` to
the last before ``until``), in chain order, so the file has no holes a verifier would flag.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from .record import AuditRecord, AuditSink, RawRow, canonical_json

_BODY_KEYS = frozenset(AuditRecord.__dataclass_fields__) - {"hash"}
_BODY_KEYS_NO_CHAIN = _BODY_KEYS - {"chain_id"}


def line_from_row(row: RawRow) -> str:
    """The export line for a stored row, without parsing it: the canonical body plus ``hash``."""
    body = row[4]
    return f'{body[:-1]},"hash":"{row[3]}"}}\n'


async def export_jsonl(
    sink: AuditSink,
    out: Path,
    *,
    since: float | None = None,
    until: float | None = None,
    chain_id: str | None = None,
) -> int:
    """Write the records in [since, until) to ``out`` (atomically: a temporary file, then
    rename). Returns how many were written."""
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    count = 0
    try:
        with tmp.open("w", encoding="utf-8", newline="\n") as fh:
            async for chunk in sink.raw_chunks(chain_id=chain_id, since=since, until=until):
                fh.writelines(line_from_row(row) for row in chunk)
                count += len(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return count


class JsonlReader:
    """``AuditReader`` over an exported JSON-lines file (records in file order)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.location = str(self.path)

    def _lines(self) -> AsyncIterator[tuple[int, dict[str, Any]]]:
        async def gen() -> AsyncIterator[tuple[int, dict[str, Any]]]:
            with self.path.open(encoding="utf-8") as fh:
                for number, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        data = json.loads(line)
                    except ValueError as exc:
                        raise ValueError(f"{self.path}:{number}: not a JSON record ({exc})") from None
                    if not isinstance(data, dict):
                        raise ValueError(f"{self.path}:{number}: not a JSON object")
                    yield number, data

        return gen()

    async def records(
        self,
        *,
        chain_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        after_seq: int = 0,
    ) -> AsyncIterator[AuditRecord]:
        async for _number, data in self._lines():
            record = AuditRecord.from_json(data)
            if _wanted(record.chain_id, record.seq, record.time, chain_id, since, until, after_seq):
                yield record

    async def raw_chunks(
        self,
        *,
        chain_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        after_seq: int = 0,
    ) -> AsyncIterator[list[RawRow]]:
        chunk: list[RawRow] = []
        async for number, data in self._lines():
            try:
                digest = str(data.pop("hash"))
                keys = data.keys()
                if keys == _BODY_KEYS or keys == _BODY_KEYS_NO_CHAIN:
                    body = canonical_json(data)
                    chain, seq, prev, at = (
                        data.get("chain_id"),
                        int(data["seq"]),
                        str(data["prev_hash"]),
                        data["time"],
                    )
                else:
                    record = AuditRecord.from_json(data)
                    body = record.canonical()
                    chain, seq, prev, at = record.chain_id, record.seq, record.prev_hash, record.time
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{self.path}:{number}: not an audit record ({exc})") from None
            if not _wanted(chain, seq, at, chain_id, since, until, after_seq):
                continue
            chunk.append((str(chain or ""), seq, prev, digest, body))
            if len(chunk) >= 2000:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def _wanted(
    chain: str | None,
    seq: int,
    at: Any,
    chain_id: str | None,
    since: float | None,
    until: float | None,
    after_seq: int,
) -> bool:
    if chain_id is not None and (chain or "") != chain_id:
        return False
    if seq <= after_seq:
        return False
    if since is not None and float(at) < since:
        return False
    return not (until is not None and float(at) >= until)
