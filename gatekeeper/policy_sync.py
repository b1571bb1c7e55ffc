"""Fleet policy propagation through PostgreSQL: publish once, every replica goes live with it.

``gatekeeper policy publish`` validates a policy set, then in ONE transaction inserts its four
files (model, policy, manifests, budgets; exact bytes) and their version (the same content hash
every decision records) into ``policy_sets`` in the configured schema and runs
``pg_notify('gatekeeper_policy', {schema, version})``; the notification is delivered only if
the insert commits. The newest row (highest ``seq``) is the fleet's policy; publishing an older
set again is how you roll back.

Each replica with ``policy.sync`` set holds ``LISTEN gatekeeper_policy`` on a dedicated
connection. On a notification, on every (re)connect and every ``poll_seconds`` as a safety net,
it reads the newest row; when that is not what it applied last, it writes the files atomically
(a temporary directory renamed into place) to ``data_dir/policy-sync/<version>/`` and reloads
from there through :class:`~gatekeeper.reload.PolicyReloader` — so validation, the atomic swap,
the metrics and "a set that does not load here leaves the old one live and says why" apply
exactly as for a local edit. Notifications sent while the listener is down are not replayed by
PostgreSQL; the read on reconnect (and the poll) covers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import secrets
import shutil
import socket
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import structlog

from gatekeeper import codes

from .config import PolicyFiles
from .errors import GatekeeperError
from .gate import files_version, load_policy_set
from .reload import PolicyReloader
from .storage.postgres import check_schema, open_pool
from .tasks import BackgroundTasks

log = structlog.get_logger("gatekeeper.policy_sync")

CHANNEL = "gatekeeper_policy"
SYNC_DIR = "policy-sync"
_KEEP_DIRS = 10  # published sets kept on disk (the live one is never removed)

_DDL = """
CREATE TABLE IF NOT EXISTS policy_sets (
    seq bigserial PRIMARY KEY,
    version text NOT NULL,
    model bytea NOT NULL,
    policy bytea NOT NULL,
    tools bytea NOT NULL,
    budgets bytea,
    published_at timestamptz NOT NULL DEFAULT now(),
    published_by text NOT NULL DEFAULT ''
);
"""

_NEWEST = "SELECT seq, version, model, policy, tools, budgets FROM policy_sets ORDER BY seq DESC LIMIT 1"


@dataclass(frozen=True, slots=True)
class Published:
    seq: int
    version: str


def sync_files(directory: Path) -> PolicyFiles:
    """The files of one written-out published set."""
    return PolicyFiles(
        directory / "model.conf",
        directory / "policy.csv",
        directory / "tools.yaml",
        budgets=directory / "budgets.yaml",
    )


async def publish(
    dsn: str, schema: str, files: PolicyFiles, upstreams: Collection[str] | None = None
) -> Published:
    """Validate ``files`` (raises GatekeeperError on a broken set: nothing is published), then
    insert them and notify the fleet in one transaction."""
    check_schema(schema, "approvals.postgres_schema")
    version, blobs = await asyncio.to_thread(_snapshot, files, upstreams)
    try:
        seq = await _insert(dsn, schema, version, blobs)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        raise GatekeeperError(
            f"could not publish to PostgreSQL: {exc or type(exc).__name__}", code=codes.STORE_UNAVAILABLE
        ) from None
    return Published(seq, version)


async def _insert(dsn: str, schema: str, version: str, blobs: list[bytes | None]) -> int:
    pool = await open_pool(dsn, schema, _DDL, max_size=1, application_name="gatekeeper-policy-publish")
    try:
        async with pool.acquire() as conn, conn.transaction():
            seq = await conn.fetchval(
                "INSERT INTO policy_sets (version, model, policy, tools, budgets, published_by)"
                " VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
                version,
                *blobs,
                _who(),
            )
            # Delivered only if (and when) the insert commits.
            payload = json.dumps({"schema": schema, "version": version})
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
    finally:
        await pool.close()
    return int(seq)


def _snapshot(files: PolicyFiles, upstreams: Collection[str] | None) -> tuple[str, list[bytes | None]]:
    """(version, the four files' bytes) of a set that loads; the bytes are read on both sides of
    the validation, so what is published is exactly what was validated."""

    def read() -> list[bytes | None]:
        paths = [files.model, files.policy, files.tools, files.budgets]
        return [
            Path(p).read_bytes() if p is not None and (p != files.budgets or Path(p).exists()) else None
            for p in paths
        ]

    try:
        before = read()
        version = load_policy_set(files, upstreams).version
        after = read()
    except OSError as exc:
        raise GatekeeperError(f"cannot read {exc.filename}: {exc.strerror}") from None
    if before != after:
        raise GatekeeperError("the policy files changed while being published; publish again")
    return version, before


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


class PolicySync:
    """One replica's membership of a policy fleet."""

    def __init__(
        self,
        dsn: str,
        schema: str,
        data_dir: Path,
        reloader: PolicyReloader,
        *,
        poll_seconds: float = 30.0,
    ) -> None:
        self.dsn = dsn
        self.schema = check_schema(schema, "approvals.postgres_schema")
        self.root = data_dir / SYNC_DIR
        self.reloader = reloader
        self.poll_seconds = poll_seconds
        self.applied: Published | None = None  # the newest row this replica has acted on
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._tasks = BackgroundTasks()  # the listener and the syncs it starts
        self._lock = asyncio.Lock()
        self._closing = False

    async def start(self) -> None:
        """Open the store (raises if PostgreSQL is unreachable), go live with the newest
        published set if there is one (else keep the local files), then listen."""
        self._closing = False
        self._pool = await open_pool(
            self.dsn, self.schema, _DDL, max_size=2, application_name="gatekeeper-policy-sync"
        )
        await self.sync(reason="start")
        self._tasks.spawn(self._listen(), name="gatekeeper-policy-listener")

    async def stop(self) -> None:
        self._closing = True
        await self._tasks.cancel_all()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def sync(self, *, reason: str) -> bool:
        """Read the newest published set and go live with it if it is new here. True when the
        live policy changed. Database errors are logged and leave everything as it is."""
        async with self._lock:
            pool = self._pool
            if pool is None:
                return False
            try:
                row = await pool.fetchrow(_NEWEST, timeout=10)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("policy_sync_read_failed", reason=reason, error=str(exc) or type(exc).__name__)
                return False
            if row is None or (self.applied is not None and self.applied.seq == row["seq"]):
                return False
            published = Published(int(row["seq"]), str(row["version"]))
            try:
                directory = await asyncio.to_thread(self._write, row)
            except (OSError, GatekeeperError) as exc:
                log.error("policy_sync_write_failed", version=published.version, error=str(exc))
                return False
            # Acted on even if it does not load here: the reloader keeps the old set live and
            # reports why (/readyz policy_reload_error); the next publish is tried afresh.
            self.applied = published
            swapped = await self.reloader.reload(
                reason=f"published policy {published.version} ({reason})", files=sync_files(directory)
            )
            if swapped or self.reloader.last_error is None:
                await asyncio.to_thread(self._prune, directory)
            return swapped

    def _write(self, row: asyncpg.Record) -> Path:
        """``root/<version>/`` holding exactly the published bytes (written once, renamed into place)."""
        version = str(row["version"])
        if not version.isalnum():
            raise GatekeeperError(f"published version {version!r} is not a plain hash")
        final = self.root / version
        if final.is_dir() and self._intact(final, version):
            return final
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.root / f".tmp-{version}-{secrets.token_hex(4)}"
        tmp.mkdir(mode=0o700)
        try:
            files = sync_files(tmp)
            contents = {
                files.model: row["model"],
                files.policy: row["policy"],
                files.tools: row["tools"],
                files.budgets: row["budgets"],
            }
            for path, data in contents.items():
                if path is not None and data is not None:
                    with open(path, "wb") as fh:
                        fh.write(data)
                        fh.flush()
                        os.fsync(fh.fileno())
            if not self._intact(tmp, version):
                raise GatekeeperError(f"published set {version} does not match its own version hash")
            if final.exists():  # left damaged by hand, say: replace it
                shutil.rmtree(final)
            try:
                tmp.rename(final)
            except OSError:
                if not (final.is_dir() and self._intact(final, version)):  # another replica won the race
                    raise
            return final
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def _intact(directory: Path, version: str) -> bool:
        try:
            return files_version(sync_files(directory)) == version
        except GatekeeperError:
            return False

    def _prune(self, live: Path) -> None:
        keep = {live.name}
        current = self.reloader.files.policy.parent
        if current.parent == self.root:
            keep.add(current.name)
        try:
            dirs = sorted(
                (d for d in self.root.iterdir() if d.is_dir() and not d.name.startswith(".")),
                key=lambda d: d.stat().st_mtime,
                reverse=True,
            )
        except OSError as exc:  # housekeeping only: never fails a sync
            log.warning("policy_sync_prune_failed", error=str(exc))
            return
        for old in dirs[_KEEP_DIRS:]:
            if old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)

    # -- the listener --------------------------------------------------------------------------

    async def _listen(self) -> None:
        """Hold ``LISTEN`` on a dedicated connection, re-reading the newest set on every
        (re)connect and every poll interval; reconnect with backoff when it drops."""
        delay = 0.05
        while not self._closing:
            try:
                conn = await asyncpg.connect(
                    self.dsn, timeout=10, server_settings={"application_name": "gatekeeper-policy-listener"}
                )
            except Exception as exc:  # any failure to connect is retried: never leave a replica deaf
                log.warning("policy_listener_connect_failed", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
            try:
                await conn.add_listener(CHANNEL, self._on_notify)
                delay = 0.05
                await self.sync(reason="listener connected")
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), timeout=self.poll_seconds)
                    except TimeoutError:
                        await conn.fetchval("SELECT 1", timeout=5)
                        await self.sync(reason="poll")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("policy_listener_error", error=str(exc) or type(exc).__name__)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), timeout=2)
            if not self._closing:
                log.warning("policy_listener_lost", schema=self.schema, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            schema = json.loads(str(payload)).get("schema")
        except (ValueError, AttributeError):
            schema = None
        if schema != self.schema:
            return  # another fleet's policy on the same database
        self._tasks.spawn(self._sync_quietly(), name="gatekeeper-policy-sync")

    async def _sync_quietly(self) -> None:
        try:
            await self.sync(reason="notified")
        except Exception:  # a bug here must not kill the loop; the poll retries
            log.exception("policy_sync_failed")
