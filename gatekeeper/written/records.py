"""Records of code written into the workspace, and the one interface both stores implement.

A ``file.write`` of code (``inspectors/written_code``) leaves one record per (principal, path):
what the file would do when run, and the write's decision id. A later write of the same path by
the same principal replaces it; a write of the path that is not code removes it. A call that
runs the file inherits the record of its own principal (``server/written_code``).

The stores live beside the approval queue (``approvals.store``): one SQLite file in the data
folder, or a table in the PostgreSQL schema every replica shares, so a file written through
one replica is known to all of them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError
from ..models import Capability


@dataclass(frozen=True, slots=True)
class WrittenRecord:
    issuer: str
    subject: str
    path: str
    kind: str
    sha256: str  # of the content written
    capabilities: tuple[Capability, ...]
    imports: tuple[str, ...]
    decision_id: str  # the write's, as in the audit trail
    written_at: float

    def row(self) -> tuple[Any, ...]:
        caps = json.dumps(
            [[c.name, c.evidence, [list(a) for a in c.amounts]] for c in self.capabilities],
            separators=(",", ":"),
        )
        imports = json.dumps(list(self.imports), separators=(",", ":"))
        return (self.issuer, self.subject, self.path, self.kind, self.sha256, caps, imports,
                self.decision_id, self.written_at)  # fmt: skip


COLUMNS = "issuer, subject, path, kind, sha256, capabilities, imports, decision_id, written_at"


def record_from_row(row: Sequence[Any]) -> WrittenRecord:
    caps = tuple(  # amounts (GPUs, GPU-hours) travel with the capability: conditions and budgets read them
        Capability(str(c[0]), str(c[1]), tuple((str(k), float(v)) for k, v in (c[2] if len(c) > 2 else [])))
        for c in json.loads(row[5])
    )
    return WrittenRecord(
        str(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]), caps,
        tuple(str(i) for i in json.loads(row[6])), str(row[7]), float(row[8]),
    )  # fmt: skip


Trees = Collection[tuple[str, Collection[str]]]  # (directory prefix ending in "/", kinds it matches)


def tree_pairs(trees: Trees) -> list[tuple[str, str]]:
    """One (prefix, kind) pair per kind of each tree, sorted: what the stores' queries take."""
    return sorted({(prefix, kind) for prefix, kinds in trees for kind in kinds})


class WrittenCodeStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def put(self, record: WrittenRecord) -> None:
        """Insert or replace the record of (issuer, subject, path)."""
        ...

    async def merge(self, record: WrittenRecord) -> None:
        """Add to the record of (issuer, subject, path) atomically: capabilities and imports are
        the union of both, the decision ids both (newest first). A write that may not have
        happened (a shell command's branch) can add to what a file does, never take away."""
        ...

    async def forget(self, issuer: str, subject: str, path: str) -> None:
        """Remove the record of (issuer, subject, path), if any."""
        ...

    async def find(
        self, issuer: str, subject: str, paths: Collection[str], trees: Trees
    ) -> list[WrittenRecord]:
        """This principal's records of exactly ``paths``, and of the files under each of ``trees``
        (a directory prefix ending in ``/``, and the kinds of record it matches: ``python`` for a
        pytest tree, ``go``, ``rust``... for a build), at most ``LIMIT + 1`` of them, in path order."""
        ...


LIMIT = 256  # records inherited by one call at most; past it, the call is doubt
MAX_DECISIONS = 8  # decision ids a merged record keeps


def merged(old: WrittenRecord | None, new: WrittenRecord) -> WrittenRecord:
    """``new`` added to ``old`` (see ``WrittenCodeStore.merge``)."""
    if old is None:
        return new
    caps = {c.name: c for c in old.capabilities}
    for c in new.capabilities:
        caps.setdefault(c.name, c)
    ids = [new.decision_id, *(i for i in old.decision_id.split(",") if i != new.decision_id)]
    return WrittenRecord(
        new.issuer,
        new.subject,
        new.path,
        new.kind if new.kind == old.kind else "mixed",
        hashlib.sha256(f"{old.sha256}+{new.sha256}".encode()).hexdigest(),
        tuple(sorted(caps.values())),
        tuple(sorted({*old.imports, *new.imports})),
        ",".join(ids[:MAX_DECISIONS]),
        new.written_at,
    )


def open_written_store(store: str, data_dir: Path, *, schema: str = "gatekeeper") -> WrittenCodeStore:
    """The store for the configured ``approvals.store``, not yet open."""
    value = (store or "").strip()
    if value.startswith(("postgresql://", "postgres://")):
        from .store_postgres import PostgresWrittenCodeStore

        return PostgresWrittenCodeStore(value, schema=schema)
    if value in ("", "sqlite") or (value.endswith((".sqlite3", ".db")) and "://" not in value):
        from .store_sqlite import SqliteWrittenCodeStore

        return SqliteWrittenCodeStore(Path(data_dir) / "written_code.sqlite3")
    raise ConfigError("approvals.store: not understood by the written-code store", key="approvals.store")
