"""Signed checkpoints of the audit chain: what makes a consistent rewrite of the tail detectable
without an anchor kept elsewhere.

A plain hash chain proves only that records agree with each other: whoever can write the store
can rewrite every record from some seq on and recompute every hash. So with every batch it
writes, the audit writer also stores, in the same transaction, a checkpoint
``(chain_id, seq, hash, time)`` of the new head, signed with an Ed25519 key that only the gate
process holds (``keys/audit-checkpoint.pem`` in the data folder, 0600, made at first run, or the
file ``audit.checkpoint_key`` names). The agent side never holds it: agents reach the gate only
over HTTP, and the sandboxed runner does not see the data folder.

``gatekeeper audit verify`` checks each checkpoint's signature against the public key (the
``.pub.pem`` beside it, or a copy given with ``--checkpoint-key``, which is the one to trust if
the data folder itself may have been written to), that the chain has exactly the signed hash at
each checkpoint's seq, and that the newest checkpoint covers the head: records rewritten after a
checkpoint change the hash it signed; records added or rewritten past the last one are not
covered by any signature. Each batch's checkpoint replaces the previous one unless that one is
``history_seconds`` newer than the last kept, so the table keeps one row per interval plus the head.

What signing cannot show alone: a tail cut off together with its checkpoints (the store then
looks like an honest older state). The writer also logs each kept checkpoint
(``audit_checkpoint``, with its signature); shipped off the machine with the other logs, those
lines and ``--expect-head`` catch that too.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import ConfigError

log = structlog.get_logger("gatekeeper.audit")

KEY_NAME = "audit-checkpoint.pem"
PUBLIC_KEY_NAME = "audit-checkpoint.pub.pem"
_DOMAIN = b"gatekeeper-audit-checkpoint/v1"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    chain_id: str
    seq: int
    hash: str
    time: float
    key_id: str
    signature: str  # base64 of the Ed25519 signature over ``message()``

    def message(self) -> bytes:
        return b"\n".join(
            (
                _DOMAIN,
                self.chain_id.encode(),
                str(self.seq).encode(),
                self.hash.encode(),
                repr(self.time).encode(),
            )
        )


def key_id_of(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class CheckpointSigner:
    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key = key.public_key()
        self.key_id = key_id_of(self.public_key)

    def sign(self, chain_id: str, seq: int, digest: str, at: float | None = None) -> Checkpoint:
        unsigned = Checkpoint(chain_id, seq, digest, time.time() if at is None else at, self.key_id, "")
        signature = base64.b64encode(self._key.sign(unsigned.message())).decode()
        return Checkpoint(chain_id, seq, digest, unsigned.time, self.key_id, signature)


def verify_checkpoint(keys: dict[str, Ed25519PublicKey], checkpoint: Checkpoint) -> str | None:
    """None when ``checkpoint`` is signed by one of ``keys`` (by key id); else what is wrong."""
    key = keys.get(checkpoint.key_id)
    if key is None:
        return (
            f"signed by key {checkpoint.key_id}, which is not a trusted checkpoint key "
            "(another replica's? pass its public key with --checkpoint-key)"
        )
    try:
        key.verify(base64.b64decode(checkpoint.signature, validate=True), checkpoint.message())
    except (InvalidSignature, ValueError):
        return "its signature does not verify (the checkpoint was forged or edited)"
    return None


def default_key_path(data_dir: Path) -> Path:
    return data_dir / "keys" / KEY_NAME


def public_key_path(private_path: Path) -> Path:
    return private_path.with_name(private_path.name.removesuffix(".pem") + ".pub.pem")


def ensure_signer(private_path: Path) -> CheckpointSigner:
    """The signing key at ``private_path``, made (0600, its folder 0700) on first run, with its
    public key published beside it. A key readable by others is refused, never used."""
    try:
        private_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not private_path.exists():
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            _create(private_path, pem, 0o600)
        if os.stat(private_path).st_mode & 0o077:
            raise ConfigError(
                f"{private_path} (the audit checkpoint key) is readable by other users; chmod 600 it",
                key="audit.checkpoint_key",
            )
        key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(f"cannot set up the audit checkpoint key {private_path}: {exc.strerror}") from None
    except ValueError:
        raise ConfigError(f"{private_path} is not a PEM private key", key="audit.checkpoint_key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{private_path} must be an Ed25519 key", key="audit.checkpoint_key")
    signer = CheckpointSigner(key)
    public = signer.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_path = public_key_path(private_path)
    try:
        if not public_path.exists() or public_path.read_bytes() != public:
            tmp = public_path.with_name(f".{public_path.name}.{os.getpid()}.tmp")
            tmp.unlink(missing_ok=True)
            _create(tmp, public, 0o644)
            os.replace(tmp, public_path)
    except OSError as exc:  # a key mounted read-only (a Kubernetes Secret): its public half is kept elsewhere
        log.warning("audit_checkpoint_public_key_not_written", path=str(public_path), error=exc.strerror)
    return signer


def load_public_keys(paths: list[Path]) -> dict[str, Ed25519PublicKey]:
    """Public keys (PEM) by key id; a private key file gives its public half."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        data = path.read_bytes()
        loaded: object
        try:
            loaded = serialization.load_pem_public_key(data)
        except ValueError:
            loaded = serialization.load_pem_private_key(data, password=None).public_key()
        if not isinstance(loaded, Ed25519PublicKey):
            raise ValueError(f"{path} is not an Ed25519 key")
        keys[key_id_of(loaded)] = loaded
    return keys


def _create(path: Path, data: bytes, mode: int) -> None:
    """Write a new file with ``mode`` from its first byte (O_EXCL: a concurrent first run loses)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
