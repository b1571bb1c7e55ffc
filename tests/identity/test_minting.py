"""The development key and the tokens minted with it."""

from __future__ import annotations

import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from gatekeeper.errors import AuthenticationError, ConfigError
from gatekeeper.identity import (
    IdentitySettings,
    TokenVerifier,
    ensure_dev_key,
    issue_token,
    jwk_thumbprint,
    load_private_key_pem,
)

from . import ec_key, ed_key


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_dev_key_created_private_and_reused(tmp_path: Path) -> None:
    path = ensure_dev_key(tmp_path)
    assert path == tmp_path / "keys" / "dev-signing-key.pem"
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    public = path.parent / "dev-signing-key.pub.pem"
    assert serialization.load_pem_public_key(public.read_bytes()) == load_private_key_pem(path).public_key()
    first = path.read_bytes()
    assert ensure_dev_key(tmp_path) == path
    assert path.read_bytes() == first
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_dev_key_folder_permissions_tightened(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir(mode=0o755)
    (tmp_path / "keys").chmod(0o755)
    ensure_dev_key(tmp_path)
    assert mode(tmp_path / "keys") == 0o700


def test_dev_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = ensure_dev_key(tmp_path)
    path.chmod(0o644)
    with pytest.raises(ConfigError) as info:
        ensure_dev_key(tmp_path)
    assert "BEGIN" not in info.value.message


def test_unwritable_data_folder_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError):
        ensure_dev_key(blocker)


def test_missing_or_stale_public_key_rewritten(tmp_path: Path) -> None:
    path = ensure_dev_key(tmp_path)
    public = path.parent / "dev-signing-key.pub.pem"
    expected = public.read_bytes()
    public.write_bytes(b"stale")
    ensure_dev_key(tmp_path)
    assert public.read_bytes() == expected
    public.unlink()
    ensure_dev_key(tmp_path)
    assert public.read_bytes() == expected


def test_concurrent_first_runs_agree_on_one_key(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        paths = list(pool.map(lambda _: ensure_dev_key(tmp_path), range(4)))
    assert len(set(paths)) == 1
    public = serialization.load_pem_public_key((paths[0].parent / "dev-signing-key.pub.pem").read_bytes())
    assert public == load_private_key_pem(paths[0]).public_key()


def test_minted_token_verifies(tmp_path: Path) -> None:
    key = ensure_dev_key(tmp_path)
    verifier = TokenVerifier(IdentitySettings(dev_key_path=str(key)))
    token = issue_token(key, subject="agent-1", roles=["agent", "reader"], ttl_seconds=120)
    principal = verifier.verify_token(token, operator=False)
    assert (principal.subject, principal.roles, principal.operator) == ("agent-1", ("agent", "reader"), False)
    assert principal.token_id
    assert abs(principal.expires_at - (time.time() + 120)) < 5

    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    assert header["kid"] == jwk_thumbprint(load_private_key_pem(key).public_key())
    payload = jwt.decode(token, options={"verify_signature": False})
    assert set(payload) == {"sub", "roles", "iss", "aud", "iat", "nbf", "exp", "jti"}
    assert (payload["iss"], payload["aud"], payload["exp"] - payload["iat"]) == (
        "gatekeeper-dev",
        "gatekeeper",
        120,
    )
    assert issue_token(key, subject="agent-1", roles=[]) != issue_token(key, subject="agent-1", roles=[])


def test_minted_operator_token_only_works_on_operator_listener(tmp_path: Path) -> None:
    key = ensure_dev_key(tmp_path)
    verifier = TokenVerifier(IdentitySettings(dev_key_path=str(key)))
    token = issue_token(key, subject="alice", roles=["operator"], operator=True)
    assert verifier.verify_token(token, operator=True).operator is True
    with pytest.raises(AuthenticationError) as info:
        verifier.verify_token(token, operator=False)
    assert info.value.code == "invalid_audience"


def test_custom_issuer_and_audience(tmp_path: Path) -> None:
    key = ensure_dev_key(tmp_path)
    settings = IdentitySettings(issuer="acme", audience="acme-gate", dev_key_path=str(key))
    token = issue_token(key, subject="a", roles=["agent"], issuer="acme", audience="acme-gate")
    assert TokenVerifier(settings).verify_token(token, operator=False).issuer == "acme"
    with pytest.raises(AuthenticationError) as info:
        TokenVerifier(IdentitySettings(dev_key_path=str(key))).verify_token(token, operator=False)
    assert info.value.code == "invalid_issuer"


@pytest.mark.parametrize(("make", "alg"), [(ec_key, "ES256"), (ed_key, "EdDSA")])
def test_other_key_types_sign_with_their_algorithm(tmp_path: Path, make: object, alg: str) -> None:
    private = make()  # type: ignore[operator]
    path = tmp_path / "signing.pem"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    token = issue_token(path, subject="a", roles=["agent"])
    assert jwt.get_unverified_header(token)["alg"] == alg
    assert (
        TokenVerifier(IdentitySettings(dev_key_path=str(path))).verify_token(token, operator=False).subject
        == "a"
    )


@pytest.mark.parametrize(
    "kwargs", [{"subject": ""}, {"roles": "agent"}, {"roles": ["agent", ""]}, {"ttl_seconds": 0}]
)
def test_issue_token_refuses_bad_input(tmp_path: Path, kwargs: dict[str, object]) -> None:
    key = ensure_dev_key(tmp_path)
    arguments: dict[str, object] = {"subject": "a", "roles": ["agent"], **kwargs}
    with pytest.raises(ValueError):
        issue_token(key, **arguments)  # type: ignore[arg-type]


def test_unreadable_or_bogus_signing_key_is_a_config_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    for path in (bogus, tmp_path / "absent.pem"):
        with pytest.raises(ConfigError) as info:
            issue_token(path, subject="a", roles=[])
        assert "AAAA" not in info.value.message
