"""Verify a hash chain: every record's hash, every link, every seq; say exactly where it breaks.

For each chain (in seq order) every row is checked three ways:

- **content**: ``sha256(prev_hash + "\\n" + canonical body)`` must equal the stored ``hash``
  — otherwise the record was edited (``changed``);
- **numbering**: ``seq`` must be the previous seq + 1, starting at 1 — a gap means records were
  deleted (``deleted``), a step back means records out of order (``reordered``);
- **link**: ``prev_hash`` must equal the previous record's ``hash`` — otherwise a record was
  changed and its hash forged (caught here, at the NEXT record), or records were deleted and
  renumbered, inserted, or moved. The finding names the likeliest of these: if the link points
  at an earlier record k it says seq k+1..N-1 were inserted; if a later record turns out to be
  the one it links to, both are reported as ``reordered``.

After a finding the check re-synchronises on the stored row, so independent tampering further
on is reported too.

What no unkeyed chain can show by itself: records cut from the end, or the whole tail rewritten
consistently from some point on. For that, verify against an **anchor**: a (seq, hash) pair
recorded earlier somewhere the attacker cannot edit — the writer logs one as
``audit_checkpoint`` regularly, and ``gatekeeper audit verify`` prints the head it saw. With
``expect_head=(seq, hash)`` (CLI ``--expect-head SEQ:HASH``) the chain must reach that seq and
have exactly that hash there; otherwise it was ``truncated`` or ``rewritten``.

With ``checkpoint_keys`` (the CLI loads the checkpoint public key) each stored signed checkpoint
(``checkpoints.py``) is checked too: its signature (``forged_checkpoint``), the chain's hash at its
seq (``rewritten``), its seq within the chain (``truncated``), and the head being covered by the
newest one (``unsigned_tail``): so a consistent rewrite of the tail is caught without an anchor.

Speed: store readers hand out raw rows (the stored canonical body text and the hash columns),
so a row costs one SHA-256 and a few comparisons — no JSON parsing, no objects.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .checkpoints import Checkpoint, verify_checkpoint
from .record import GENESIS_HASH, AuditReader, RawRow

WINDOW = 4096  # recent hashes kept per chain, to name the record a broken link points at


@dataclass
class Finding:
    chain_id: str | None
    seq: int
    position: int  # 0-based row index in the stream that was verified
    kind: str  # changed | deleted | inserted | reordered | broken_link | truncated | rewritten
    message: str

    def __str__(self) -> str:
        chain = f" (chain {self.chain_id})" if self.chain_id else ""
        return f"seq {self.seq}: {self.kind}: {self.message}{chain}"


@dataclass
class ChainSummary:
    chain_id: str | None
    records: int = 0
    first_seq: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    checkpoints: int = 0  # signed checkpoints checked
    signed_seq: int = 0  # the newest signed checkpoint's seq


@dataclass
class VerifyReport:
    records: int = 0
    seconds: float = 0.0
    chains: dict[str | None, ChainSummary] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    truncated_findings: int = 0  # findings beyond max_findings, counted only

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def parse_anchor(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` as printed by ``audit verify`` and logged as ``audit_checkpoint``."""
    seq_text, sep, digest = text.strip().partition(":")
    digest = digest.strip().lower()
    if not sep or not seq_text.strip().isdigit() or len(digest) != 64:
        raise ValueError(f"expected SEQ:HASH (a seq and a 64-hex-digit hash), got {text!r}")
    int(digest, 16)
    return int(seq_text), digest


class _Chain:
    __slots__ = (
        "anchor_ok",
        "checkpoints",
        "last_hash",
        "last_seq",
        "moved",
        "order",
        "pending",
        "summary",
        "window",
    )

    def __init__(self, chain_id: str | None, partial: bool) -> None:
        self.summary = ChainSummary(chain_id)
        self.last_seq = -1 if partial else 0  # -1: take the first row as it comes
        self.last_hash = GENESIS_HASH
        self.window: dict[str, int] = {}
        self.order: deque[str] = deque()
        self.pending: dict[str, Finding] = {}
        self.moved: set[int] = set()
        self.anchor_ok: bool | None = None
        self.checkpoints: dict[int, Checkpoint] = {}


async def _rows_of(reader: Any, chain_id: str | None) -> AsyncIterator[list[RawRow]]:
    raw = getattr(reader, "raw_chunks", None)
    if raw is not None:
        async for chunk in raw(chain_id=chain_id):
            yield chunk
        return
    rows: list[RawRow] = []
    async for record in reader.records():
        chain = record.chain_id or ""
        if chain_id is not None and chain != chain_id:
            continue
        rows.append((chain, record.seq, record.prev_hash, record.hash, record.canonical()))
        if len(rows) >= 2000:
            yield rows
            rows = []
    if rows:
        yield rows


async def verify(
    reader: AuditReader,
    *,
    chain_id: str | None = None,
    expect_head: tuple[int, str] | None = None,
    partial: bool = False,
    max_findings: int = 1000,
    checkpoint_keys: dict[str, Ed25519PublicKey] | None = None,
) -> VerifyReport:
    """Check every record of ``reader`` (a sink, a ``JsonlReader``, any ``AuditReader``).

    ``chain_id`` limits it to one chain. ``partial`` accepts a chain that starts after seq 1
    (an export of a time range): its first record's link is then not checked. ``expect_head``
    is an anchor for the one chain verified (see the module docstring)."""
    report = VerifyReport()
    started = time.perf_counter()
    chains: dict[str | None, _Chain] = {}
    findings = report.findings
    sha256 = hashlib.sha256
    anchor_seq, anchor_hash = expect_head if expect_head is not None else (-1, "")

    def add(st: _Chain, seq: int, pos: int, kind: str, message: str) -> Finding:
        finding = Finding(st.summary.chain_id, seq, pos, kind, message)
        if len(findings) < max_findings:
            findings.append(finding)
        else:
            report.truncated_findings += 1
        return finding

    def slow(st: _Chain, pos: int, seq: int, prev: str, digest: str, body: str, computed: str) -> None:
        if computed != digest:
            add(st, seq, pos, "changed", "the record's content does not match its hash (it was edited)")
        expected = st.last_seq + 1
        if st.last_seq < 0:
            pass  # partial: the first row of this chain sets the baseline
        elif seq > expected:
            gap = f"seq {expected}" if seq == expected + 1 else f"seq {expected}..{seq - 1}"
            add(st, expected, pos, "deleted", f"{gap} missing (deleted); the chain resumes at seq {seq}")
        elif seq < expected:
            add(st, seq, pos, "reordered", f"seq {seq} comes after seq {st.last_seq} (records out of order)")
        own: Finding | None = None
        if st.last_seq >= 0 and seq == expected and prev != st.last_hash:
            linked = st.window.get(prev)
            if linked is not None and linked < seq - 1 and any(k in st.moved for k in range(linked, seq)):
                own = add(
                    st, seq, pos, "reordered", f"links to seq {linked}, which was moved (records reordered)"
                )
            elif linked is not None and linked < seq - 1:
                gap = f"seq {linked + 1}" if linked + 1 == seq - 1 else f"seq {linked + 1}..{seq - 1}"
                own = add(
                    st,
                    linked + 1,
                    pos - (seq - 1 - linked),
                    "inserted",
                    f"{gap} inserted: seq {seq} links to seq {linked}",
                )
            else:
                own = add(
                    st,
                    seq,
                    pos,
                    "broken_link",
                    f"prev_hash does not match seq {seq - 1}'s hash: seq {seq - 1} was changed and its "
                    "hash recomputed (forged), or records between them were deleted and renumbered",
                )
                st.pending[prev] = own
        resolved = st.pending.pop(digest, None)
        if resolved is not None:
            resolved.kind = "reordered"
            resolved.message = (
                f"links to the record now at seq {seq}, which should come before it (records reordered)"
            )
            st.moved.update((resolved.seq, seq))
            if own is not None and own.kind == "inserted":
                own.seq, own.position, own.kind = seq, pos, "reordered"
                own.message = f"moved: it belongs before seq {resolved.seq} (records reordered)"

    signed: dict[str, dict[int, Checkpoint]] = {}
    read_checkpoints = getattr(reader, "checkpoints", None)
    list_chains = getattr(reader, "chains", None)
    if checkpoint_keys is not None and read_checkpoints is not None and list_chains is not None:
        for name in [chain_id] if chain_id is not None else await list_chains():
            signed[name] = {cp.seq: cp for cp in await read_checkpoints(name)}

    pos = -1
    current: _Chain | None = None
    current_id: object = object()
    async for chunk in _rows_of(reader, chain_id):
        for chain, seq, prev, digest, body in chunk:
            pos += 1
            if chain != current_id:
                current_id = chain
                current = chains.get(chain)
                if current is None:
                    current = chains[chain] = _Chain(chain, partial)
                    current.summary.first_seq = seq
                    current.checkpoints = signed.get(chain, {})
            st = current
            assert st is not None
            computed = sha256(prev.encode() + b"\n" + body.encode()).hexdigest()
            if not (computed == digest and seq == st.last_seq + 1 and prev == st.last_hash):
                slow(st, pos, seq, prev, digest, body, computed)
            elif st.pending and digest in st.pending:
                slow(st, pos, seq, prev, digest, body, computed)
            if seq == anchor_seq:
                st.anchor_ok = digest == anchor_hash
            if st.checkpoints:
                checkpoint = st.checkpoints.get(seq)
                if checkpoint is not None and checkpoint.hash != digest:
                    add(
                        st,
                        seq,
                        pos,
                        "rewritten",
                        f"its hash differs from the signed checkpoint {checkpoint.hash[:16]}…: the chain "
                        "was rewritten at or before this seq",
                    )
            window = st.window
            window[digest] = seq
            order = st.order
            order.append(digest)
            if len(order) > WINDOW:
                window.pop(order.popleft(), None)
            st.last_seq = seq
            st.last_hash = digest
            st.summary.records += 1
    report.records = pos + 1

    if expect_head is not None:
        if len(chains) > 1:
            raise ValueError("--expect-head needs one chain: name it with --chain")
        if chains:
            st = next(iter(chains.values()))
        else:
            st = chains[chain_id] = _Chain(chain_id, partial)
        last = max(st.last_seq, 0)
        if st.anchor_ok is None:
            if last < anchor_seq:
                add(
                    st,
                    last + 1,
                    pos + 1,
                    "truncated",
                    f"the chain ends at seq {last} but the anchor expects seq {anchor_seq}: "
                    f"records {last + 1}..{anchor_seq} (at least) were removed",
                )
            else:
                add(
                    st, anchor_seq, pos + 1, "truncated", f"the anchor's seq {anchor_seq} is not in the chain"
                )
        elif not st.anchor_ok:
            add(
                st,
                anchor_seq,
                pos + 1,
                "rewritten",
                f"its hash differs from the anchor {anchor_hash[:16]}…: the chain was rewritten "
                "at or before this seq",
            )

    if checkpoint_keys is not None:
        for name, by_seq in signed.items():
            if name not in chains and by_seq:
                chains[name] = _Chain(name, partial)
            if name in chains:
                _check_checkpoints(chains[name], by_seq, checkpoint_keys, pos + 1, add)

    for st in chains.values():
        st.summary.head_seq = max(st.last_seq, 0)
        st.summary.head_hash = st.last_hash
        report.chains[st.summary.chain_id] = st.summary
    findings.sort(key=lambda f: (str(f.chain_id), f.seq, f.position))
    report.seconds = time.perf_counter() - started
    return report


def _check_checkpoints(
    st: _Chain,
    by_seq: dict[int, Checkpoint],
    keys: dict[str, Ed25519PublicKey],
    end: int,
    add: Any,
) -> None:
    """Signatures, seqs past the head, and the head's coverage (hashes were compared in the scan)."""
    head = max(st.last_seq, 0)
    valid = 0
    for seq, checkpoint in sorted(by_seq.items()):
        problem = verify_checkpoint(keys, checkpoint)
        if problem is not None:
            add(st, seq, end, "forged_checkpoint", f"the checkpoint at seq {seq} is not valid: {problem}")
            continue
        if seq > head:
            add(
                st,
                head + 1,
                end,
                "truncated",
                f"the chain ends at seq {head} but a signed checkpoint covers seq {seq}: "
                f"records {head + 1}..{seq} (at least) were removed",
            )
            continue
        valid = max(valid, seq)
        st.summary.checkpoints += 1
    st.summary.signed_seq = valid
    if head > valid:
        covered = f"the newest valid signed checkpoint is at seq {valid}" if valid else "no signed checkpoint"
        add(
            st,
            valid + 1,
            end,
            "unsigned_tail",
            f"seq {valid + 1}..{head} are covered by no signature ({covered}): they were added or "
            "rewritten without the checkpoint key",
        )
