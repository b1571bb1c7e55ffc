"""Signed webhooks for approval-queue changes, delivered in the background with retries.

Sending side: ``WebhookNotifier.notify(event, payload)`` only enqueues (it never blocks a decision
and never raises); a background task POSTs each delivery, retrying with exponential backoff and
jitter on connection errors, timeouts, 429 and 5xx. Other 4xx are the receiver saying "no": not
retried. A delivery that still fails after ``max_attempts`` is logged and dropped.

Wire format of one delivery::

    POST <url>
    Content-Type: application/json
    X-Gatekeeper-Event: <event>
    X-Gatekeeper-Delivery: <delivery id>            (the same on every retry of one delivery)
    X-Gatekeeper-Timestamp: <integer epoch seconds> (fresh on every attempt)
    X-Gatekeeper-Signature: v1=<hex HMAC-SHA256(secret, b"<timestamp>." + body)>

    {"id": "<delivery id>", "event": "<event>", "created_at": <float epoch>, "data": {...}}

Receiving side — what a receiver must do (``verify_signature`` does steps 1–3)::

    1. Read the raw body bytes; do not re-serialize parsed JSON before checking.
    2. Recompute v1 = HMAC-SHA256(secret, f"{timestamp}.".encode() + body) and compare in
       constant time with every ``v1=`` value in X-Gatekeeper-Signature (several may be sent,
       comma-separated, while a secret is being rotated).
    3. Reject a timestamp further than the tolerance (default 300 s) from your clock, in either
       direction: a captured delivery cannot be replayed later.
    4. Dedupe by delivery id (the body's ``id`` = X-Gatekeeper-Delivery), remembering ids for at
       least the tolerance window: a retry after a lost 2xx, or a replay inside the window,
       carries an id you have already processed. Answer 2xx for a duplicate.
    5. Answer 2xx quickly (within the sender's timeout, 5 s by default) and do slow work after.
       Answer 4xx only for deliveries that must not be retried (bad signature, stale timestamp).

Deliveries are at-least-once and may arrive out of order; use ``created_at`` and the approval's
``state`` in ``data`` rather than arrival order.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import json
import random
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from yarl import URL

__all__ = ["SIGNATURE_VERSION", "WebhookNotifier", "sign", "verify_signature"]

log = structlog.get_logger("gatekeeper.webhook")

SIGNATURE_VERSION = "v1"
_MAX_BACKOFF = 60.0
_USER_AGENT = "gatekeeper-webhook/1"


def sign(secret: bytes, body: bytes, timestamp: str | int) -> str:
    """The ``X-Gatekeeper-Signature`` value for ``body`` sent at ``timestamp`` (epoch seconds)."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def verify_signature(
    secret: bytes,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    now: float | None = None,
    tolerance_seconds: int = 300,
) -> bool:
    """True when ``signature`` (the X-Gatekeeper-Signature header) is a valid signature of ``body``
    at ``timestamp`` (the X-Gatekeeper-Timestamp header) and the timestamp is within
    ``tolerance_seconds`` of ``now`` (default: the current time), past or future.

    The comparison is constant-time. Never raises on malformed input: anything unexpected is False.
    A True answer does not protect against a replay *inside* the window: also dedupe by delivery
    id (see the module docstring).
    """
    if not secret or not isinstance(timestamp, str) or not isinstance(signature, str):
        return False
    ts_text = timestamp.strip()
    if not ts_text.isascii() or not ts_text.isdigit() or len(ts_text) > 12:
        return False
    ts = int(ts_text)
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_seconds:
        return False
    expected = sign(secret, body, ts_text).encode()
    ok = False
    for candidate in signature.split(","):
        # Check every candidate without stopping early, so timing does not tell which one matched.
        ok |= hmac.compare_digest(expected, candidate.strip().encode("utf-8", "replace"))
    return ok


@dataclass(frozen=True, slots=True)
class _Delivery:
    id: str
    event: str
    body: bytes


class _Retry(Exception):
    """A failed attempt worth retrying; ``after`` is the receiver's Retry-After, if any."""

    def __init__(self, why: str, after: float | None = None) -> None:
        super().__init__(why)
        self.why = why
        self.after = after


class WebhookNotifier:
    """Delivers signed webhooks without ever blocking the caller.

    ``notify`` enqueues and returns at once; ``start`` launches the sender, ``stop`` gives it
    ``drain_timeout`` seconds to deliver what is queued, then cancels it. A full queue
    (``max_queue``) drops its oldest delivery, with a warning. A ``session`` passed in is used as
    is and left open; otherwise the notifier opens its own in ``start`` and closes it in ``stop``.
    """

    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        session: aiohttp.ClientSession | None = None,
        max_attempts: int = 6,
        base_delay: float = 0.5,
        max_queue: int = 10000,
        timeout: float = 5.0,
    ) -> None:
        parsed = URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError("webhook url must be an absolute http:// or https:// URL")
        if not isinstance(secret, bytes) or len(secret) < 16:
            raise ValueError("webhook secret must be at least 16 bytes")
        if max_attempts < 1 or max_queue < 1 or not base_delay >= 0 or not timeout > 0:
            raise ValueError("max_attempts and max_queue must be >= 1, base_delay >= 0, timeout > 0")
        self._url = parsed
        # Webhook URLs often carry a secret in their path (chat tools do this): log the origin only.
        self._where = str(parsed.origin())
        self._secret = secret
        self._session = session
        self._owns_session = session is None
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._max_queue = max_queue
        self._timeout = timeout
        self._queue: collections.deque[_Delivery] = collections.deque()
        self._lock = threading.Lock()  # notify() may be called from other threads
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stopped = False
        self.delivered = 0
        self.failed = 0
        self.dropped = 0

    def __repr__(self) -> str:
        return f"WebhookNotifier(url={self._where!r}, queued={len(self._queue)})"

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- the caller's side -------------------------------------------------------------------

    def notify(self, event: str, payload: dict[str, Any]) -> None:
        """Queue one delivery of ``event`` with ``payload`` as its ``data``; returns immediately.

        Never raises: a payload that cannot be serialized, a full queue or a stopped notifier are
        logged, not passed on to the caller (a decision must not fail because of a webhook).
        """
        try:
            self._enqueue(event, payload)
        except Exception:  # never into the caller
            log.exception("webhook_enqueue_failed", webhook_event=event)

    def _enqueue(self, event: str, payload: dict[str, Any]) -> None:
        if self._stopped:
            log.warning("webhook_dropped_after_stop", webhook_event=event)
            self.dropped += 1
            return
        delivery_id = f"dlv_{secrets.token_urlsafe(16)}"
        body = json.dumps(
            {"id": delivery_id, "event": event, "created_at": time.time(), "data": payload},
            ensure_ascii=False,
            allow_nan=False,
            separators=(",", ":"),
        ).encode()
        dropped: _Delivery | None = None
        with self._lock:
            if len(self._queue) >= self._max_queue:
                dropped = self._queue.popleft()
                self.dropped += 1
            self._queue.append(_Delivery(delivery_id, event, body))
        if dropped is not None:
            log.warning(
                "webhook_queue_full_dropped_oldest",
                webhook_event=dropped.event,
                delivery=dropped.id,
                max_queue=self._max_queue,
            )
        self._wake()

    def _wake(self) -> None:
        loop, wakeup = self._loop, self._wakeup
        if loop is None or wakeup is None or loop.is_closed():
            return  # not started yet: start() picks the queue up
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wakeup.set()
        else:
            loop.call_soon_threadsafe(wakeup.set)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("WebhookNotifier already started")
        if self._stopped:
            raise RuntimeError("WebhookNotifier cannot be restarted after stop()")
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._run(), name="gatekeeper-webhook")
        if self._queue:
            self._wakeup.set()

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Stop accepting, try to deliver what is queued for up to ``drain_timeout`` seconds
        (retries included), then cancel; undelivered events are counted and logged."""
        self._stopped = True
        task = self._task
        if task is not None and not task.done():
            self._stopping = True
            if self._wakeup is not None:
                self._wakeup.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=max(drain_timeout, 0.0))
            except TimeoutError:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        lost = len(self._queue)
        if lost:
            self._queue.clear()
            self.dropped += lost
            log.warning("webhook_undelivered_at_stop", count=lost, url=self._where)
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    # -- the sender --------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            with self._lock:
                delivery = self._queue.popleft() if self._queue else None
            if delivery is None:
                if self._stopping:
                    return
                self._wakeup.clear()
                if self._queue or self._stopping:
                    continue
                await self._wakeup.wait()
                continue
            try:
                await self._deliver(delivery)
            except asyncio.CancelledError:
                with self._lock:
                    self._queue.appendleft(delivery)  # counted as undelivered by stop()
                raise
            except Exception:  # a bug here must not kill the sender
                self.failed += 1
                log.exception("webhook_delivery_error", delivery=delivery.id, url=self._where)

    async def _deliver(self, delivery: _Delivery) -> None:
        for attempt in range(1, self._max_attempts + 1):
            try:
                await self._attempt(delivery)
            except _Retry as retry:
                if attempt >= self._max_attempts:
                    self.failed += 1
                    log.error(
                        "webhook_gave_up",
                        webhook_event=delivery.event,
                        delivery=delivery.id,
                        attempts=attempt,
                        last_error=retry.why,
                        url=self._where,
                    )
                    return
                delay = self._backoff(attempt, retry.after)
                log.info(
                    "webhook_retry",
                    webhook_event=delivery.event,
                    delivery=delivery.id,
                    attempt=attempt,
                    error=retry.why,
                    retry_in=round(delay, 3),
                )
                await asyncio.sleep(delay)
            else:
                return

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        ceiling = min(self._base_delay * 2.0 ** (attempt - 1), _MAX_BACKOFF)
        # "Equal jitter": at least half the exponential step, so retries spread but still back off.
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not a secret
        if retry_after is not None:
            delay = max(delay, min(retry_after, _MAX_BACKOFF))
        return delay

    async def _attempt(self, delivery: _Delivery) -> None:
        session = self._session
        assert session is not None
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": _USER_AGENT,
            "X-Gatekeeper-Event": delivery.event,
            "X-Gatekeeper-Delivery": delivery.id,
            "X-Gatekeeper-Timestamp": timestamp,
            "X-Gatekeeper-Signature": sign(self._secret, delivery.body, timestamp),
        }
        try:
            async with session.post(
                self._url,
                data=delivery.body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as response:
                status = response.status
                retry_after = _retry_after(response.headers.get("Retry-After"))
                await response.read()
        except TimeoutError as exc:
            raise _Retry(f"timeout after {self._timeout:g}s") from exc
        except aiohttp.ClientError as exc:
            raise _Retry(type(exc).__name__) from exc
        if 200 <= status < 300:
            self.delivered += 1
            log.debug("webhook_delivered", webhook_event=delivery.event, delivery=delivery.id, status=status)
            return
        if status == 429 or status >= 500:
            raise _Retry(f"HTTP {status}", retry_after)
        # 3xx (redirects are not followed: the signature is for this URL) and other 4xx: final.
        self.failed += 1
        log.error(
            "webhook_rejected",
            webhook_event=delivery.event,
            delivery=delivery.id,
            status=status,
            url=self._where,
        )


def _retry_after(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())
