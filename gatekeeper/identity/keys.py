"""Verification keys: local PEM files, the generated development key, and a remote JWKS.

Every key is bound to exactly one algorithm by its type (RSA → RS256, EC P-256 →
ES256, Ed25519 → EdDSA) when it is loaded, so the token's ``alg`` header can only
ever select a key, never reinterpret one. Key ids are RFC 7638 thumbprints unless
a JWKS names them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import secrets
import stat
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gatekeeper import codes
from gatekeeper.errors import AuthenticationError, ConfigError
from gatekeeper.identity.settings import IdentitySettings

log = structlog.get_logger(__name__)

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

DEV_KEY_NAME = "dev-signing-key.pem"
DEV_PUBLIC_KEY_NAME = "dev-signing-key.pub.pem"
MIN_RSA_BITS = 2048
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
#: Key construction in a worker thread gives the GIL back after this much work, for
#: ``_PARSE_PAUSE_SECONDS``. Without the pauses the event-loop thread is starved all the same:
#: it releases the GIL at every poll and, against a thread that never sleeps, gets it back only
#: once per switch interval (5 ms), so a parse would still hold the loop for most of its length.
_PARSE_SLICE_SECONDS = 0.0005
_PARSE_PAUSE_SECONDS = 0.00025


class UnsupportedKey(ValueError):
    """A key Gatekeeper will not verify with (wrong type, curve or size)."""


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key and the single algorithm it may verify."""

    kid: str
    alg: str
    key: PublicKey


def algorithm_for_key(key: PublicKey) -> str:
    """The one algorithm a key may be used with; refuses weak or unsupported keys."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise UnsupportedKey(f"RSA keys must be at least {MIN_RSA_BITS} bits, got {key.key_size}")
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise UnsupportedKey(f"EC keys must be on P-256, got {key.curve.name}")
        return "ES256"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "EdDSA"
    raise UnsupportedKey(f"unsupported key type {type(key).__name__}")


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64u_decode(value: object) -> bytes:
    if not isinstance(value, str) or not _B64URL.fullmatch(value) or len(value) % 4 == 1:
        raise UnsupportedKey("JWK member is not base64url")
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _uint(value: int) -> str:
    return _b64u(value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def _required_members(key: PublicKey) -> dict[str, str]:
    """The RFC 7638 required members, which are also a complete public JWK."""
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return {"e": _uint(numbers.e), "kty": "RSA", "n": _uint(numbers.n)}
    if isinstance(key, ec.EllipticCurvePublicKey):
        point = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return {"crv": "P-256", "kty": "EC", "x": _b64u(point[1:33]), "y": _b64u(point[33:65])}
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"crv": "Ed25519", "kty": "OKP", "x": _b64u(raw)}


def jwk_thumbprint(key: PublicKey) -> str:
    """RFC 7638 SHA-256 thumbprint: a kid both sides can compute from the key alone."""
    canonical = json.dumps(_required_members(key), separators=(",", ":"), sort_keys=True)
    return _b64u(hashlib.sha256(canonical.encode("ascii")).digest())


def public_jwk(key: PublicKey) -> dict[str, str]:
    """The key as a JWKS entry, e.g. for serving the development key to other services."""
    return {**_required_members(key), "kid": jwk_thumbprint(key), "alg": algorithm_for_key(key), "use": "sig"}


def verification_key(key: PublicKey, kid: str | None = None) -> VerificationKey:
    return VerificationKey(kid=kid or jwk_thumbprint(key), alg=algorithm_for_key(key), key=key)


def load_public_key_pem(path: Path) -> PublicKey:
    """Load a PEM public key, refusing private keys: a verifier has no business holding them."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"identity.public_keys: cannot read {path}: {exc.strerror}") from None
    if b"PRIVATE KEY" in data:
        raise ConfigError(f"identity.public_keys: {path} holds a private key; configure its public key")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise ConfigError(f"identity.public_keys: {path} is not a PEM public key") from None
    if not isinstance(key, PublicKey):
        raise ConfigError(f"identity.public_keys: {path}: only RSA, EC P-256 and Ed25519 keys are supported")
    try:
        algorithm_for_key(key)
    except UnsupportedKey as exc:
        raise ConfigError(f"identity.public_keys: {path}: {exc}") from None
    return key


def load_private_key_pem(path: Path) -> PrivateKey:
    """Load an unencrypted PEM private key (the development or a test signing key)."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(f"cannot read signing key {path}: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise ConfigError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, PrivateKey):
        raise ConfigError(f"{path}: only RSA, EC P-256 and Ed25519 signing keys are supported")
    return key


class KeySet(Mapping[str, VerificationKey]):
    """An immutable kid → key map; lookups by attacker-chosen kid are plain dict gets."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[VerificationKey] = ()) -> None:
        by_kid: dict[str, VerificationKey] = {}
        for key in keys:
            if key.kid in by_kid:
                raise ConfigError(f"two verification keys share the key id {key.kid!r}")
            by_kid[key.kid] = key
        self._keys = by_kid

    def __getitem__(self, kid: str) -> VerificationKey:
        return self._keys[kid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    @classmethod
    def from_settings(cls, settings: IdentitySettings) -> KeySet:
        """The local keys: configured PEM files plus the development key when running on defaults."""
        keys = [verification_key(load_public_key_pem(Path(p))) for p in settings.public_keys]
        if settings.dev_key_path is not None:
            private = load_private_key_pem(Path(settings.dev_key_path))
            keys.append(verification_key(private.public_key()))
        return cls(keys)

    @classmethod
    def from_jwks(cls, document: object) -> KeySet:
        """Parse a JWKS, keeping only keys we can verify with; an ambiguous kid keeps neither."""
        parsed = _parse_jwks(document)
        parsed.log_ignored()
        return parsed.keys


@dataclass(frozen=True, slots=True)
class _ParsedJwks:
    """A parsed JWKS and what was left out of it (logged by the caller, on the event loop)."""

    keys: KeySet
    unsupported: int
    duplicate_kids: int

    def log_ignored(self) -> None:
        if self.unsupported or self.duplicate_kids:
            log.warning("jwks_keys_ignored", unsupported=self.unsupported, duplicate_kids=self.duplicate_kids)


def _parse_jwks(document: object, *, share_gil: bool = False) -> _ParsedJwks:
    """No logging, no shared state: may run in a worker thread (then with ``share_gil``)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("JWKS document must be an object with a 'keys' list")
    parsed: dict[str, VerificationKey] = {}
    duplicated: set[str] = set()
    skipped = 0
    clock = time.perf_counter
    slice_start = clock()
    for entry in document["keys"]:
        if share_gil and clock() - slice_start >= _PARSE_SLICE_SECONDS:
            time.sleep(_PARSE_PAUSE_SECONDS)  # lets the event-loop thread run, uncontested
            slice_start = clock()
        try:
            key = _key_from_jwk(entry)
        except UnsupportedKey:
            skipped += 1
            continue
        if key.kid in parsed:
            duplicated.add(key.kid)
        parsed[key.kid] = key
    keys = KeySet(k for kid, k in parsed.items() if kid not in duplicated)
    return _ParsedJwks(keys, skipped, len(duplicated))


def _parse_jwks_body(body: bytes) -> _ParsedJwks:
    """JSON decode and key construction of a fetched document, in a worker thread.

    The CPU-heavy part of a refresh (~15 µs per RSA key). ``json.loads`` is one C call that
    holds the GIL throughout (about 5 ms for the largest document accepted, 1 MiB); key
    construction shares it in slices of ``_PARSE_SLICE_SECONDS``.
    """
    return _parse_jwks(json.loads(body), share_gil=True)


def _key_from_jwk(entry: object) -> VerificationKey:
    if not isinstance(entry, dict):
        raise UnsupportedKey("JWK must be an object")
    if entry.get("use", "sig") != "sig":
        raise UnsupportedKey("JWK is not a signing key")
    kty = entry.get("kty")
    key: PublicKey
    try:
        if kty == "RSA":
            n = int.from_bytes(_b64u_decode(entry.get("n")), "big")
            e = int.from_bytes(_b64u_decode(entry.get("e")), "big")
            key = rsa.RSAPublicNumbers(e, n).public_key()
        elif kty == "EC" and entry.get("crv") == "P-256":
            x, y = _b64u_decode(entry.get("x")), _b64u_decode(entry.get("y"))
            if len(x) != 32 or len(y) != 32:
                raise UnsupportedKey("P-256 coordinates must be 32 bytes")
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)
        elif kty == "OKP" and entry.get("crv") == "Ed25519":
            key = ed25519.Ed25519PublicKey.from_public_bytes(_b64u_decode(entry.get("x")))
        else:
            raise UnsupportedKey("unsupported JWK key type or curve")
    except ValueError as exc:  # invalid numbers / point not on curve
        raise UnsupportedKey("invalid JWK") from exc
    alg = algorithm_for_key(key)
    if entry.get("alg", alg) != alg:
        raise UnsupportedKey("JWK alg does not match its key type")
    kid = entry.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid):
        raise UnsupportedKey("JWK kid must be a non-empty string")
    return verification_key(key, kid)


# --- the development key ---------------------------------------------------------------------------


def ensure_dev_key(data_dir: Path) -> Path:
    """Create the development signing key on first run and return its path.

    Blocking (key generation takes tens of milliseconds): call it at start-up, before the
    event loop serves traffic. Safe against a concurrent first run: the first writer wins.
    """
    key_dir = data_dir / "keys"
    try:
        return _ensure_dev_key(key_dir)
    except OSError as exc:
        raise ConfigError(f"cannot set up the development key in {key_dir}: {exc.strerror}") from None


def _ensure_dev_key(key_dir: Path) -> Path:
    key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(key_dir, 0o700)  # mkdir's mode is masked by umask and ignored for an existing folder
    private_path = key_dir / DEV_KEY_NAME
    if not private_path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=MIN_RSA_BITS)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _publish(private_path, pem, 0o600, replace=False)
    mode = os.lstat(private_path).st_mode
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{private_path} is not a regular file; remove it to generate a new key")
    if mode & 0o077:
        raise ConfigError(
            f"{private_path} is readable by other users; remove it to generate a new key "
            "(or chmod 600 it if you are sure it was never exposed)"
        )
    public = load_private_key_pem(private_path).public_key()
    public_pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_path = key_dir / DEV_PUBLIC_KEY_NAME
    if not public_path.exists() or public_path.read_bytes() != public_pem:
        _publish(public_path, public_pem, 0o644, replace=True)
    return private_path


def _publish(path: Path, data: bytes, mode: int, *, replace: bool) -> None:
    """Write a file so nobody ever sees it partly written or with looser permissions."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # atomic create-if-absent: a concurrent first run keeps its key
            except FileExistsError:
                pass
    finally:
        tmp.unlink(missing_ok=True)


# --- remote keys -----------------------------------------------------------------------------------


class JwksKeySource:
    """Keys from an identity provider's JWKS URL, cached, refreshed ahead of expiry, fetched sparingly.

    Refresh ahead: once the cached set is ``refresh_ahead`` × ``cache_seconds`` old, a
    background refresh starts (from a timer, or from the first lookup past that point when
    the timer has not fired yet). Lookups of a known ``kid`` keep being answered from the
    cached set while it runs and never wait for it. The fetch is ``async`` and the
    document's JSON decoding and key construction run in a worker thread that gives the
    GIL back every half millisecond, so a large JWKS does not hold up the event loop (the
    JSON decoding, one C call, still holds the GIL: ~0.5 ms for 500 RSA keys, ~5 ms at 1 MiB).

    Fetches are coalesced (concurrent callers share one in-flight request) and rate
    limited: at most one fetch per ``min_refresh_interval``, whether triggered by an
    unknown ``kid``, by expiry or ahead of it, so a flood of tokens with random kids cannot
    turn Gatekeeper into a request amplifier against the provider. Only the caller with an
    unknown ``kid`` (or any caller once the cache has expired) waits for a fetch. When no
    fresh key set can be had, lookups fail closed with ``keys_unavailable``: cached keys are
    never used past ``cache_seconds``.
    """

    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float = 300,
        min_refresh_interval: float = 30,
        refresh_ahead: float = 0.8,
        timeout: float = 5.0,
        max_bytes: int = 1 << 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < refresh_ahead <= 1:
            raise ValueError("refresh_ahead must be a fraction of cache_seconds in (0, 1]")
        self._url = url
        parts = urlsplit(url)
        # Logged instead of the URL: drops any user:password@ and query string.
        self._safe_url = urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", ""))
        self._cache_seconds = cache_seconds
        self._ahead_seconds = cache_seconds * refresh_ahead
        self._min_interval = min_refresh_interval
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_bytes = max_bytes
        self._clock = clock
        self._keys: KeySet = KeySet()
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None
        self._inflight: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: IdentitySettings) -> JwksKeySource | None:
        if settings.jwks_url is None:
            return None
        return cls(
            settings.jwks_url,
            cache_seconds=settings.jwks_cache_seconds,
            min_refresh_interval=settings.jwks_min_refresh_interval,
            refresh_ahead=settings.jwks_refresh_ahead,
        )

    @property
    def refreshing(self) -> bool:
        """Whether a fetch of the JWKS (with its parse) is under way."""
        return self._inflight is not None

    def _is_fresh(self, now: float) -> bool:
        return self._fetched_at is not None and now - self._fetched_at < self._cache_seconds

    def _may_fetch(self, now: float) -> bool:
        return self._last_attempt is None or now - self._last_attempt >= self._min_interval

    def peek(self, kid: str) -> VerificationKey | None:
        """The key for ``kid`` if it is in a fresh cache; never waits.

        Past the refresh-ahead point it starts a background refresh (rate limited, when
        called on an event loop) and still answers from the cache.
        """
        now = self._clock()
        fetched = self._fetched_at
        if fetched is None or now - fetched >= self._cache_seconds:
            return None
        if now - fetched >= self._ahead_seconds and self._inflight is None:
            self._refresh_ahead(now)
        return self._keys.get(kid)

    async def get_key(self, kid: str) -> VerificationKey:
        """The key for ``kid``; waits for a fetch only when the cache has expired or the kid is new."""
        now = self._clock()
        if self._is_fresh(now):
            key = self.peek(kid)  # starts a refresh ahead of expiry when due, without waiting for it
            if key is not None:
                return key
            if self._inflight is None and not self._may_fetch(now):
                raise self._refused(_unknown_key(), "rate_limited")
        elif self._inflight is None and not self._may_fetch(now):
            raise self._refused(_keys_unavailable(), "rate_limited")
        await self.refresh()
        if not self._is_fresh(self._clock()):
            raise self._refused(_keys_unavailable(), "no_fresh_keys")
        key = self._keys.get(kid)
        if key is None:
            raise self._refused(_unknown_key(), "not_in_jwks")
        return key

    def _refused(self, error: AuthenticationError, reason: str) -> AuthenticationError:
        """Log a refusal (never the attacker-chosen kid) and hand back the error to raise."""
        log.info("jwks_lookup_refused", code=error.code, reason=reason, url=self._safe_url)
        return error

    async def refresh(self) -> None:
        """Fetch the JWKS now, or join the fetch already under way."""
        inflight = self._inflight
        if inflight is None:
            inflight = self._start_fetch(asyncio.get_running_loop(), self._clock())
        # Shielded: one caller giving up must not cancel the fetch the others are waiting on.
        await asyncio.shield(inflight)

    def _start_fetch(self, loop: asyncio.AbstractEventLoop, now: float) -> asyncio.Task[None]:
        self._last_attempt = now
        task = loop.create_task(self._fetch(), name="gatekeeper-jwks-fetch")
        self._inflight = task
        task.add_done_callback(self._fetch_done)
        return task

    def _refresh_ahead(self, now: float) -> None:
        """Start a background refresh of a fresh but ageing cache; nobody waits for it."""
        if self._inflight is not None or not self._may_fetch(now):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # a synchronous caller outside the loop: the timer or the next async lookup starts it
        log.debug("jwks_refresh_ahead", url=self._safe_url)
        self._start_fetch(loop, now)

    def _fetch_done(self, task: asyncio.Task[None]) -> None:
        if self._inflight is task:
            self._inflight = None
            self._arm_timer()

    def _arm_timer(self) -> None:
        """Schedule the next refresh ahead of expiry, so it happens even when no call comes in."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        fetched = self._fetched_at
        if fetched is None or self._inflight is not None:
            return
        due = fetched + self._ahead_seconds
        if self._last_attempt is not None:
            due = max(due, self._last_attempt + self._min_interval)  # a failed attempt retries later
        if due >= fetched + self._cache_seconds:
            return  # no refresh allowed before expiry: the first lookup after it fetches (and waits)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        # A weak reference: a timer must not keep a forgotten key source (and its polling) alive.
        self._timer = loop.call_later(max(0.0, due - self._clock()), _timer_fired, weakref.ref(self))

    def _on_timer(self) -> None:
        self._timer = None
        now = self._clock()
        fetched = self._fetched_at
        if fetched is None or self._inflight is not None or now - fetched >= self._cache_seconds:
            return  # a fetch is under way (it re-arms when done), or expired: lookups fetch and wait
        if now - fetched >= self._ahead_seconds and self._may_fetch(now):
            self._refresh_ahead(now)
        else:
            self._arm_timer()  # not due yet by our clock: the next due time is in the future

    async def _fetch(self) -> None:
        """One fetch; records the outcome and never raises, so a failure is only 'still stale'."""
        try:
            if self._session is None or self._session.closed:
                self._session = aiohttp.ClientSession(timeout=self._timeout)
            async with self._session.get(
                self._url, allow_redirects=False, headers={"Accept": "application/json"}
            ) as resp:
                if resp.status != 200:
                    raise _FetchError(f"HTTP status {resp.status}")
                body = bytearray()
                async for chunk in resp.content.iter_chunked(65536):
                    body += chunk
                    if len(body) > self._max_bytes:
                        raise _FetchError(f"document larger than {self._max_bytes} bytes")
            # JSON decoding and RSA/EC key construction of up to max_bytes: off the event loop.
            parsed = await asyncio.to_thread(_parse_jwks_body, bytes(body))
        except Exception as exc:  # fail closed on anything: the cache just stays as it was, and ages
            log.warning("jwks_fetch_failed", url=self._safe_url, error=_describe(exc))
            return
        parsed.log_ignored()
        self._keys = parsed.keys
        self._fetched_at = self._clock()
        log.info("jwks_refreshed", url=self._safe_url, keys=len(parsed.keys))

    async def aclose(self) -> None:
        """Stop any fetch under way and the refresh timer, and close the HTTP session."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task, self._inflight = self._inflight, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        if self._session is not None:
            await self._session.close()
            self._session = None


def _timer_fired(ref: weakref.ref[JwksKeySource]) -> None:
    source = ref()
    if source is not None:
        source._on_timer()


class _FetchError(Exception):
    pass


def _describe(exc: Exception) -> str:
    """Error class (and our own messages) only: a JSON error could quote the response body."""
    if isinstance(exc, _FetchError):
        return str(exc)
    return type(exc).__name__


def _unknown_key() -> AuthenticationError:
    return AuthenticationError(
        "the token's key id (kid) does not name a key Gatekeeper trusts; "
        "check that the token comes from the configured issuer",
        code=codes.UNKNOWN_KEY,
    )


def _keys_unavailable() -> AuthenticationError:
    return AuthenticationError(
        "the identity provider's signing keys (JWKS) could not be fetched; try again shortly",
        code=codes.KEYS_UNAVAILABLE,
    )


def jwks_document(keys: Iterable[PublicKey]) -> dict[str, Any]:
    """A JWKS document for the given public keys (e.g. to serve the development key)."""
    return {"keys": [public_jwk(k) for k in keys]}
