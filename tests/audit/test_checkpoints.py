"""Signed checkpoints: a tail rewritten consistently (every hash recomputed) is caught by
``gatekeeper audit verify`` with no anchor kept elsewhere, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.audit.checkpoints import (
    Checkpoint,
    default_key_path,
    ensure_signer,
    public_key_path,
    verify_checkpoint,
)
from gatekeeper.audit.log import AuditLog, make_sink
from gatekeeper.audit.record import chain_hash
from gatekeeper.audit.verify import verify
from gatekeeper.config import load_config
from gatekeeper.errors import ConfigError

from ..helpers import drop_schema, postgres_dsn
from .conftest import decision
from .test_cli_audit import run, tamper

CHAIN = "host:8080"


@pytest.fixture(params=["sqlite", "postgres"])
def config_file(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "gatekeeper.yaml"
    home = tmp_path / "home"
    if request.param == "sqlite":
        path.write_text(f"data_dir: {home}\n")
        yield path
        return
    dsn = asyncio.run(postgres_dsn())
    schema = f"gk_audit_cp_{secrets.token_hex(6)}"
    path.write_text(f"data_dir: {home}\napprovals:\n  store: {dsn}\n  postgres_schema: {schema}\n")
    yield path
    asyncio.run(drop_schema(dsn, schema))


def populate_signed(config_file: Path, n: int, batches: int = 3, checkpoint_seconds: float = 0.0) -> None:
    """n records written by a gate that signs: a batch at a time, so several checkpoints exist
    (all of them kept with ``checkpoint_seconds`` 0)."""

    async def go() -> None:
        config = load_config(config_file)
        log = AuditLog(
            make_sink(config.approvals.store, config.data_dir, schema=config.approvals.postgres_schema),
            chain_id=CHAIN,
            signer=ensure_signer(default_key_path(config.data_dir)),
            checkpoint_seconds=checkpoint_seconds,
        )
        await log.start()
        per = n // batches
        for i in range(1, n + 1):
            log.append(**decision(i, time=1_800_000_000.0 + i))
            if i % per == 0:
                await log.flush()
        await log.stop()

    asyncio.run(go())


def rows(config_file: Path) -> list[tuple[int, str, str, str]]:
    config = load_config(config_file)

    async def go() -> list[tuple[int, str, str, str]]:
        sink = make_sink(config.approvals.store, config.data_dir, schema=config.approvals.postgres_schema)
        await sink.open()
        try:
            return [
                (seq, prev, digest, body)
                async for chunk in sink.raw_chunks(chain_id=CHAIN)
                for (_c, seq, prev, digest, body) in chunk
            ]
        finally:
            await sink.close()

    return asyncio.run(go())


def plain_chain_ok(config_file: Path) -> bool:
    config = load_config(config_file)

    async def go() -> bool:
        sink = make_sink(config.approvals.store, config.data_dir, schema=config.approvals.postgres_schema)
        await sink.open()
        try:
            return (await verify(sink)).ok
        finally:
            await sink.close()

    return asyncio.run(go())


def rewrite_tail(config_file: Path, from_seq: int) -> None:
    """What an attacker with write access to the store (and no key) does: edit records from
    ``from_seq`` on and recompute every hash, so the chain is consistent again."""
    prev = ""
    for seq, _prev, digest_now, body in rows(config_file):
        if seq < from_seq:
            prev = digest_now
            continue
        data: dict[str, Any] = json.loads(body)
        data["outcome"], data["code"], data["tool"] = "denied", "policy_denied", "file.read"
        data["prev_hash"] = prev
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = chain_hash(prev, text)
        tamper(
            config_file,
            "UPDATE audit_records SET body = ?, prev_hash = ?, hash = ? WHERE chain_id = ? AND seq = ?",
            text,
            prev,
            digest,
            CHAIN,
            seq,
        )
        prev = digest


def test_each_batch_checkpoint_replaces_the_last_one_within_an_interval(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Within ``checkpoint_seconds`` of the last kept checkpoint, a batch's checkpoint takes the
    previous one's place: no checkpoint but the first and the head is left, each validly signed."""
    populate_signed(config_file, 40, batches=4, checkpoint_seconds=3600.0)
    config = load_config(config_file)

    async def go() -> list[Checkpoint]:
        sink = make_sink(config.approvals.store, config.data_dir, schema=config.approvals.postgres_schema)
        await sink.open()
        try:
            return await sink.checkpoints(CHAIN)
        finally:
            await sink.close()

    kept = asyncio.run(go())
    signer = ensure_signer(default_key_path(config.data_dir))
    # the first is kept when the monotonic clock is past the interval already (a host up an hour)
    assert [c.seq for c in kept] in ([10, 40], [40])
    assert all(verify_checkpoint({signer.key_id: signer.public_key}, c) is None for c in kept)
    head = rows(config_file)[-1]
    assert kept[-1].hash == head[2]
    assert run("audit", "verify", "--config", str(config_file)) == 0
    assert "the newest at seq 40" in capsys.readouterr().out


def test_a_consistent_rewrite_of_the_tail_is_caught_without_an_anchor(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    populate_signed(config_file, 30)
    config = load_config(config_file)
    key = default_key_path(config.data_dir)
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(key.parent).st_mode) == 0o700
    assert run("audit", "verify", "--config", str(config_file)) == 0
    out = capsys.readouterr().out
    assert "3 signed checkpoint(s) valid" in out and "the newest at seq 30" in out

    rewrite_tail(config_file, 25)
    assert plain_chain_ok(config_file)  # the rewrite is consistent: only the checkpoint shows it
    assert run("audit", "verify", "--config", str(config_file)) == 1
    out = capsys.readouterr().out
    assert "seq 30: rewritten: its hash differs from the signed checkpoint" in out
    assert "changed" not in out and "broken_link" not in out

    # removing the checkpoints after the rewrite leaves a tail no signature covers
    tamper(config_file, "DELETE FROM audit_checkpoints WHERE chain_id = ? AND seq > ?", CHAIN, 20)
    assert run("audit", "verify", "--config", str(config_file)) == 1
    out = capsys.readouterr().out
    assert "seq 21: unsigned_tail: seq 21..30 are covered by no signature" in out


def test_a_cut_tail_and_a_forged_checkpoint_are_caught(
    config_file: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    populate_signed(config_file, 30)
    config = load_config(config_file)
    trusted = tmp_path / "trusted.pub.pem"  # the copy an operator keeps away from the data folder
    trusted.write_bytes(public_key_path(default_key_path(config.data_dir)).read_bytes())

    tamper(config_file, "DELETE FROM audit_records WHERE chain_id = ? AND seq > ?", CHAIN, 27)
    assert run("audit", "verify", "--config", str(config_file)) == 1
    assert (
        "truncated: the chain ends at seq 27 but a signed checkpoint covers seq 30" in capsys.readouterr().out
    )

    # an attacker who also replaces the key in the data folder and re-signs: the kept copy catches it
    tamper(config_file, "DELETE FROM audit_checkpoints WHERE chain_id = ?", CHAIN)
    default_key_path(config.data_dir).unlink()
    forger = ensure_signer(default_key_path(config.data_dir))
    head = rows(config_file)[-1]
    forged = forger.sign(CHAIN, head[0], head[2])
    tamper(
        config_file,
        "INSERT INTO audit_checkpoints (chain_id, seq, hash, time, key_id, signature) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        CHAIN,
        forged.seq,
        forged.hash,
        forged.time,
        forged.key_id,
        forged.signature,
    )
    assert run("audit", "verify", "--config", str(config_file), "--checkpoint-key", str(trusted)) == 1
    out = capsys.readouterr().out
    assert "forged_checkpoint" in out and "not a trusted checkpoint key" in out


def test_a_provisioned_key_in_a_read_only_folder_is_used(tmp_path: Path) -> None:
    """A key made with openssl and mounted read-only (a Kubernetes Secret) signs; a key readable by
    others is refused."""
    folder = tmp_path / "secret"
    folder.mkdir()
    key = folder / "audit-checkpoint.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True)
    key.chmod(0o400)
    # read-only as a Secret volume is (a mode would not stop root, who runs this suite)
    for argv in (
        ["mount", "--bind", str(folder), str(folder)],
        ["mount", "-o", "remount,ro,bind", str(folder)],
    ):
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"this test makes a read-only bind mount (needs root): {done.stderr.strip()}")
    try:
        signer = ensure_signer(key)
        assert not public_key_path(key).exists()  # nothing written next to a read-only key
        checkpoint = signer.sign("c", 1, "0" * 64)
        assert verify_checkpoint({signer.key_id: signer.public_key}, checkpoint) is None
    finally:
        subprocess.run(["umount", str(folder)], check=False)
    key.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by other users"):
        ensure_signer(key)
