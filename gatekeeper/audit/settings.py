"""The ``audit`` section of the configuration: how far the gate may run ahead of its audit store,
and where the checkpoint signing key lives."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AuditSettings:
    # Calls are refused (503 audit_unavailable) once this many records wait to be written...
    max_unwritten_records: int = 1000
    # ...or once the store has failed writes for this long; an answer whose record is not
    # committed within this time is replaced by that refusal too.
    max_unwritten_seconds: float = 5.0
    # An answer leaves only after its record is committed (a crash then loses no record of an
    # answered call). Off: answers go out at once and records follow within milliseconds.
    durable_answers: bool = True
    # The Ed25519 key that signs checkpoints; None: keys/audit-checkpoint.pem in the data folder.
    checkpoint_key: str | None = None
    # One signed checkpoint is kept per this many seconds (plus the newest): checkpoints.py.
    checkpoint_seconds: float = 10.0
    # Who chains and commits the records: "inline" (the serving process's event loop) or
    # "process" (a writer process per serving process, fed through a journal: offloop.py).
    writer: str = "inline"
