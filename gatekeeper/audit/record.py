"""The audit record: one per decision, with a versioned schema (like OPA's decision-log EventV1).

Records are chained: ``hash = sha256(prev_hash + canonical JSON of every other field)``, so
changing, deleting, inserting or reordering any record breaks the chain from that point on.
The JSON form (``to_json``/``from_json``) is also the export format (JSON lines) that SIEMs and
``gatekeeper policy replay`` read.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from ..strictjson import dumps_canonical

SCHEMA_VERSION = 1
GENESIS_HASH = "0" * 64

# One stored row as the fast readers hand it out: (chain_id, seq, prev_hash, hash, canonical body).
RawRow = tuple[str, int, str, str, str]


def canonical_json(body: dict[str, Any]) -> str:
    """The exact text the hash covers: sorted keys, no spaces, UTF-8 (not ASCII-escaped); the
    same text as ``json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``."""
    return dumps_canonical(body, allow_nan=True).decode()


def chain_hash(prev_hash: str, canonical: str) -> str:
    """``sha256(prev_hash + "\\n" + canonical body)`` as hex: the chain rule."""
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int  # 1, 2, 3 ... in append order, no gaps
    time: float  # epoch seconds when the decision was made
    decision_id: str
    entry: str  # "invoke" | "mcp" | "approval" (an operator's vote) | ...
    outcome: str  # "allowed" | "denied" | "pending" | "error" | for votes: "approved" | "denied"
    code: str
    principal: str | None = None
    issuer: str | None = None
    roles: tuple[str, ...] = ()
    tool: str | None = None
    arguments: Any = None  # canonical arguments after redaction
    digest: str | None = None
    capabilities: tuple[str, ...] = ()
    rule: str | None = None
    reason: str | None = None
    mode: str = "enforce"
    enforced: bool = True
    policy_version: str | None = None
    latency_ms: float | None = None
    approval_id: str | None = None
    operator: str | None = None  # for approval records: who approved or denied, and ``time`` is when
    shadow: dict[str, Any] | None = None  # the candidate policy's "would ..." decision, when shadowing
    schema: int = SCHEMA_VERSION
    prev_hash: str = GENESIS_HASH
    hash: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # Which chain (replica) wrote it. Hashed when set; left out of the body when None, so records
    # made without it hash exactly as before.
    chain_id: str | None = None

    def body(self) -> dict[str, Any]:
        """Every field the hash covers (all but ``hash`` itself)."""
        data = asdict(self)
        data.pop("hash")
        if data["chain_id"] is None:
            data.pop("chain_id")
        data["roles"] = list(self.roles)
        data["capabilities"] = list(self.capabilities)
        return data

    def canonical(self) -> str:
        """The canonical JSON of ``body()``: the text that is hashed (and stored)."""
        return canonical_json(self.body())

    def compute_hash(self) -> str:
        return chain_hash(self.prev_hash, self.canonical())

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "hash": self.hash}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AuditRecord:
        values = dict(data)
        values["roles"] = tuple(values.get("roles") or ())
        values["capabilities"] = tuple(values.get("capabilities") or ())
        known = set(cls.__dataclass_fields__)
        extra = {k: v for k, v in values.items() if k not in known}
        values = {k: v for k, v in values.items() if k in known}
        if extra:
            values["extra"] = {**values.get("extra", {}), **extra}
        return cls(**values)


class AuditReader(Protocol):
    """Reads records back in order (the store, or an exported JSON-lines file)."""

    def records(
        self, *, since: float | None = None, until: float | None = None, after_seq: int = 0
    ) -> AsyncIterator[AuditRecord]: ...


class ChainConflict(Exception):
    """A write does not continue the chain's stored head (another writer uses this chain id,
    or rows vanished). The writer re-reads the head and re-chains what it has not written yet."""


class AuditSink(Protocol):
    """Where the chain is stored (``sink_sqlite``, ``sink_postgres``). Records come back in chain
    order: by ``chain_id``, then ``seq``.

    ``write`` is idempotent for rows already stored with the same hash (a retried batch whose
    first attempt did commit), refuses with ``ChainConflict`` a batch that does not continue the
    stored head, and stores each record's canonical body text exactly as hashed."""

    location: str  # for messages: the file, or schema.table

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def head(self, chain_id: str) -> tuple[int, str]:
        """(last seq, last hash), or (0, GENESIS_HASH) for an empty chain."""
        ...

    async def write(
        self,
        records: Sequence[AuditRecord],
        bodies: Sequence[str] | None = None,
        checkpoint: Any = None,
        superseded: int | None = None,
    ) -> None:
        """Store ``records`` (already chained, ``hash`` set) in one transaction. ``bodies``, when
        given, are their ``canonical()`` texts, computed once by the writer. ``checkpoint`` (a
        signed ``checkpoints.Checkpoint`` of the batch's last record) is stored in the same
        transaction, replacing the checkpoint at seq ``superseded``."""
        ...

    async def checkpoints(self, chain_id: str) -> list[Any]:
        """The chain's stored checkpoints, by seq."""
        ...

    async def chains(self) -> list[str]: ...

    def records(
        self,
        *,
        chain_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        after_seq: int = 0,
    ) -> AsyncIterator[AuditRecord]: ...

    def raw_chunks(
        self,
        *,
        chain_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        after_seq: int = 0,
    ) -> AsyncIterator[list[RawRow]]:
        """The stored rows, in chain order, in lists of a few thousand (for verify and export)."""
        ...


def plan_append(records: Sequence[AuditRecord], head_seq: int, head_hash: str, stored: dict[int, str]) -> int:
    """How many of ``records`` (one chain, consecutive seqs) are already stored; the rest must
    continue the stored head (``head_seq``, ``head_hash``). ``stored`` maps the seqs of the batch
    that are at or below the head to their stored hashes. Raises ``ChainConflict`` otherwise."""
    if not records:
        return 0
    chain = records[0].chain_id
    first = records[0].seq
    skip = 0
    while skip < len(records) and records[skip].seq <= head_seq:
        record = records[skip]
        if stored.get(record.seq) != record.hash:
            raise ChainConflict(
                f"chain {chain}: seq {record.seq} is already stored with another hash "
                "(is another writer using this chain id?)"
            )
        skip += 1
    if skip == len(records):
        return skip
    nxt = records[skip]
    if nxt.seq != head_seq + 1 or nxt.prev_hash != head_hash:
        raise ChainConflict(
            f"chain {chain}: the batch starting at seq {first} does not continue the stored head "
            f"seq {head_seq} ({head_hash[:12]}…)"
        )
    return skip
