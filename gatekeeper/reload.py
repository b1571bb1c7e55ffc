"""Hot reload: policy and manifest files are watched (and SIGHUP reloads), validated, and
swapped in whole.

The gate holds one reference to an immutable PolicySet and every call reads it once, so a
swap is atomic: a call is decided entirely by the old set or entirely by the new one. A
broken edit leaves the old set live and says why (log line, metric, readiness detail).

In a fleet each replica either watches its own copy of the files (a Kubernetes ConfigMap, a
config management run), or, with ``policy.sync``, is handed each set published to PostgreSQL by
:mod:`gatekeeper.policy_sync`, which reloads from that set's directory through here. The policy
version every decision records, and that ``/readyz`` reports, shows when all replicas have
converged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Collection
from pathlib import Path

import structlog

from .config import PolicyFiles
from .errors import GatekeeperError
from .gate import Gate, load_policy_set
from .metrics import Metrics
from .tasks import BackgroundTasks

log = structlog.get_logger("gatekeeper.reload")


def _fingerprint(paths: Collection[Path]) -> tuple[tuple[int, int, int], ...]:
    """Cheap change detection; a changed fingerprint triggers a full load (which hashes content)."""
    marks = []
    for path in paths:
        try:
            st = os.stat(path)  # follows symlinks, as ConfigMap updates swap them
            marks.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            marks.append((0, -1, 0))
    return tuple(marks)


class PolicyReloader:
    def __init__(
        self,
        gate: Gate,
        files: PolicyFiles,
        *,
        upstreams: Collection[str],
        metrics: Metrics,
        shadow: PolicyFiles | None = None,
        interval_seconds: float = 1.0,
    ) -> None:
        self.gate = gate
        self.files = files
        self.shadow = shadow
        self.upstreams = tuple(upstreams)
        self.metrics = metrics
        self.interval = interval_seconds
        self.last_error: str | None = None
        self._paths = self._watched(files)
        self._seen = _fingerprint(self._paths)
        self._tasks = BackgroundTasks()  # the watcher and SIGHUP reloads
        self._lock = asyncio.Lock()

    def _watched(self, files: PolicyFiles) -> list[Path]:
        sets = [files] if self.shadow is None else [files, self.shadow]
        return [p for f in sets for p in (f.model, f.policy, f.tools, f.budgets) if p is not None]

    async def start(self, *, watch: bool = True, handle_sighup: bool = False) -> None:
        if watch:
            self._tasks.spawn(self._watch(), name="policy-watcher")
        if handle_sighup:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reload_soon)

    async def stop(self) -> None:
        # Loops without signal support raise NotImplementedError, a closing loop RuntimeError:
        # either way no SIGHUP handler is left to remove.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        await self._tasks.cancel_all()

    def reload_soon(self) -> None:
        self._tasks.spawn(self.reload(reason="SIGHUP"), name="policy-reload-sighup")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            marks = _fingerprint(self._paths)
            if marks != self._seen:
                self._seen = marks
                await self.reload(reason="files changed")

    async def reload(self, *, reason: str, files: PolicyFiles | None = None) -> bool:
        """Load, validate and swap; on any error keep the live set. Returns True when swapped.

        With ``files`` (a published set, from policy sync), load those instead; once they load,
        they are the files this reloader watches and reloads from."""
        async with self._lock:
            old = self.gate.policy_set
            source = files or self.files
            try:
                # Parsing 100k rules is CPU work: keep it off the event loop.
                new = await asyncio.to_thread(load_policy_set, source, self.upstreams, shadow=self.shadow)
            except GatekeeperError as exc:
                self.last_error = exc.message
                self.metrics.policy_reloads.labels(result="failed").inc()
                log.error(
                    "policy_reload_failed",
                    reason=reason,
                    error=exc.message,
                    live_version=old.version if old else None,
                )
                return False
            except Exception as exc:  # never let a reload bug take the live policy down
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.metrics.policy_reloads.labels(result="failed").inc()
                log.exception("policy_reload_failed", reason=reason)
                return False
            self.last_error = None
            if source is not self.files:
                self.files = source
                self._paths = self._watched(source)
                self._seen = _fingerprint(self._paths)

            def versions(ps: object) -> tuple[str, str | None]:
                shadow = getattr(ps, "shadow", None)
                return getattr(ps, "version", ""), shadow.version if shadow is not None else None

            if old is not None and versions(new) == versions(old):
                return False
            self.gate.policy_set = new  # one reference swap: atomic for every call that follows
            self.gate.load_error = None
            self.metrics.policy_reloads.labels(result="ok").inc()
            self.metrics.set_policy_version(new.version)
            log.info(
                "policy_reloaded", reason=reason, version=new.version, previous=old.version if old else None
            )
            return True
